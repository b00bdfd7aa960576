"""The thin runner: load the snapshot, call every rule, apply the sending policy, enqueue.

One **planning pass** (:func:`run_pass`, every minute under ``mofan serve``):

0. Outside the send window (or on a day off) a pass does nothing at all.
1. Which days to plan: today, plus every workday since the last pass (kept in ``AppState``
   ``planner_last_pass``; its own day too unless it ran in the window's last minute; at
   most :data:`MAX_CATCH_UP_DAYS` back). That is the catch-up: after a restart or a leader
   change the days the bot missed are planned again, and what is still relevant
   (``Reminder.until`` ahead) goes out now; the rest is dropped with a log line.
2. Config milestones are written as ``Task`` rows, so that 进度 can close them.
3. The rules run on one :class:`~schedules.base.PlanData` snapshot.
4. Sending policy (DESIGN §4.6): every reminder is already on a workday inside the send
   window (the rules place it); here it becomes one message per recipient, the plain-text
   reminders due to one person at the same moment are **merged** into one message, and the
   send moment is moved 1–9 minutes off :00/:30 by ``bot.calendar.spread``. The seed is the
   moment itself, so everything due at 09:00 goes together at, say, 09:04: one WeCom call per
   1,000 people and body, and one person's reminders of a moment stay one message.
5. A message is enqueued only once its moment has come (so a member who paid at 08:50 is
   not reminded at 09:04), under the key ``f"{reminder.key}:{userid}"``; the outbox's unique
   key makes a second pass over the same minute a no-op.

**Cost.** A pass runs every minute, so what rarely changes is kept between passes: the
roster and last months' meetings in ``schedules.data`` (reloaded when their fingerprint
changes), and the outbox keys already seen today (rows are never deleted). Ten thousand
members plan in a fraction of a second (``bench/plan_pass.py``).

**Merging and exactly once.** A merged message is the outbox row of its first reminder
(the text of all of them); each other reminder gets a row with status ``merged`` and body
``{"msgtype": "merged", "into": <that key>}`` which the dispatcher never sends. So every
reminder key is in the outbox exactly once, whether it went alone or merged, and a reminder
that appears later (a task created at 09:05) goes on its own without repeating the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot import messages
from bot.calendar import (
    Window,
    WorkCalendar,
    in_send_window,
    local_date,
    next_send_slot,
    spread,
)
from bot.clock import SHANGHAI, local
from bot.config import CalendarSettings, Settings
from bot.db import insert_ignore
from bot.models import AppState, NoticeReceipt, OutboxMessage, Task
from bot.outbox import Outgoing, enqueue, text_body
from schedules.base import PlanData, Reminder, end_of_day, start_of_day
from schedules.data import load_plan_data, load_tasks

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("mofan.planner")

LAST_PASS = "planner_last_pass"
MAX_CATCH_UP_DAYS = 10
"""Longest outage made good on start: longer than any run of days off (国庆 + 中秋: 8)."""
MERGED = "merged"
"""Outbox status of a reminder delivered inside another's message (never dispatched)."""
CHANNEL = "wecom"
KEY_CHUNK = 500


@dataclass(frozen=True)
class Planned:
    """One message to one person: a reminder, or several merged, at its spread moment."""

    recipient: str
    send_at: datetime
    reminders: tuple[Reminder, ...]
    """In message order; the first one's key is the outbox row's key."""

    @property
    def keys(self) -> list[str]:
        return [row_key(r, self.recipient) for r in self.reminders]

    @property
    def until(self) -> datetime:
        return min(r.relevant_until for r in self.reminders)

    def body(self) -> dict[str, Any]:
        if len(self.reminders) == 1:
            r = self.reminders[0]
            return r.body if r.body is not None else text_body(r.text)
        return text_body(merged_text([r.text for r in self.reminders]))


@dataclass
class PassResult:
    enqueued: int = 0
    """Messages put in the outbox (a merged message counts once)."""
    reminders: int = 0
    """Reminder keys newly recorded (merged ones included)."""
    dropped: int = 0
    """Reminders missed while down and no longer relevant."""
    nudged: int = 0
    next_at: datetime | None = None
    """The next moment today at which something is due (``mofan simulate`` jumps to it);
    outside the window, the window's next opening."""
    days: list[date] = field(default_factory=list)
    data: PlanData | None = None
    """The snapshot the pass planned from."""


def row_key(r: Reminder, userid: str) -> str:
    return f"{r.key}:{userid}"


def merged_text(texts: Sequence[str]) -> str:
    items = "\n".join(messages.R_MERGED_ITEM.format(n=i, text=t) for i, t in enumerate(texts, 1))
    return messages.R_MERGED.format(count=len(texts), items=items)


