"""The office's daily note of recipients WeCom refused (``invaliduser``, 81013).

Refusals are not kept anywhere new: they are the outbox rows the WeCom channel marked
failed with those reasons. Once a day the refusals of each earlier day (a week back) become
one note to every 党委办 member, keyed ``wecom-invalid:<date>:<userid>`` so that any number of
workers queue it once. The usual cause is a member outside the app's visible range (可见范围)
or a userid in the roster that does not match WeCom.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, or_, select
from sqlmodel import Session, col

from bot import messages
from bot.calendar import WorkCalendar, local_date, next_send_slot
from bot.clock import SHANGHAI, to_utc
from bot.config import Settings
from bot.models import Member, OutboxMessage
from bot.outbox import FAILED, Outgoing, enqueue, text_body

LOOKBACK_DAYS = 7
REFUSALS = ("invaliduser%", "81013%")


def refused_by_day(session: Session, *, today: date) -> dict[date, list[str]]:
    """Refused recipients per local day, for the days before ``today`` (a week back)."""
    since = to_utc(
        datetime.combine(today - timedelta(days=LOOKBACK_DAYS), time(0), tzinfo=SHANGHAI)
    )
    until = to_utc(datetime.combine(today, time(0), tzinfo=SHANGHAI))
    rows = session.execute(
        select(col(OutboxMessage.recipient), col(OutboxMessage.due_at)).where(
            col(OutboxMessage.channel) == "wecom",
            col(OutboxMessage.status) == FAILED,
            or_(*(col(OutboxMessage.last_error).like(p) for p in REFUSALS)),
            col(OutboxMessage.due_at) >= since,
            col(OutboxMessage.due_at) < until,
        )
    ).all()
    days: dict[date, set[str]] = defaultdict(set)
    for recipient, due_at in rows:
        days[local_date(due_at)].add(recipient)
    return {d: sorted(v) for d, v in sorted(days.items())}


def plan_invalid_report(session: Session, *, settings: Settings, now: datetime) -> list[Outgoing]:
    """The notes to queue now (already-queued ones are dropped by their keys on enqueue)."""
    days = refused_by_day(session, today=local_date(now))
    if not days:
        return []
    office = [
        m
        for m in session.execute(select(Member).where(col(Member.active))).scalars()
        if "党委办" in m.roles.split("、")
    ]
    if not office:
        return []
    names = {u: n for u, n in session.execute(select(col(Member.userid), col(Member.name))).all()}
    cal = WorkCalendar.from_settings(settings.calendar)
    due = next_send_slot(now, settings.bot.send_window, cal)
    out = []
    for day, userids in days.items():
        who = "、".join(f"{names.get(u, u)}（{u}）" for u in userids[:50])
        if len(userids) > 50:
            who += f" 等 {len(userids)} 人"
        text = messages.WECOM_INVALID_REPORT.format(
            date=f"{day.month}月{day.day}日", count=len(userids), who=who
        )
        for m in office:
            out.append(
                Outgoing(
                    key=f"wecom-invalid:{day.isoformat()}:{m.userid}",
                    recipient=m.userid,
                    body=text_body(text),
                    due_at=due,
                    rule="wecom-invalid",
                )
            )
    return out


def enqueue_invalid_report(engine: Engine, *, settings: Settings, now: datetime) -> int:
    """Plan and queue the notes in one transaction; returns how many were new."""
    with Session(engine) as session:
        added = enqueue(session, plan_invalid_report(session, settings=settings, now=now), now=now)
        session.commit()
    return added
