"""The office's daily note of what WeCom did not (surely) deliver.

- Refused recipients (``invaliduser``, 81013): the outbox rows the WeCom channel marked
  failed with those reasons. The usual cause is a member outside the app's visible range
  (可见范围) or a userid in the roster that does not match WeCom.
- Unknown outcomes: rows settled ``unknown`` — a send that got no answer (timeout, dropped
  connection, 5xx) and could no longer be repeated safely inside WeCom's duplicate window
  (:mod:`bot.channels.wecom.channel`). They may or may not have arrived, so they are listed
  apart, by the day the unanswered call went out, for the office to check with the people.

Nothing new is stored: once a day the rows of each earlier day (a week back) become one note
to every 党委办 member, keyed ``wecom-invalid:<date>:<userid>`` so that any number of workers
queue it once.
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
from bot.outbox import FAILED, UNKNOWN, Outgoing, enqueue, text_body

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


UNKNOWN_LOOKBACK_DAYS = 30
"""How far back a row's due time may lie behind the unanswered call (an outage delays it)."""


def unknown_by_day(session: Session, *, today: date) -> dict[date, dict[str, int]]:
    """Per local day an unanswered call went out (a week back, before ``today``): the
    recipients of rows settled unknown, with how many such messages each."""
    from bot.channels.wecom.channel import unsure_since

    since = today - timedelta(days=LOOKBACK_DAYS)
    oldest = to_utc(
        datetime.combine(since - timedelta(days=UNKNOWN_LOOKBACK_DAYS), time(0), tzinfo=SHANGHAI)
    )
    rows = session.execute(
        select(
            col(OutboxMessage.recipient), col(OutboxMessage.last_error), col(OutboxMessage.due_at)
        ).where(
            col(OutboxMessage.channel) == "wecom",
            col(OutboxMessage.status) == UNKNOWN,
            col(OutboxMessage.due_at) >= oldest,
        )
    ).all()
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for recipient, reason, due_at in rows:
        day = local_date(unsure_since(reason or "") or due_at)
        if since <= day < today:
            days[day][recipient] += 1
    return {d: dict(sorted(v.items())) for d, v in sorted(days.items())}


def plan_invalid_report(session: Session, *, settings: Settings, now: datetime) -> list[Outgoing]:
    """The notes to queue now (already-queued ones are dropped by their keys on enqueue)."""
    today = local_date(now)
    refused = refused_by_day(session, today=today)
    unknown = unknown_by_day(session, today=today)
    if not refused and not unknown:
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

    def who(userids: list[str]) -> str:
        listed = "、".join(f"{names.get(u, u)}（{u}）" for u in userids[:50])
        return listed + (f" 等 {len(userids)} 人" if len(userids) > 50 else "")

    out = []
    for day in sorted(refused.keys() | unknown.keys()):
        when = f"{day.month}月{day.day}日"
        lines = []
        if day in refused:
            userids = refused[day]
            lines.append(
                messages.WECOM_INVALID_REPORT.format(
                    date=when, count=len(userids), who=who(userids)
                )
            )
        if day in unknown:
            counts = unknown[day]
            lines.append(
                messages.WECOM_UNKNOWN_REPORT.format(
                    date=when, count=len(counts), n=sum(counts.values()), who=who(list(counts))
                )
            )
        text = "\n".join(lines)
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
