"""The planning snapshot reads only part of the year's meetings (``schedules.data``): every
count a rule makes must still see the meetings it counts."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session

from bot.clock import SHANGHAI
from bot.config import CadenceOverride
from bot.models import Meeting
from schedules.base import PlanData
from schedules.cadence import tally
from schedules.data import load_plan_data
from schedules.runner import calendar_for


def sh(y: int, m: int, d: int, hh: int = 14) -> datetime:
    return datetime(y, m, d, hh, tzinfo=SHANGHAI)


def _held(session: Session, branch_id: int, kind: str, at: datetime, topic: str = "") -> None:
    session.add(
        Meeting(
            branch_id=branch_id,
            kind=kind,
            topic=topic,
            starts_at=at,
            ends_at=at,
            status="held",
            created_at=at,
        )
    )


def _snapshot(engine, settings, now: datetime) -> PlanData:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return load_plan_data(
            s, settings, calendar_for(settings.calendar), first_day=now.date(), now=now
        )


def _count(data: PlanData, branch_id: int, kind: str, start: date, end: date) -> int:
    meetings = data.meetings_by_branch.get(branch_id, [])
    return tally(meetings, kind, start, end, sh(2030, 1, 1))[0]


def test_yearly_counts_and_last_quarter_see_their_meetings(engine, settings, bureau, session):
    b1 = bureau["b1"].id  # type: ignore[attr-defined]
    _held(session, b1, "党课", sh(2026, 2, 10), topic="书记讲党课：新时代党的建设")
    _held(session, b1, "组织生活会", sh(2026, 3, 5))
    _held(session, b1, "支委会", sh(2026, 2, 12))
    _held(session, b1, "支委会", sh(2026, 8, 12))
    _held(session, b1, "支部党员大会", sh(2026, 8, 20))
    _held(session, b1, "支委会", sh(2026, 11, 10))
    session.commit()

    november = _snapshot(engine, settings, sh(2026, 11, 13, 9))
    assert _count(november, b1, "书记讲党课", date(2026, 1, 1), date(2026, 12, 31)) == 1
    assert _count(november, b1, "组织生活会", date(2026, 1, 1), date(2026, 12, 31)) == 1
    # A liaison leader's "last quarter" (July–September).
    assert _count(november, b1, "支委会", date(2026, 7, 1), date(2026, 9, 30)) == 1
    assert _count(november, b1, "支部党员大会", date(2026, 7, 1), date(2026, 9, 30)) == 1

    # In January the last quarter is October–December of the year before.
    january = _snapshot(engine, settings, sh(2027, 1, 15, 9))
    assert _count(january, b1, "支委会", date(2026, 10, 1), date(2026, 12, 31)) == 1

    # A branch whose 支委会 is counted over the year (an override) sees February's too.
    rule = next(r for r in settings.cadence if r.kind == "支委会")
    rule.overrides = {"第一党支部": CadenceOverride(period="year")}
    yearly = _snapshot(engine, settings, sh(2026, 11, 13, 9))
    assert _count(yearly, b1, "支委会", date(2026, 1, 1), date(2026, 12, 31)) == 3
