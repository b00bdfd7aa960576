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
6. Reminders already in the outbox and not sent yet (the process died between enqueueing and
   sending, or WeCom kept failing and the dispatcher is backing off) are judged by the same
   rule at every pass: one that no longer makes sense is marked ``dropped`` (never
   dispatched) with a log line. The days rechecked are the ones planned plus the days those
   rows were enqueued on.

**The send window holds for what is already queued, too.** Outside the window no reminder
(and no notice broadcast) may go out, yet the dispatcher also runs then, for replies. So the
scheduler calls :func:`hold_to_window` before each dispatch outside the window: due
reminders (a retry whose backoff ran past 18:00, rows a crashed process left behind) move
to the next opening, a few minutes in, after the first pass of the window has judged them.

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

import gc
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy import text as sql_text
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
from bot.db import among, insert_ignore
from bot.models import AppState, NoticeReceipt, OutboxMessage, Task
from bot.outbox import CLAIMED, PENDING, Outgoing, enqueue, text_body
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
DROPPED = "dropped"
"""Outbox status of a reminder that waited in the outbox (its process died before sending
it, WeCom kept failing) until it no longer made sense (never dispatched)."""
HELD_RULES_EXTRA = ("notice",)
"""Outbox rules held to the send window besides the planner's own: notice broadcasts
(``bot.broadcast``)."""
CHANNEL = "wecom"


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


P = ParamSpec("P")
R = TypeVar("R")


def _without_gc_pauses(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with Python's cycle collector held off. A pass allocates some hundred
    thousand small objects (rows, reminders, messages) that reference counting frees;
    meanwhile the collector would walk the whole heap several times over (0.4 s of a
    1.4 s first pass on 10,000 members). It runs again, as usual, once the pass is over."""

    @wraps(fn)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


def _again_if_raced(fn: Callable[..., PassResult]) -> Callable[..., PassResult]:
    """On SQLite, a pass reads first and writes after; a callback committing in between makes
    its snapshot stale, and SQLite refuses the pass's first write at once (the lock wait does
    not help). Under steady chat that happens to most passes. The pass then runs again with
    the write lock taken before it reads (it rolled back whole; its inserts are idempotent):
    callbacks wait for that one pass, a fraction of a second, instead of reminders never
    being planned. PostgreSQL has no such race."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> PassResult:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            from bot.router import lost_race

            if not lost_race(exc):
                raise
            log.info("planning pass lost a write race; running it again holding the lock")
            return fn(*args, **kwargs, lock_first=True)

    return run


