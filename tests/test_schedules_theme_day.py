"""主题党日: members 2 days before the fixed day, the secretary 5 days before if nothing is
scheduled; per-branch days; weekends, 国庆 and 调休 Saturdays."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import theme_day
from tests.snapshot import (
    B1,
    at,
    by_key,
    meeting,
    people,
    person,
    run_days,
    settings_with,
    snapshot,
)

S = Settings()


def test_every_month_members_and_secretary_are_reminded():
    found = by_key(run_days(theme_day.due, snapshot(), S, date(2026, 1, 1), date(2026, 12, 31)))
    for month in range(1, 13):
        for branch in (2, 3):
            assert f"theme-day:branch-{branch}:2026-{month:02d}:members" in found
            assert f"theme-day:branch-{branch}:2026-{month:02d}:secretary" in found
    day, r = found["theme-day:branch-2:2026-11:members"]
    # 15 November 2026 is a Sunday: two days before is Friday the 13th.
    assert day == date(2026, 11, 13) and r.to == ["shuji", "weiyuan", "zhangsan", "lisi"]
    assert "11月15日（周日）是第一党支部主题党日" in r.text
    day, r = found["theme-day:branch-2:2026-11:secretary"]
    assert day == date(2026, 11, 10) and r.to == ["shuji"]


def test_secretary_step_on_an_adjusted_saturday():
    # 15 October 2026 minus 5 days is Saturday the 10th, a 调休 working day.
    found = by_key(run_days(theme_day.due, snapshot(), S, date(2026, 10, 1), date(2026, 10, 31)))
    assert found["theme-day:branch-2:2026-10:secretary"][0] == date(2026, 10, 10)


def test_per_branch_day_moved_out_of_national_day():
    s = settings_with(branches={"第二党支部": {"theme_day": 3}})
    found = by_key(run_days(theme_day.due, snapshot(), s, date(2026, 9, 1), date(2026, 10, 31)))
    # 3 October minus 2 days is 1 October (国庆): the members hear on 30 September.
    assert found["theme-day:branch-3:2026-10:members"][0] == date(2026, 9, 30)
    assert found["theme-day:branch-3:2026-10:secretary"][0] == date(2026, 9, 28)
    assert found["theme-day:branch-2:2026-10:members"][0] == date(2026, 10, 13)


def test_scheduled_activity_silences_the_secretary_and_tells_members_when():
    m = meeting(1, "主题党日", at(2026, 11, 14, 9, 0), branch=B1, place="红色教育基地")
    found = by_key(
        run_days(theme_day.due, snapshot(meetings=[m]), S, date(2026, 11, 1), date(2026, 11, 30))
    )
    assert "theme-day:branch-2:2026-11:secretary" not in found
    text = found["theme-day:branch-2:2026-11:members"][1].text
    assert "11月14日（周六）" in text and "红色教育基地" in text
    assert "theme-day:branch-3:2026-11:secretary" in found


def test_activity_already_held_this_month_needs_no_announcement():
    m = meeting(1, "主题党日", at(2026, 11, 6, 9, 0), branch=B1, status="held")
    found = by_key(
        run_days(theme_day.due, snapshot(meetings=[m]), S, date(2026, 11, 1), date(2026, 11, 30))
    )
    assert "theme-day:branch-2:2026-11:members" not in found
    assert "theme-day:branch-2:2026-11:secretary" not in found
    assert "theme-day:branch-3:2026-11:members" in found


def test_year_end_next_months_day_one():
    s = settings_with(theme_day={"day": 1})
    found = by_key(run_days(theme_day.due, snapshot(), s, date(2026, 12, 20), date(2026, 12, 31)))
    # 1 January 2027 minus 2 and 5 days: 30 and 27 December (27th is a Sunday -> 25th).
    assert found["theme-day:branch-2:2027-01:members"][0] == date(2026, 12, 30)
    assert found["theme-day:branch-2:2027-01:secretary"][0] == date(2026, 12, 25)


def test_joiner_included_leaver_not():
    members = people()
    del members[3]
    members[9] = person(9, "newcomer")
    found = by_key(
        run_days(
            theme_day.due, snapshot(members=members), S, date(2026, 11, 13), date(2026, 11, 13)
        )
    )
    assert found["theme-day:branch-2:2026-11:members"][1].to == [
        "shuji",
        "weiyuan",
        "lisi",
        "newcomer",
    ]
