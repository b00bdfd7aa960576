"""三会一课 and the other cadence rules: reminded 10 and 3 days before a period ends when
the count is not yet held, at month, quarter and year ends, around holidays and 调休."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import cadence
from tests.snapshot import (
    B1,
    B2,
    G1,
    G2,
    at,
    by_key,
    keys_on,
    meeting,
    people,
    person,
    run_days,
    settings_with,
    snapshot,
)

S = Settings()


def only(kind: str, **extra: object) -> Settings:
    """Settings with a single cadence rule."""
    return settings_with(cadence=[{"kind": kind, **extra}])


def test_monthly_committee_meeting_reminded_at_t10_and_t3_when_not_held():
    s = only("支委会", period="month")
    days = run_days(cadence.due, snapshot(), s, date(2026, 11, 1), date(2026, 11, 30))
    assert keys_on(days, date(2026, 11, 20)) == {
        "cadence:支委会:branch-2:2026-11:T-10",
        "cadence:支委会:branch-3:2026-11:T-10",
    }
    assert keys_on(days, date(2026, 11, 27)) == {
        "cadence:支委会:branch-2:2026-11:T-3",
        "cadence:支委会:branch-3:2026-11:T-3",
    }
    r = days[date(2026, 11, 20)][0]
    assert r.to == ["shuji"] and r.at == at(2026, 11, 20, 9, 0)
    assert "本月支委会应召开1次，目前已召开0次" in r.text and "还有10天" in r.text


def test_held_or_planned_meeting_in_the_period_silences_it_but_last_month_does_not_count():
    s = only("支委会", period="month")
    held = meeting(1, "支委会", at(2026, 11, 3, 14, 30), status="held")
    planned = meeting(2, "支委会", at(2026, 11, 29, 14, 30), branch=B2)
    last_month = meeting(3, "支委会", at(2026, 10, 30, 14, 30), status="held")
    days = run_days(
        cadence.due,
        snapshot(meetings=[held, planned, last_month]),
        s,
        date(2026, 11, 1),
        date(2026, 11, 30),
    )
    assert days == {}
    # The October meeting does not count for November.
    days = run_days(
        cadence.due, snapshot(meetings=[last_month]), s, date(2026, 11, 1), date(2026, 11, 30)
    )
    assert "cadence:支委会:branch-2:2026-11:T-10" in by_key(days)


def test_cancelled_meetings_are_not_loaded_and_a_started_scheduled_one_counts():
    s = only("支委会", period="month")
    started = meeting(1, "支委会", at(2026, 11, 18, 14, 30))  # still "scheduled", started
    days = run_days(
        cadence.due, snapshot(meetings=[started]), s, date(2026, 11, 19), date(2026, 11, 30)
    )
    assert not any(k.startswith("cadence:支委会:branch-2") for k in by_key(days))


def test_quarter_end_on_a_working_sunday_and_before_mid_autumn():
    # Q3 ends Wed 30 Sep 2026: T-10 is Sun 20 Sep, a 调休 working day; T-3 is Sun 27 Sep,
    # a day off, and the day before is 中秋 (Fri 25): the reminder goes on Thu 24 Sep.
    s = only("支部党员大会", period="quarter")
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 9, 1), date(2026, 9, 30)))
    assert found["cadence:支部党员大会:branch-2:2026-Q3:T-10"][0] == date(2026, 9, 20)
    assert found["cadence:支部党员大会:branch-2:2026-Q3:T-3"][0] == date(2026, 9, 24)
    assert "本季度" in found["cadence:支部党员大会:branch-2:2026-Q3:T-3"][1].text


def test_saturday_step_moves_back_over_dragon_boat_festival():
    # June 2026 ends Tue 30: T-10 is Sat 20 June; Fri 19 is 端午; so Thu 18 June.
    s = only("支委会", period="month")
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 6, 1), date(2026, 6, 30)))
    assert found["cadence:支委会:branch-2:2026-06:T-10"][0] == date(2026, 6, 18)


def test_a_step_of_next_month_lands_before_national_day():
    # 26 days before 31 October is 5 October (国庆): the reminder for October goes out on
    # 30 September, inside September.
    s = only("支委会", period="month", remind_days_before_end=[26])
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 9, 1), date(2026, 10, 31)))
    assert found["cadence:支委会:branch-2:2026-10:T-26"][0] == date(2026, 9, 30)
    assert found["cadence:支委会:branch-2:2026-09:T-26"][0] == date(2026, 9, 4)


def test_year_end_rule_with_three_steps():
    s = only("组织生活会", period="year", remind_days_before_end=[60, 30, 10])
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 10, 1), date(2026, 12, 31)))
    # 60 days before 31 Dec is Sun 1 Nov -> Fri 30 Oct.
    assert found["cadence:组织生活会:branch-2:2026:T-60"][0] == date(2026, 10, 30)
    assert found["cadence:组织生活会:branch-2:2026:T-30"][0] == date(2026, 12, 1)
    assert found["cadence:组织生活会:branch-2:2026:T-10"][0] == date(2026, 12, 21)
    # Relevance: each step until the next, the last until the year's end.
    assert found["cadence:组织生活会:branch-2:2026:T-60"][1].until == at(2026, 12, 1, 9)
    assert found["cadence:组织生活会:branch-2:2026:T-10"][1].until == at(2027, 1, 1, 0, 0)


def test_per_branch_override_changes_the_period():
    s = settings_with(
        cadence=[
            {"kind": "党课", "period": "quarter", "overrides": {"第二党支部": {"period": "month"}}}
        ]
    )
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 11, 1), date(2026, 11, 30)))
    assert "cadence:党课:branch-3:2026-11:T-10" in found
    assert not any(k.startswith("cadence:党课:branch-2") for k in found)
    off = settings_with(
        cadence=[
            {"kind": "党课", "period": "quarter", "overrides": {"第一党支部": {"enabled": False}}}
        ]
    )
    found = by_key(run_days(cadence.due, snapshot(), off, date(2026, 12, 1), date(2026, 12, 31)))
    assert set(found) == {"cadence:党课:branch-3:2026-Q4:T-10", "cadence:党课:branch-3:2026-Q4:T-3"}


def test_group_rule_names_the_groups_behind():
    s = only("党小组会", period="month", scope="group")
    held = meeting(1, "党小组会", at(2026, 11, 10, 9), group=G1, status="held")
    found = by_key(
        run_days(cadence.due, snapshot(meetings=[held]), s, date(2026, 11, 1), date(2026, 11, 30))
    )
    day, r = found["cadence:党小组会:branch-2:2026-11:T-10"]
    assert "第二党小组" in r.text and "第一党小组" not in r.text and r.to == ["shuji"]
    # 第二党支部 has no groups: the rule does not apply to it.
    assert not any(k.startswith("cadence:党小组会:branch-3") for k in found)
    both = meeting(2, "党小组会", at(2026, 11, 12, 9), group=G2, status="held")
    assert (
        run_days(
            cadence.due, snapshot(meetings=[held, both]), s, date(2026, 11, 1), date(2026, 11, 30)
        )
        == {}
    )


def test_leadership_rule_goes_to_the_office_once():
    s = only("民主生活会", period="year", scope="leadership", remind_days_before_end=[30])
    found = by_key(run_days(cadence.due, snapshot(), s, date(2026, 11, 1), date(2026, 12, 31)))
    assert list(found) == ["cadence:民主生活会:2026:T-30"]
    assert found["cadence:民主生活会:2026:T-30"][1].to == ["office"]


def test_secretary_lecture_counts_a_party_lesson_naming_the_secretary():
    s = only("书记讲党课", period="year", remind_days_before_end=[10])
    lesson = meeting(1, "党课", at(2026, 6, 5, 14), status="held", topic="书记讲党课：传承红色基因")
    other = meeting(2, "党课", at(2026, 6, 5, 14), branch=B2, status="held", topic="专题辅导")
    found = by_key(
        run_days(
            cadence.due,
            snapshot(meetings=[lesson, other]),
            s,
            date(2026, 12, 1),
            date(2026, 12, 31),
        )
    )
    assert set(found) == {"cadence:书记讲党课:branch-3:2026:T-10"}


def test_talks_coverage_lists_who_nobody_talked_with_joiners_in_leavers_out():
    s = only("谈心谈话", period="year", remind_days_before_end=[30])
    talk = meeting(
        1,
        "谈心谈话",
        at(2026, 5, 6, 10),
        status="held",
        attendance={1: "signed_in", 2: "signed_in"},
    )
    members = people()
    del members[4]  # lisi left the roster mid-year
    members[9] = person(9, "newcomer", group=G1)  # joined mid-year
    data = snapshot(members=members, meetings=[talk])
    found = by_key(run_days(cadence.due, data, s, date(2026, 12, 1), date(2026, 12, 1)))
    r = found["cadence:谈心谈话:branch-2:2026:T-30"][1]
    assert "zhangsan" in r.text and "newcomer" in r.text
    assert "lisi" not in r.text and "shuji" not in r.text.split("：", 2)[-1]
    assert "（2人）" in r.text


def test_shortfalls_skip_yearly_rules_early_in_the_year():
    data = snapshot()
    early = [r.kind for r, _ in cadence.shortfalls(data.orgs[B1], data, S, at(2026, 1, 12, 9))]
    assert "支委会" in early and "组织生活会" not in early
    late = [r.kind for r, _ in cadence.shortfalls(data.orgs[B1], data, S, at(2026, 12, 7, 9))]
    assert "组织生活会" in late


def test_default_rules_over_a_year_are_all_sendable_and_unique():
    # run_days checks the window and the day; by_key checks that no key repeats.
    found = by_key(run_days(cadence.due, snapshot(), S, date(2026, 1, 1), date(2026, 12, 31)))
    assert sum(1 for k in found if k.startswith("cadence:支委会:branch-2:")) == 24
    assert sum(1 for k in found if k.startswith("cadence:支部党员大会:branch-2:")) == 8
