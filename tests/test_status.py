"""bot/status.py: cadence per period (month, quarter and year ends in Asia/Shanghai), 学时 pace,
the branch status and the explained scorecard, with the clock frozen."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot.clock import SHANGHAI, to_utc
from bot.config import CadenceOverride
from bot.models import Attendance, DuesRecord, Meeting, StudyRecord, Task
from bot.status import (
    branch_status,
    cadence_status,
    dues_months_due,
    render_branch_status,
    scorecards,
    study_progress,
    year_fraction,
)
from tests.factories import org


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return to_utc(datetime(y, m, d, hh, mm, tzinfo=SHANGHAI))


def meeting(
    session,
    branch,
    kind,
    starts,
    *,
    status="held",
    group=None,
    topic="",
    minutes=90,
    first_topic=None,
):
    m = Meeting(
        branch_id=branch.id, group_id=group.id if group else None, kind=kind, starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes), status=status, topic=topic, created_at=starts,
        first_topic=first_topic,
    )  # fmt: skip
    session.add(m)
    session.flush()
    return m


def lines(session, settings, branch, now):
    return {
        (c.kind, c.group_name): c
        for c in cadence_status(session=session, settings=settings, branches=[branch], now=now)[
            branch.id
        ]
    }


def test_month_boundary_is_midnight_in_shanghai(session, settings, bureau):
    b1 = bureau["b1"]
    meeting(session, b1, "支委会", at(2026, 11, 30, 23, 30))  # 15:30 UTC on the 30th
    meeting(session, b1, "支委会", at(2026, 12, 1, 0, 30))  # 16:30 UTC on the 30th
    session.commit()
    nov = lines(session, settings, b1, at(2026, 11, 30, 23, 59))[("支委会", None)]
    assert (nov.held, nov.start, nov.end, nov.days_left) == (
        1,
        date(2026, 11, 1),
        date(2026, 11, 30),
        0,
    )
    dec = lines(session, settings, b1, at(2026, 12, 1, 10))[("支委会", None)]
    assert (dec.held, dec.start, dec.days_left, dec.met) == (1, date(2026, 12, 1), 30, True)


def test_quarter_and_year_ends(session, settings, bureau):
    b1 = bureau["b1"]
    meeting(session, b1, "党课", at(2026, 9, 30, 15))
    meeting(session, b1, "组织生活会", at(2026, 12, 31, 9))
    session.commit()
    q3 = lines(session, settings, b1, at(2026, 9, 30, 18))[("党课", None)]
    assert (q3.held, q3.period, q3.end) == (1, "quarter", date(2026, 9, 30))
    q4 = lines(session, settings, b1, at(2026, 10, 1, 9))[("党课", None)]
    assert (q4.held, q4.owed, q4.days_left) == (0, 1, 91)
    assert lines(session, settings, b1, at(2026, 12, 31, 12))[("组织生活会", None)].met
    jan = lines(session, settings, b1, at(2027, 1, 1, 9))[("组织生活会", None)]
    assert (jan.held, jan.start, jan.end) == (0, date(2027, 1, 1), date(2027, 12, 31))


def test_held_scheduled_and_cancelled(session, settings, bureau):
    b1 = bureau["b1"]
    now = at(2026, 11, 25, 10, 7)
    meeting(session, b1, "支委会", at(2026, 11, 25, 10), status="scheduled")  # started: counts held
    meeting(session, b1, "支委会", at(2026, 11, 28, 10), status="scheduled")  # still to come
    meeting(session, b1, "支委会", at(2026, 11, 3, 10), status="cancelled")
    session.commit()
    line = lines(session, settings, b1, now)[("支委会", None)]
    assert (line.held, line.scheduled) == (1, 1)


def test_group_rules_apply_per_group_and_not_to_branches_without_groups(session, settings, bureau):
    b1, b2, g1 = bureau["b1"], bureau["b2"], bureau["g1"]
    g2 = org(session, "第一党支部/第二党小组", "党小组", parent=b1)
    meeting(session, b1, "党小组会", at(2026, 11, 10), group=g1)
    session.commit()
    now = at(2026, 11, 25)
    got = lines(session, settings, b1, now)
    assert got[("党小组会", "第一党小组")].met and not got[("党小组会", "第二党小组")].met
    assert g2.id is not None
    assert not any(kind == "党小组会" for kind, _ in lines(session, settings, b2, now))


def test_secretary_lecture_is_a_lesson_naming_the_secretary(session, settings, bureau):
    b1 = bureau["b1"]
    meeting(session, b1, "党课", at(2026, 5, 10), topic="书记讲党课：传承红色基因")
    session.commit()
    got = lines(session, settings, b1, at(2026, 5, 20))
    assert got[("书记讲党课", None)].held == 1 and got[("党课", None)].held == 1


def test_per_branch_override(session, settings, bureau):
    rule = next(r for r in settings.cadence if r.kind == "党课")
    rule.overrides["第一党支部"] = CadenceOverride(period="month")
    got = lines(session, settings, bureau["b1"], at(2026, 11, 25))
    assert got[("党课", None)].period == "month"
    assert (
        lines(session, settings, bureau["b2"], at(2026, 11, 25))[("党课", None)].period == "quarter"
    )


def test_leadership_and_coverage_rules_are_not_branch_lines(session, settings, bureau):
    kinds = {k for k, _ in lines(session, settings, bureau["b1"], at(2026, 11, 25))}
    assert "民主生活会" not in kinds and "谈心谈话" not in kinds
    assert {"支委会", "支部党员大会", "党课", "主题党日", "组织生活会"} <= kinds


def test_year_fraction_and_pace(session, settings, bureau):
    assert year_fraction(date(2026, 1, 1)) == pytest.approx(1 / 365)
    assert year_fraction(date(2026, 12, 31)) == 1
    assert year_fraction(date(2028, 12, 31)) == 1  # leap year
    member, committee = bureau["member"], bureau["committee"]
    session.add(StudyRecord(member_id=member.id, minutes=600, topic="", at=at(2026, 3, 1)))
    session.add(
        StudyRecord(member_id=member.id, minutes=600, topic="", at=at(2025, 12, 31))
    )  # last year
    session.add(StudyRecord(member_id=committee.id, minutes=None, topic="自学", at=at(2026, 3, 1)))
    session.commit()
    now = at(2026, 7, 2, 12)  # day 183 of 365
    p_member, p_committee = study_progress(
        session=session, settings=settings, members=[member, committee], now=now
    )
    assert (p_member.hours, p_member.target_hours, p_member.expected_hours) == (10, 32, 16.0)
    assert p_member.behind
    assert (p_committee.minutes, p_committee.target_hours, p_committee.expected_hours) == (
        0,
        56,
        28.1,
    )


def test_dues_months_due_follow_the_dues_day():
    assert dues_months_due(date(2026, 11, 4), 5, date(2026, 1, 1)) == [
        f"2026-{m:02d}" for m in range(1, 11)
    ]
    assert dues_months_due(date(2026, 11, 5), 5, date(2026, 1, 1))[-1] == "2026-11"
    assert dues_months_due(date(2026, 1, 3), 5, date(2026, 1, 1)) == []
    assert dues_months_due(date(2026, 11, 25), 5, date(2026, 9, 12)) == [
        "2026-09",
        "2026-10",
        "2026-11",
    ]


def test_branch_status_brings_everything_together(session, settings, bureau):
    b1 = bureau["b1"]
    now = at(2026, 11, 25, 10, 7)
    meeting(session, b1, "支委会", at(2026, 11, 3))  # no 第一议题
    meeting(session, b1, "主题党日", at(2026, 11, 15), first_topic=None)
    meeting(session, b1, "支部党员大会", at(2026, 11, 30, 14, 30), status="scheduled")
    session.add(DuesRecord(member_id=bureau["member"].id, month="2026-11", paid_at=now))
    session.add(Task(name="报送整改清单", branch_id=b1.id, due_on=date(2026, 11, 20)))
    session.add(Task(name="报送总结", branch_id=b1.id, due_on=date(2026, 12, 1)))
    session.add(Task(name="明年计划", branch_id=b1.id, due_on=date(2027, 3, 1)))
    session.commit()
    st = branch_status(session=session, settings=settings, branch=b1, now=now)
    assert [m.kind for m in st.missing_first_topic] == ["支委会"]
    assert st.dues_unpaid == ["王书记", "李委员", "赵四"]
    assert [(t.name, t.days_left) for t in st.tasks] == [("报送整改清单", -5), ("报送总结", 6)]
    assert [m.kind for m in st.next_meetings] == ["支部党员大会"]
    assert st.study is not None and st.study.members == 4
    text = render_branch_status(st)
    assert text.splitlines()[0] == "第一党支部 · 11月25日（周三）"
    assert "· 支委会（每月≥1次）：本月1/1 ▰▰▰▰▰ ✓" in text
    assert "· 支部党员大会（每季度≥1次）：本季度0/1 ▱▱▱▱▱ 还剩36天，已安排1次" in text
    assert "· 党小组会（第一党小组）（每月≥1次）：本月0/1 ▱▱▱▱▱ 还剩5天" in text
    assert "支委会未记录第一议题：11月3日" in text
    assert "11月党费未交 3 人：王书记、李委员、赵四" in text
    assert "任务「报送整改清单」11月20日截止，已逾期5天" in text
    assert "任务「报送总结」12月1日截止，还有6天" in text
    assert "明年计划" not in text
    assert "· 支部党员大会 11月30日（周一）14:30" in text
    office_view = branch_status(
        session=session, settings=settings, branch=b1, now=now, with_study=False
    )
    assert office_view.study is None and "学时" not in render_branch_status(office_view)


def _full_marks(session, branch, members, year_months, now):
    """A branch that did everything: every rule every period, everyone present and paid."""
    for month in year_months:
        for kind in ("支委会", "主题党日"):
            m = meeting(session, branch, kind, at(2026, month, 10))
            for p in members:
                session.add(
                    Attendance(meeting_id=m.id, member_id=p.id, status="signed_in", at=m.starts_at)
                )
        if month in (1, 4, 7, 10):
            meeting(session, branch, "支部党员大会", at(2026, month, 12))
            meeting(session, branch, "党课", at(2026, month, 13), topic="书记讲党课")
        for p in members:
            session.add(DuesRecord(member_id=p.id, month=f"2026-{month:02d}", paid_at=now))
    meeting(session, branch, "组织生活会", at(2026, 1, 20))


def test_scorecards_zero_hundred_and_between_with_every_part_explained(session, settings):
    root = org(session, "机关党委", "党委")
    good, bad, mixed = (org(session, n, parent=root) for n in ("甲支部", "乙支部", "丙支部"))
    from tests.factories import member

    people = {b.id: [member(session, b) for _ in range(2)] for b in (good, bad, mixed)}
    now = at(2026, 11, 25, 10)
    months = range(1, 12)
    _full_marks(session, good, people[good.id], months, now)
    # 丙: 支委会 only in even months, half the attendance, half the dues, one task late.
    for month in months:
        if month % 2 == 0:
            m = meeting(session, mixed, "支委会", at(2026, month, 10))
            a, b = people[mixed.id]
            session.add(
                Attendance(meeting_id=m.id, member_id=a.id, status="signed_in", at=m.starts_at)
            )
            session.add(
                Attendance(meeting_id=m.id, member_id=b.id, status="absent", at=m.starts_at)
            )
        session.add(
            DuesRecord(member_id=people[mixed.id][0].id, month=f"2026-{month:02d}", paid_at=now)
        )
    session.add(
        Task(name="计划", branch_id=mixed.id, due_on=date(2026, 4, 30), done_at=at(2026, 5, 3))
    )
    session.add(
        Task(name="计划", branch_id=good.id, due_on=date(2026, 4, 30), done_at=at(2026, 4, 29))
    )
    session.add(Task(name="计划", branch_id=bad.id, due_on=date(2026, 4, 30)))
    session.commit()
    cards = {c.branch: c for c in scorecards(session=session, settings=settings, now=now)}
    g, b, x = cards["甲支部"], cards["乙支部"], cards["丙支部"]
    assert g.total == 100
    assert {p.key: (p.done, p.due) for p in g.parts} == {
        # closed periods all met, plus the current ones already met: 支委会 and 主题党日
        # 11 months, 大会 and 党课 4 quarters, 书记讲党课 and 组织生活会 this year.
        "cadence": (11 + 11 + 4 + 4 + 1 + 1, 32),
        "attendance": (44, 44),
        "dues": (22, 22),
        "tasks": (1, 1),
    }
    assert b.total == 0
    assert {p.key: (p.done, p.due) for p in b.parts}["cadence"] == (0, 10 + 10 + 3 + 3)
    assert {p.key: (p.done, p.due) for p in b.parts}["attendance"] == (0, 0)  # nothing held
    parts = {p.key: p for p in x.parts}
    assert (parts["cadence"].done, parts["cadence"].due) == (5, 26)
    assert (parts["attendance"].done, parts["attendance"].due) == (5, 10)
    assert (parts["dues"].done, parts["dues"].due) == (11, 22)
    assert (parts["tasks"].done, parts["tasks"].due) == (0, 1)
    expected = 100 * (40 * 5 / 26 + 20 * 0.5 + 20 * 0.5 + 0) / 100
    assert x.total == pytest.approx(round(expected, 1))
    # Ordered by what is still owed this period, then roster order; never by score.
    order = [c.branch for c in scorecards(session=session, settings=settings, now=now)]
    assert order[0] == "乙支部" and order.index("甲支部") > order.index("乙支部")
    assert b.overdue_tasks == 1 and {c.kind for c in b.owed} >= {"支委会", "主题党日", "党课"}


def test_scorecard_counts_from_when_records_begin(session, settings):
    root = org(session, "机关党委", "党委")
    branch = org(session, "甲支部", parent=root)
    meeting(session, branch, "支委会", at(2026, 9, 10))
    meeting(session, branch, "支委会", at(2026, 10, 10))
    session.commit()
    card = scorecards(session=session, settings=settings, now=at(2026, 11, 25))[0]
    cadence = next(p for p in card.parts if p.key == "cadence")
    # Sep and Oct for 支委会 and 主题党日 (Nov still open), Q3 for 大会 and 党课: 2 of 6.
    assert (cadence.done, cadence.due) == (2, 6)
    assert card.since == date(2026, 9, 10)


def test_no_study_part_by_default_and_no_person_in_a_scorecard(session, settings, bureau):
    card = scorecards(session=session, settings=settings, now=at(2026, 11, 25))[0]
    assert "study" not in {p.key for p in card.parts}
    data = card.to_json()
    assert set(data) == {"branch", "score", "since", "parts", "owed", "overdue_tasks"}
    settings.score.study = 10
    card = scorecards(session=session, settings=settings, now=at(2026, 11, 25))[0]
    assert "study" in {p.key for p in card.parts}


def test_bureau_unmet_is_remembered_only_until_it_can_change(session, settings, bureau):
    from bot.status import bureau_unmet
    from bot.store import list_branches

    b1 = bureau["b1"]
    meeting(session, b1, "支委会", at(2026, 11, 25, 15), status="scheduled")
    session.commit()
    branches = list_branches(session=session)

    def owes_committee(now):
        lines = bureau_unmet(session=session, settings=settings, branches=branches, now=now)[b1.id]
        return any(c.kind == "支委会" for c in lines)

    assert owes_committee(at(2026, 11, 25, 10))
    assert owes_committee(at(2026, 11, 25, 14, 59))  # remembered: nothing changed yet
    assert not owes_committee(at(2026, 11, 25, 15, 0))  # the meeting started: it counts now
    b2 = bureau["b2"]
    assert any(
        c.kind == "支委会"
        for c in bureau_unmet(
            session=session, settings=settings, branches=branches, now=at(2026, 11, 25, 15, 1)
        )[b2.id]
    )
    meeting(session, b2, "支委会", at(2026, 11, 20, 9))  # a new meeting (a new id) is seen at once
    session.commit()
    assert not any(
        c.kind == "支委会"
        for c in bureau_unmet(
            session=session, settings=settings, branches=branches, now=at(2026, 11, 25, 15, 2)
        )[b2.id]
    )