def _take_write_lock(session: Session) -> None:
    """SQLite: hold the write lock from here to the commit (a write that matches no row
    still takes it), so that this transaction's reads cannot go stale."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sql_text("UPDATE appstate SET name = name WHERE 0"))


@_again_if_raced
@_without_gc_pauses
def run_pass(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    reuse: PlanData | None = None,
    lock_first: bool = False,
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
        if lock_first:
            _take_write_lock(session)
        last = last_pass(session)
        first = catch_up_from(last, now, settings, cal)
        # Nothing is ever placed on a day off, so only workdays are planned.
        result.days = [
            day
            for day in (first + timedelta(days=i) for i in range((today - first).days + 1))
            if day == today or cal.is_workday(day)
        ]
        # Rows waiting since an earlier day are judged with that day's reminders.
        waiting = waiting_rows(session, now)
        oldest = today - timedelta(days=MAX_CATCH_UP_DAYS)
        recheck = sorted(
            {d for d in (local_date(w.created_at) for w in waiting) if oldest <= d < first}
        )
        data_first = min([first, *recheck])
        if (
            reuse is not None
            and reuse.loaded_on == today
            and reuse.first_day is not None
            and reuse.first_day <= data_first
        ):
            data = reuse
        else:
            data = load_plan_data(session, settings, cal, first_day=data_first, now=now)
            if write_milestones(session, settings, data, first, today, now=now):
                session.commit()
                if lock_first:
                    _take_write_lock(session)
                data.tasks = load_tasks(session, data_first)
        result.data = data
        reminders: list[Reminder] = []
        for day in result.days:
            reminders.extend(collect(day_instant(day, now), data, settings))
        if waiting:
            judged = list(reminders)
            for day in recheck:
                judged.extend(collect(day_instant(day, now), data, settings))
            _drop_moot(session, waiting, judged, data, settings, now=now, result=result)
            if lock_first:
                _take_write_lock(session)  # _drop_moot may have committed
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
        # leave every message it took a key of, write the others together (one statement
        # still, not one per message), and go message by message only if it is still at it.
        taken = existing_keys(session, [row_key(r, p.recipient) for p, rs in messages_ for r in rs])
        recorded |= taken
        messages_ = [
            (p, rs) for p, rs in messages_ if not any(row_key(r, p.recipient) in taken for r in rs)
        ]
        try:
            with session.begin_nested():
                _insert(session, messages_, now=now, strict=True)
        except _Conflict:
            pass
        else:
            for item in messages_:
                _count(item, result)
                recorded.update(row_key(r, item[0].recipient) for r in item[1])
            _nudge(session, messages_)
            return recorded
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
    """The ``keys`` already in the outbox: one query for any number (``bot.db.among``)."""
    if not keys:
        return set()
    key = col(OutboxMessage.key)
    wanted = among(session.get_bind().dialect.name, key, dict.fromkeys(keys))
    return set(session.connection().execute(select(key).where(wanted)).scalars())


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
    rows = [
        {"name": n, "branch_id": b, "due_on": d, "kind": "milestone", "created_at": now}
        for n, b, d in missing
    ]
    insert_ignore(session, Task, rows, keys=["name", "branch_id", "due_on"])
    # All of them, even those another planner wrote meanwhile: the caller reloads the tasks.
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


# Reminders waiting in the outbox ----------------------------------------------------------


def _rules() -> tuple[Any, ...]:
    from schedules import RULES

    return RULES


@lru_cache(maxsize=1)
def planner_rules() -> frozenset[str]:
    """The ``rule`` of every outbox row the planner writes."""
    return frozenset(r.NAME for r in _rules())


def _waiting(now: datetime) -> Any:
    """Rows not sent and free to be sent: pending, or claimed by a process whose lease ran
    out (it died, or hung)."""
    return or_(
        col(OutboxMessage.status) == PENDING,
        and_(col(OutboxMessage.status) == CLAIMED, col(OutboxMessage.claimed_until) < now),
    )


@dataclass(frozen=True)
class Waiting:
    id: int
    key: str
    recipient: str
    rule: str
    created_at: datetime
    due_at: datetime


def waiting_rows(session: Session, now: datetime) -> list[Waiting]:
    """The planner's rows still waiting to be sent (normally none between passes)."""
    rows = session.execute(
        select(
            col(OutboxMessage.id),
            col(OutboxMessage.key),
            col(OutboxMessage.recipient),
            col(OutboxMessage.rule),
            col(OutboxMessage.created_at),
            col(OutboxMessage.due_at),
        ).where(col(OutboxMessage.rule).in_(planner_rules()), _waiting(now))
    )
    return [Waiting(*row) for row in rows]