_CALENDARS: dict[tuple[frozenset[date], frozenset[date]], WorkCalendar] = {}


def calendar_for(settings: CalendarSettings) -> WorkCalendar:
    """One calendar per set of overrides, kept: its holiday tables load once per process."""
    key = (frozenset(settings.extra_holidays), frozenset(settings.extra_workdays))
    if key not in _CALENDARS:
        _CALENDARS[key] = WorkCalendar.from_settings(settings)
    return _CALENDARS[key]


def collect(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    """Every rule's reminders for the day of ``now``; a failing rule is logged, not fatal."""
    from schedules import RULES

    out: list[Reminder] = []
    for rule in RULES:
        try:
            out.extend(rule.due(now, data, settings))
        except Exception:
            log.exception("rule %s failed for %s", rule.NAME, local_date(now))
    return out


def day_instant(day: date, now: datetime) -> datetime:
    """The ``now`` a rule gets for ``day``: the real one today, the day's last moment before."""
    return now if day >= local_date(now) else end_of_day(day) - timedelta(microseconds=1)


def plan_messages(
    reminders: Iterable[Reminder], settings: Settings, cal: WorkCalendar
) -> list[Planned]:
    """The sending policy: one message per person and moment, merged and spread."""
    window = settings.bot.send_window
    groups: dict[tuple[str, datetime], list[Reminder]] = defaultdict(list)
    singles: list[tuple[str, Reminder]] = []
    order = _rule_order()
    for r in reminders:
        if not in_send_window(r.at, window, cal):
            # The rules place every reminder; this guards the promise against a bug.
            log.error("rule %s placed %s outside the send window: %s", r.rule, r.key, r.at)
            continue
        for uid in dict.fromkeys(r.to):
            if r.body is not None:
                singles.append((uid, r))
            else:
                groups[(uid, r.at)].append(r)
    out = []
    for (uid, at), rs in groups.items():
        rs.sort(key=lambda r: (order.get(r.rule, 99), r.key))
        out.append(Planned(uid, _spread(at, rs[0].relevant_until, settings, cal), tuple(rs)))
    for uid, r in singles:
        out.append(Planned(uid, _spread(r.at, r.relevant_until, settings, cal), (r,)))
    out.sort(key=lambda p: (p.send_at, p.recipient, p.keys[0]))
    return out


def _spread(at: datetime, until: datetime, settings: Settings, cal: WorkCalendar) -> datetime:
    window = settings.bot.send_window
    moved = _spread_cached(at, at.isoformat(), window)
    if moved < until or at >= until:
        return moved
    # A reminder just before its deadline (an 08:35 meeting): go a little early instead.
    for minutes in range(1, 10):
        early = at - timedelta(minutes=minutes)
        if local(early).minute not in (0, 30) and in_send_window(early, window, cal):
            return early
    return at


@lru_cache(maxsize=131072)
def _spread_cached(at: datetime, seed: str, window: Window) -> datetime:
    # Every pass of a day spreads the same moments again: computed once.
    return spread(at, seed, window)


_ORDER: dict[str, int] = {}


def _rule_order() -> dict[str, int]:
    if not _ORDER:
        from schedules import RULES

        _ORDER.update({r.NAME: i for i, r in enumerate(RULES)})
    return _ORDER


# The pass ------------------------------------------------------------------------------


def plan_and_enqueue(runtime: Runtime) -> int:
    """One planning pass; returns how many new messages went into the outbox."""
    return run_pass(runtime.engine, runtime.settings, runtime.clock.now()).enqueued


def run_pass(
    engine: Engine, settings: Settings, now: datetime, *, reuse: PlanData | None = None
) -> PassResult:
    """One planning pass at ``now``; see the module docstring.

    ``reuse``: a snapshot from an earlier pass of the same day (``result.data``), used
    instead of loading one when it covers the days to plan. ``mofan simulate`` passes it:
    within a simulated day nothing but the planner itself changes the data.
    """
    cal = calendar_for(settings.calendar)
    today = local_date(now)
    result = PassResult()
    if not in_send_window(now, settings.bot.send_window, cal):
        # Nothing may go out now. The last pass stays where it was, so the first pass of
        # the next opening plans the days since then: what is still relevant goes then.
        result.next_at = next_send_slot(now, settings.bot.send_window, cal)
        return result
    with Session(engine, expire_on_commit=False) as session:
        last = last_pass(session)
        first = catch_up_from(last, now, settings, cal)
        # Nothing is ever placed on a day off, so only workdays are planned.
        result.days = [
            day
            for day in (first + timedelta(days=i) for i in range((today - first).days + 1))
            if day == today or cal.is_workday(day)
        ]
        if (
            reuse is not None
            and reuse.loaded_on == today
            and reuse.first_day is not None
            and reuse.first_day <= first
        ):
            data = reuse
        else:
            data = load_plan_data(session, settings, cal, first_day=first, now=now)
            if write_milestones(session, settings, data, first, today, now=now):
                session.commit()
                data.tasks = load_tasks(session, first)
        result.data = data
        reminders: list[Reminder] = []
        for day in result.days:
            reminders.extend(collect(day_instant(day, now), data, settings))
        known = _known(engine, today)
        planned = plan_messages(unsent(reminders, known), settings, cal)
        later = [p.send_at for p in planned if p.send_at > now and local_date(p.send_at) == today]
        result.next_at = min(later, default=None)
        due_now = [p for p in planned if p.send_at <= now]
        recorded = _enqueue(session, due_now, now=now, last=last, result=result)
        _set_last_pass(session, now)
        session.commit()
    known |= recorded
    return result


_KNOWN: WeakKeyDictionary[Engine, tuple[date, set[str]]] = WeakKeyDictionary()


def _known(engine: Engine, today: date) -> set[str]:
    """Outbox keys this process has seen in the database today (they are never removed),
    so that a pass every minute does not look up the same ten thousand keys again."""
    day, keys = _KNOWN.get(engine, (None, set()))
    if day != today:
        keys = set()
        _KNOWN[engine] = (today, keys)
    return keys


def unsent(reminders: Iterable[Reminder], known: set[str]) -> list[Reminder]:
    """The reminders, each only to the recipients whose row is not known to be written."""
    out = []
    for r in reminders:
        to = [u for u in r.to if row_key(r, u) not in known]
        if len(to) == len(r.to):
            out.append(r)
        elif to:
            out.append(replace(r, to=to))
    return out


def catch_up_from(
    last: datetime | None, now: datetime, settings: Settings, cal: WorkCalendar
) -> date:
    """The first day to plan: the last pass's day (unless that pass came at or after its
    window's last minute: that day is done), at most :data:`MAX_CATCH_UP_DAYS` back; on the
    first pass ever, today."""
    today = local_date(now)
    if last is None or last > now:
        return today
    day = local_date(last)
    closing = datetime.combine(day, settings.bot.send_window[1], tzinfo=SHANGHAI)
    if last >= closing - timedelta(minutes=1):
        day += timedelta(days=1)
    return min(today, max(day, today - timedelta(days=MAX_CATCH_UP_DAYS)))


def _enqueue(
    session: Session,
    planned: list[Planned],
    *,
    now: datetime,
    last: datetime | None,
    result: PassResult,
) -> set[str]:
    """Write what is due; returns every key now known to be in the outbox (found there or
    written), for the caller to remember once the transaction commits."""
    known = existing_keys(session, [k for p in planned for k in p.keys])
    recorded = set(known)
    messages_: list[tuple[Planned, list[Reminder]]] = []
    for p in planned:
        fresh = [r for r in p.reminders if row_key(r, p.recipient) not in known]
        live = [r for r in fresh if r.relevant_until > now]
        for r in fresh:
            if r.relevant_until <= now and (last is None or p.send_at > last):
                log.info(
                    "dropped %s for %s: due %s, no longer relevant after %s",
                    r.key,
                    p.recipient,
                    local(p.send_at).isoformat(),
                    local(r.relevant_until).isoformat(),
                )
                result.dropped += 1
        if live:
            messages_.append((p, live))
    if not messages_:
        return recorded
    try:
        with session.begin_nested():
            _insert(session, messages_, now=now, strict=True)
    except _Conflict:
        # Another planner (a leader on its way out) wrote some of these keys meanwhile:
        # go group by group and leave the ones it took.
        for item in messages_:
            try:
                with session.begin_nested():
                    _insert(session, [item], now=now, strict=True)
            except _Conflict:
                continue
            _count(item, result)
            _nudge(session, [item])
            recorded.update(row_key(r, item[0].recipient) for r in item[1])
        return recorded
    for item in messages_:
        _count(item, result)
        recorded.update(row_key(r, item[0].recipient) for r in item[1])
    _nudge(session, messages_)
    return recorded


class _Conflict(Exception):
    pass


def _count(item: tuple[Planned, list[Reminder]], result: PassResult) -> None:
    result.enqueued += 1
    result.reminders += len(item[1])


def _insert(
    session: Session, items: list[tuple[Planned, list[Reminder]]], *, now: datetime, strict: bool
) -> None:
    rows: list[Outgoing] = []
    markers: list[dict[str, Any]] = []
    for p, live in items:
        head = Planned(p.recipient, p.send_at, tuple(live))
        first = live[0]
        rows.append(
            Outgoing(
                key=row_key(first, p.recipient),
                recipient=p.recipient,
                body=head.body(),
                due_at=p.send_at,
                channel=CHANNEL,
                rule=first.rule,
            )
        )
        for r in live[1:]:
            markers.append(
                {
                    "key": row_key(r, p.recipient),
                    "rule": r.rule,
                    "channel": CHANNEL,
                    "recipient": p.recipient,
                    "body": {"msgtype": MERGED, "into": row_key(first, p.recipient)},
                    "due_at": p.send_at,
                    "status": MERGED,
                    "attempts": 0,
                    "created_at": now,
                }
            )
    added = enqueue(session, rows, now=now) + insert_ignore(
        session, OutboxMessage, markers, keys=["key"]
    )
    if strict and added != len(rows) + len(markers):
        raise _Conflict


def _nudge(session: Session, items: list[tuple[Planned, list[Reminder]]]) -> None:
    """Count a notice nudge on its receipt (the cap of ``notices.max_nudges`` includes it)."""
    for p, live in items:
        for r in live:
            if r.nudge_receipt is None:
                continue
            session.execute(
                update(NoticeReceipt)
                .where(col(NoticeReceipt.id) == r.nudge_receipt)
                .values(nudges=NoticeReceipt.nudges + 1, last_nudged_at=p.send_at)
            )


def existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), KEY_CHUNK):
        chunk = unique[start : start + KEY_CHUNK]
        found.update(
            session.scalars(select(col(OutboxMessage.key)).where(col(OutboxMessage.key).in_(chunk)))
        )
    return found


