"""Leaders with a 联系点: a quarterly note to visit it; a note to attend its 组织生活会."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import leaders
from tests.snapshot import B1, at, by_key, meeting, people, run_days, settings_with, snapshot

S = Settings()


def test_quarterly_visit_on_the_quarters_first_workday():
    found = by_key(run_days(leaders.due, snapshot(), S, date(2026, 1, 1), date(2026, 12, 31)))
    visits = {k: d for k, (d, _) in found.items() if k.startswith("leader-visit")}
    assert visits == {
        "leader-visit:2026-Q1:member-8": date(2026, 1, 4),  # Sunday 4 Jan, a working day
        "leader-visit:2026-Q2:member-8": date(2026, 4, 1),
        "leader-visit:2026-Q3:member-8": date(2026, 7, 1),
        "leader-visit:2026-Q4:member-8": date(2026, 10, 8),  # after 国庆
    }
    r = found["leader-visit:2026-Q4:member-8"][1]
    assert r.to == ["leader"] and "第一党支部" in r.text


def test_visit_note_tells_what_the_branch_missed_last_quarter():
    held = [meeting(i, "支委会", at(2026, m, 10, 14), status="held") for i, m in ((1, 7), (2, 8))]
    found = by_key(
        run_days(leaders.due, snapshot(meetings=held), S, date(2026, 10, 8), date(2026, 10, 8))
    )
    text = found["leader-visit:2026-Q4:member-8"][1].text
    assert "支委会（1个月未达）" in text and "支部党员大会（1个季度未达）" in text


def test_attend_the_branch_life_meeting():
    m = meeting(1, "组织生活会", at(2026, 12, 18, 14, 30), branch=B1, created=at(2026, 11, 2, 10))
    found = by_key(
        run_days(leaders.due, snapshot(meetings=[m]), S, date(2026, 11, 1), date(2026, 12, 31))
    )
    day, r = found["leader-attend:meeting-1:member-8"]
    assert day == date(2026, 12, 4) and r.to == ["leader"] and r.until == m.starts_at
    assert "双重组织生活" in r.text


def test_late_scheduled_meeting_is_announced_at_once_and_other_branches_ignored():
    m = meeting(
        1, "组织生活会", at(2026, 12, 18, 14, 30), branch=B1, created=at(2026, 12, 14, 18, 30)
    )
    found = by_key(
        run_days(leaders.due, snapshot(meetings=[m]), S, date(2026, 12, 1), date(2026, 12, 18))
    )
    assert found["leader-attend:meeting-1:member-8"][0] == date(2026, 12, 15)
    other = meeting(2, "组织生活会", at(2026, 12, 18, 14, 30), branch=3)
    found = by_key(
        run_days(leaders.due, snapshot(meetings=[other]), S, date(2026, 12, 1), date(2026, 12, 18))
    )
    assert not any(k.startswith("leader-attend") for k in found)


def test_switched_off_and_a_leader_without_liaison():
    off = settings_with(leaders={"quarterly_visit": False})
    assert run_days(leaders.due, snapshot(), off, date(2026, 1, 1), date(2026, 12, 31)) == {}
    members = people()
    members[8].liaison_branch_id = None
    assert (
        run_days(leaders.due, snapshot(members=members), S, date(2026, 1, 1), date(2026, 3, 31))
        == {}
    )