def _drop_moot(
    session: Session,
    waiting: list[Waiting],
    reminders: list[Reminder],
    data: PlanData,
    settings: Settings,
    *,
    now: datetime,
    result: PassResult,
) -> None:
    """Mark ``dropped`` the waiting rows whose reminder no longer makes sense, with a log
    line each. A merged message goes as long as one of its reminders still makes sense.
    A row whose reminder is not planned again, and whose rule cannot tell
    (``waiting_until``), is left to go."""
    until = _relevance(reminders, {w.key for w in waiting})
    rules = {r.NAME: r for r in _rules()}
    for w in waiting:
        hook = getattr(rules.get(w.rule), "waiting_until", None)
        if w.key not in until and hook is not None:
            found = hook(w.key.removesuffix(f":{w.recipient}"), data, settings)
            if found is not None:
                until[w.key] = found
    moot = [w for w in waiting if w.key in until and until[w.key] <= now]
    if not moot:
        return
    parts = _merged_parts(session, moot)
    until |= _relevance(reminders, {k for inside in parts.values() for k, _ in inside})
    # Two statements however many rows (a Monday can find a whole Friday's worth waiting).
    dialect = session.get_bind().dialect.name
    droppable = {
        w.id: w
        for w in moot
        if all(k in until and until[k] <= now for k, _ in parts.get(w.key, []))
    }  # a merged message still worth sending for the others in it stays
    if not droppable:
        return
    taken = session.connection().execute(
        update(OutboxMessage)
        .where(among(dialect, col(OutboxMessage.id), list(droppable)), _waiting(now))
        .values(status=DROPPED, claimed_until=None, last_error="no longer relevant")
        .returning(col(OutboxMessage.id))
    )
    # A dispatcher may have got some of them first.
    dropped = [droppable[mid] for mid in taken.scalars() if mid is not None]
    inside_ids = [mid for w in dropped for _, mid in parts.get(w.key, [])]
    if inside_ids:
        session.execute(
            update(OutboxMessage)
            .where(
                among(dialect, col(OutboxMessage.id), inside_ids),
                col(OutboxMessage.status) == MERGED,
            )
            .values(status=DROPPED)
        )
    lines = [(w, k) for w in dropped for k in [w.key, *(k for k, _ in parts.get(w.key, []))]]
    session.commit()
    for w, k in lines:
        log.info(
            "dropped %s for %s: queued for %s, no longer relevant after %s (not sent since %s)",
            k.removesuffix(f":{w.recipient}"),
            w.recipient,
            local(w.due_at).isoformat(),
            local(until[k]).isoformat(),
            local(w.created_at).isoformat(),
        )
        result.dropped += 1


def _relevance(reminders: list[Reminder], keys: set[str]) -> dict[str, datetime]:
    """Row key -> relevant_until, for the ``keys`` among ``reminders``."""
    out: dict[str, datetime] = {}
    if not keys:
        return out
    for r in reminders:
        for uid in r.to:
            k = row_key(r, uid)
            if k in keys:
                out[k] = r.relevant_until
    return out


def _merged_parts(session: Session, heads: list[Waiting]) -> dict[str, list[tuple[str, int]]]:
    """Head row key -> (key, id) of the reminders merged into its message."""
    rows = session.execute(
        select(col(OutboxMessage.id), col(OutboxMessage.key), col(OutboxMessage.body)).where(
            col(OutboxMessage.status) == MERGED,
            among(
                session.get_bind().dialect.name,
                col(OutboxMessage.recipient),
                sorted({h.recipient for h in heads}),
            ),
            col(OutboxMessage.created_at).in_({h.created_at for h in heads}),  # a pass or two
        )
    )
    wanted = {h.key for h in heads}
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for mid, key, body in rows:
        into = body.get("into") if isinstance(body, dict) else None
        if into in wanted:
            out[into].append((key, mid))
    return out


def held_rules() -> frozenset[str]:
    """Outbox rules that go out only inside the send window."""
    return planner_rules() | frozenset(HELD_RULES_EXTRA)


def hold_to_window(engine: Engine, settings: Settings, now: datetime) -> int:
    """Outside the send window, move the due reminders and notices (a retry whose backoff
    ran past the window, rows a dead process left claimed) to the window's next opening,
    a few minutes in; returns how many. Inside the window it does nothing (no query)."""
    cal = calendar_for(settings.calendar)
    window = settings.bot.send_window
    if in_send_window(now, window, cal):
        return 0
    opening = spread(next_send_slot(now, window, cal), "held", window)
    with engine.begin() as conn:
        moved = conn.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.rule).in_(held_rules()),
                or_(
                    and_(col(OutboxMessage.status) == PENDING, col(OutboxMessage.due_at) <= now),
                    and_(
                        col(OutboxMessage.status) == CLAIMED,
                        col(OutboxMessage.claimed_until) < now,
                    ),
                ),
            )
            .values(status=PENDING, due_at=opening, claimed_until=None)
        ).rowcount
    if moved:
        log.info(
            "held %d reminders outside the send window until %s", moved, local(opening).isoformat()
        )
    return int(moved)


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