def write_milestones(
    session: Session,
    settings: Settings,
    data: PlanData,
    first: date,
    today: date,
    *,
    now: datetime,
) -> int:
    """Write the config's milestones due from ``first``'s year to a month ahead as ``Task``
    rows (kind ``milestone``), one per branch in scope; returns how many were new."""
    from schedules.milestones import expected_milestones

    horizon = today + timedelta(days=max(settings.tasks.days_before, default=0) + 30)
    wanted = expected_milestones(settings, data, date(first.year, 1, 1), horizon)
    have = {(t.name, t.branch_id, t.due_on) for t in data.tasks}
    missing = [w for w in wanted if w not in have]
    if not missing:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = Task.__table__  # type: ignore[attr-defined]
    rows = [
        {"name": n, "branch_id": b, "due_on": d, "kind": "milestone", "created_at": now}
        for n, b, d in missing
    ]
    stmt = insert(table).on_conflict_do_nothing(index_elements=["name", "branch_id", "due_on"])
    session.execute(stmt, rows)
    return len(missing)


def last_pass(session: Session) -> datetime | None:
    row = session.get(AppState, LAST_PASS)
    if row is None or not row.value:
        return None
    return datetime.fromisoformat(row.value)


def _set_last_pass(session: Session, now: datetime) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(AppState).values(name=LAST_PASS, value=now.isoformat())
    session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"value": now.isoformat()})
    )


