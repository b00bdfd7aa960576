"""学时 pace: a private note at a quarter's end to members behind the pro-rata pace (32 h,
56 h for the committee); the weekly nudge is off by default."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import study
from tests.snapshot import by_key, people, person, run_days, settings_with, snapshot

S = Settings()


def hours(h: float) -> int:
    return int(h * 60)


def test_quarter_end_note_to_members_behind_pace():
    # By 31 March, the pace is 90/365 of the target: 7.9 h of 32, 13.8 h of 56.
    data = snapshot(
        study={
            (3, 2026): hours(10),
            (4, 2026): hours(5),
            (1, 2026): hours(10),
            (2, 2026): hours(14),
        }
    )
    days = run_days(study.due, data, S, date(2026, 1, 1), date(2026, 3, 31))
    assert list(days) == [date(2026, 3, 31)]
    found = by_key(days)
    assert "study:2026-Q1:member-3" not in found  # 10 h ≥ 7.9 h
    assert "study:2026-Q1:member-2" not in found  # 14 h ≥ 13.8 h
    r = found["study:2026-Q1:member-4"][1]
    assert r.to == ["lisi"] and "已记录学习5学时" in r.text and "全年目标32学时" in r.text
    assert "study:2026-Q1:member-1" in found  # the 书记: 10 h < 13.8 h


def test_quarter_ends_across_the_year_on_workdays():
    days = run_days(study.due, snapshot(), S, date(2026, 1, 1), date(2026, 12, 31))
    assert sorted(days) == [
        date(2026, 3, 31),
        date(2026, 6, 30),
        date(2026, 9, 30),
        date(2026, 12, 31),
    ]
    assert "study:2026-Q4:member-3" in {r.key for r in days[date(2026, 12, 31)]}


def test_joiner_this_year_is_paced_from_admission_and_a_leaver_gets_nothing():
    members = people()
    del members[3]
    members[9] = person(9, "newcomer", joined_on=date(2026, 9, 1))
    data = snapshot(members=members, study={(9, 2026): hours(3)})
    found = by_key(run_days(study.due, data, S, date(2026, 9, 30), date(2026, 9, 30)))
    assert "study:2026-Q3:member-9" not in found  # pace 30/365*32 = 2.6 h
    assert "study:2026-Q3:member-3" not in found


def test_notes_can_be_switched_off_and_the_weekly_nudge_on():
    off = settings_with(study={"quarter_pace_note": False})
    assert run_days(study.due, snapshot(), off, date(2026, 1, 1), date(2026, 12, 31)) == {}
    weekly = settings_with(study={"quarter_pace_note": False, "weekly_nudge": True})
    days = run_days(study.due, snapshot(), weekly, date(2026, 9, 28), date(2026, 10, 11))
    # Week of 28 Sep: Monday; week of 5 Oct: 5–7 are 国庆, so Thursday the 8th.
    assert sorted(days) == [date(2026, 9, 28), date(2026, 10, 8)]
    assert "study-week:2026-W41:member-3" in {r.key for r in days[date(2026, 10, 8)]}
