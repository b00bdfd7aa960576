"""The demo bureau (``mofan init --demo``) and the synthetic bureaus of the benches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, SQLModel, col

from bot.clock import local
from bot.demo import DEMO_ROOT, generate_bureau, load_demo
from bot.models import (
    Attendance,
    DuesRecord,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    StudyRecord,
)

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # a Friday, 10:00 in Shanghai
TABLES: tuple[type[SQLModel], ...] = (
    Org,
    Member,
    Meeting,
    Attendance,
    StudyRecord,
    DuesRecord,
    Notice,
    NoticeReceipt,
)


def _counts(session: Session) -> dict[str, int]:
    return {t.__name__: session.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 12, 31, 15, 59, tzinfo=UTC),  # 23:59 on New Year's Eve in Shanghai
        datetime(2028, 2, 29, 1, 0, tzinfo=UTC),  # a leap day, early in a month
        datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
    ],
)
def test_demo_has_every_role(session: Session, now: datetime) -> None:
    load_demo(session=session, now=now)
    session.commit()
    today = local(now).date()

    members = list(session.scalars(select(Member)))
    orgs = {o.id: o for o in session.scalars(select(Org))}
    assert 28 <= len(members) <= 32
    kinds = [o.kind for o in orgs.values()]
    assert kinds.count("党委") == 1 and kinds.count("党支部") == 3 and "党小组" in kinds
    assert next(o for o in orgs.values() if o.kind == "党委").name == DEMO_ROOT

    duties = {d for m in members for d in m.duties.split("、") if d}
    assert duties == {"书记", "副书记", "组织委员", "宣传委员", "纪检委员", "委员"}
    assert any(not m.duties and not m.roles for m in members)  # plain members
    for branch in (o for o in orgs.values() if o.kind == "党支部"):
        in_branch = [m for m in members if m.branch_id == branch.id]
        assert sum("书记" in m.duties.split("、") for m in in_branch) == 1, branch.name
    office = [m for m in members if "党委办" in m.roles]
    assert [m.userid for m in office] == ["office"]
    leaders = [m for m in members if "党委委员" in m.roles]
    assert len(leaders) == 2
    for leader in leaders:
        assert leader.liaison_branch_id is not None
        assert orgs[leader.liaison_branch_id].kind == "党支部"
        assert leader.liaison_branch_id != leader.branch_id
    assert all(m.userid.isascii() and m.userid.isalnum() for m in members)

    # Political birthdays all year; probations ending soon; one branch near its 换届.
    assert {m.joined_on.month for m in members if m.joined_on} == set(range(1, 13))
    probation = [m for m in members if m.category == "预备党员"]
    assert len(probation) >= 2
    ends = sorted((m.full_on - today).days for m in probation if m.full_on)
    assert 0 < ends[0] <= 31 and ends[1] <= 62
    assert all(m.full_on == _add_years(m.joined_on, 1) for m in probation if m.joined_on)
    terms_left = sorted(
        (_add_years(o.term_started_on, 3) - today).days
        for o in orgs.values()
        if o.kind == "党支部" and o.term_started_on
    )
    assert 0 < terms_left[0] <= 183 < terms_left[1]

    # Something for 状态 and 我的 to show, all of it in the past except what is scheduled.
    counts = _counts(session)
    assert counts["Meeting"] >= 8 and counts["Attendance"] >= 30
    assert counts["StudyRecord"] >= 20 and counts["DuesRecord"] >= 2
    assert counts["NoticeReceipt"] == len(members)
    meetings = list(session.scalars(select(Meeting)))
    assert all((m.status == "held") == (m.starts_at < now) for m in meetings)
    assert any(m.status == "scheduled" for m in meetings)
    assert any(m.first_topic for m in meetings if m.kind == "支委会")
    statuses = set(session.scalars(select(col(Attendance.status))))
    assert statuses == {"signed_in", "leave", "absent"}
    assert max(session.scalars(select(col(StudyRecord.at)))) < now
    assert now - timedelta(days=43) < min(session.scalars(select(col(StudyRecord.at))))


def test_demo_is_idempotent(session: Session) -> None:
    load_demo(session=session, now=NOW)
    session.commit()
    before = _counts(session)
    load_demo(session=session, now=NOW + timedelta(days=1))
    session.commit()
    assert _counts(session) == before


def test_demo_refuses_a_database_with_a_roster(session: Session) -> None:
    branch = Org(name="某支部", kind="党支部")
    session.add(branch)
    session.flush()
    assert branch.id is not None
    session.add(Member(userid="someone", name="某人", branch_id=branch.id))
    session.commit()
    with pytest.raises(ValueError, match="已有党员名单"):
        load_demo(session=session, now=NOW)


def test_generate_bureau_with_a_year_of_data(session: Session) -> None:
    counts = generate_bureau(
        session=session, members=120, branches=6, now=NOW, seed=1, year_of_data=True
    )
    session.commit()

    stored = _counts(session)
    assert counts["member"] == stored["Member"] == 120
    assert counts["org"] == stored["Org"] == 1 + 6 + 12
    assert counts["attendance"] == stored["Attendance"] > 0
    assert counts["noticereceipt"] == stored["NoticeReceipt"] > 0
    members = {m.id: m for m in session.scalars(select(Member))}
    assert sum("书记" == m.duties for m in members.values()) == 6
    assert [m.userid for m in members.values() if m.roles == "党委办"] == ["office"]
    assert sum(m.roles == "党委委员" for m in members.values()) == 5
    # Attendance belongs to the meeting's branch, and group meetings to the group.
    meetings = {m.id: m for m in session.scalars(select(Meeting))}
    for a in session.scalars(select(Attendance)):
        meeting, member = meetings[a.meeting_id], members[a.member_id]
        assert member.branch_id == meeting.branch_id
        if meeting.group_id is not None:
            assert member.group_id == meeting.group_id
    assert all(m.starts_at < NOW for m in meetings.values())
    assert min(m.starts_at for m in meetings.values()) >= NOW - timedelta(days=366)


def test_generate_bureau_needs_an_empty_database(session: Session) -> None:
    load_demo(session=session, now=NOW)
    with pytest.raises(ValueError, match="empty"):
        generate_bureau(session=session, members=10, branches=2, now=NOW)