# Forecast (mofan plan) --------------------------------------------------------------------


def forecast_instant(day: date, now: datetime) -> datetime:
    """The ``now`` a rule gets when forecasting ``day``: the real one today, the day's start
    ahead (nothing of it has happened yet), its last moment behind."""
    if day > local_date(now):
        return start_of_day(day)
    return day_instant(day, now)


def forecast(
    engine: Engine, settings: Settings, now: datetime, days: Sequence[date]
) -> list[Planned]:
    """What the planner will send on ``days`` with the data as it stands, without sending:
    messages already in the outbox and moments already past are left out."""
    cal = calendar_for(settings.calendar)
    if not days:
        return []
    with Session(engine) as session:
        first = min(days[0], local_date(now))
        data = load_plan_data(session, settings, cal, first_day=first, now=now, last_day=days[-1])
        reminders: list[Reminder] = []
        for day in days:
            reminders.extend(collect(forecast_instant(day, now), data, settings))
        planned = plan_messages(reminders, settings, cal)
        known = existing_keys(session, [k for p in planned for k in p.keys])
    out = []
    for p in planned:
        live = tuple(r for r in p.reminders if row_key(r, p.recipient) not in known)
        if live and (local_date(p.send_at) != local_date(now) or p.send_at > now):
            out.append(Planned(p.recipient, p.send_at, live))
    return out
