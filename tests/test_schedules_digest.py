"""The weekly digest: the first workday of each week, each branch's secretaries get its
status."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import digest
from schedules.base import TaskInfo
from tests.snapshot import B1, at, by_key, meeting, notice, run_days, settings_with, snapshot

S = settings_with(milestones=[])


def test_first_workday_of_each_week():
    days = run_days(digest.due, snapshot(), S, date(2026, 9, 14), date(2026, 10, 18))
    # Mondays, except the 国庆 week (Thursday 8 Oct); Sun 20 Sep (调休) is not a week's first.
    assert sorted(days) == [
        date(2026, 9, 14),
        date(2026, 9, 21),
        date(2026, 9, 28),
        date(2026, 10, 8),
        date(2026, 10, 12),
    ]
    assert {r.key for r in days[date(2026, 10, 8)]} == {
        "digest:2026-W41:branch-2",
        "digest:2026-W41:branch-3",
    }


def test_spring_festival_week_has_no_digest_and_year_end_week_numbers():
    days = run_days(digest.due, snapshot(), S, date(2026, 2, 14), date(2026, 2, 25))
    # 14 Feb (Sat) is a 调休 working day but not its week's first; 16–22 Feb is all 春节.
    assert sorted(days) == [date(2026, 2, 24)]
    days = run_days(digest.due, snapshot(), S, date(2026, 12, 28), date(2027, 1, 4))
    assert {r.key for r in days[date(2026, 12, 28)]} >= {"digest:2026-W53:branch-2"}


def test_contents_and_recipients():
    data = snapshot(
        meetings=[meeting(1, "支委会", at(2026, 11, 26, 14, 30))],
        notices=[notice(5, at(2026, 11, 20, 10, 0), open_for=[3, 4])],
        tasks=[TaskInfo(7, "报送学习计划", B1, date(2026, 11, 30))],
        dues={1: {"2026-11"}, 2: {"2026-11"}},
        dues_since="2026-01",
    )
    found = by_key(run_days(digest.due, data, S, date(2026, 11, 23), date(2026, 11, 23)))
    r = found["digest:2026-W48:branch-2"][1]
    assert r.to == ["shuji"]
    assert "本月支委会：已召开0/1次" not in r.text  # scheduled this week: counted as planned
    assert "11月党费未交2人" in r.text
    assert "通知5未确认2人" in r.text
    assert "「报送学习计划」11月30日（周一）截止" in r.text
    assert "近期会议：11月26日（周四）14:30 支委会" in r.text
    assert "本月主题党日：已召开0/1次" in r.text


def test_can_be_switched_off():
    off = settings_with(digest={"weekly": False})
    assert run_days(digest.due, snapshot(), off, date(2026, 11, 1), date(2026, 11, 30)) == {}


def test_default_settings_sendable():
    assert by_key(
        run_days(digest.due, snapshot(), Settings(), date(2026, 1, 1), date(2026, 12, 31))
    )
