"""APScheduler wakes the planners and the outbox dispatcher; it holds no job per reminder.

What was planned and sent lives in our tables, so the memory job store is enough: jobs have
explicit ids, ``replace_existing=True``, ``coalesce=True`` and a short misfire grace.

Every instance of ``mofan serve`` runs these jobs, but each tick first asks the leader
election (``bot.leader``) and only the leader plans and dispatches. The plan job also runs
once at start: that is the catch-up pass (``schedules.runner`` plans the days missed since
the last pass and sends what is still relevant; what a dead process left in the outbox and
no longer is, it drops). A new leader dispatches only after its first planning pass, and
outside the send window reminders are held back (``schedules.runner.hold_to_window``) while
replies still go. Planning is blocking database work, so it runs in a worker thread and never
holds up the event loop serving WeCom callbacks.

On the development clock (``bot.clock.ScaledClock``, tests and benchmarks only) the ticks
come as often in simulated time as they would in real time (at most every
:data:`DEV_MIN_TICK_SECONDS` of wall clock), and the leader's lease lasts as long in real
time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary, WeakSet

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import ScaledClock
from bot.leader import LEASE_SECONDS, Leader, make_leader

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("mofan.scheduler")

DISPATCH_SECONDS = 5
DEV_MIN_TICK_SECONDS = 0.25
"""On the development clock, the shortest real interval between two ticks of a job."""


class MofanScheduler(AsyncIOScheduler):
    """The AsyncIOScheduler with the leader election it answers to; shutting it down gives
    up leadership so that another instance takes over at once."""

    def __init__(self, *, runtime: Runtime, leader: Leader, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.leader = leader

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=wait)
        try:
            self.leader.release(self.runtime.clock.now())
        except Exception:
            log.exception("releasing scheduler leadership failed")


_PLANNED: WeakKeyDictionary[Any, bool] = WeakKeyDictionary()
"""Per leader object: has a planning pass run since it (last) became the leader?"""
_PLANNING: WeakSet[Any] = WeakSet()
"""Leader objects with a planning pass running now (one at a time: on SQLite two would
trip over each other's write lock)."""


async def _leading(runtime: Runtime, leader: Leader) -> bool:
    leading = await asyncio.to_thread(leader.ensure, runtime.clock.now())
    if not leading:
        _PLANNED.pop(leader, None)
    return leading


async def dispatch_job(runtime: Runtime, leader: Leader) -> None:
    """Send what is due. Not before this leader's first planning pass (the catch-up), which
    judges the reminders a dead process left in the outbox; outside the send window the
    reminders due are first moved to its next opening (``schedules.runner.hold_to_window``),
    so that only replies go out then."""
    try:
        if not await _leading(runtime, leader):
            return
        if not _PLANNED.get(leader):
            # Leading again (a takeover, or only a failed check while the database was
            # away): the catch-up pass now, not a whole planning interval later.
            if leader not in _PLANNING:
                await plan_job(runtime, leader)
            if not _PLANNED.get(leader):
                return
        from schedules.runner import hold_to_window

        await asyncio.to_thread(
            hold_to_window, runtime.engine, runtime.settings, runtime.clock.now()
        )
        # A full pass means more is waiting (a notice to the whole bureau): go on at once,
        # within most of a tick, rather than one batch every tick.
        started = time.monotonic()
        while (await runtime.dispatcher.run_once()).claimed >= runtime.settings.outbox.batch_size:
            if time.monotonic() - started > DISPATCH_SECONDS * 0.8:
                break
    except Exception:
        log.exception("dispatch pass failed")


async def plan_job(runtime: Runtime, leader: Leader) -> None:
    try:
        if not await _leading(runtime, leader):
            return
        from schedules.runner import plan_and_enqueue

        if leader in _PLANNING:
            return
        _PLANNING.add(leader)
        try:
            added = await asyncio.to_thread(plan_and_enqueue, runtime)
        finally:
            # Even a failed pass lets the dispatcher go on: replies must not wait for it.
            _PLANNED[leader] = True
            _PLANNING.discard(leader)
        if added:
            log.info("planning pass enqueued %d messages", added)
            # Send them now rather than at the next dispatch tick (claims are exclusive,
            # so running alongside the dispatch job is safe).
            await runtime.dispatcher.run_once()
    except Exception:
        log.exception("planning pass failed")


def tick_seconds(runtime: Runtime, seconds: float) -> float:
    """The real interval of a tick meant to come every ``seconds``: itself, or on the
    development clock (``bot.clock.ScaledClock``) that much simulated time, at least
    :data:`DEV_MIN_TICK_SECONDS`."""
    if isinstance(runtime.clock, ScaledClock):
        return max(DEV_MIN_TICK_SECONDS, runtime.clock.real_seconds(seconds))
    return seconds


def start_scheduler(runtime: Runtime, leader: Leader | None = None) -> MofanScheduler:
    if leader is None:
        lease = LEASE_SECONDS
        if isinstance(runtime.clock, ScaledClock):
            # The lease guards against dead processes: it lasts LEASE_SECONDS of real time.
            lease = int(LEASE_SECONDS * runtime.clock.factor)
        leader = make_leader(runtime.engine, lease_seconds=lease)
    sched = MofanScheduler(runtime=runtime, leader=leader, timezone=runtime.settings.bot.timezone)
    common = {
        "replace_existing": True,
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": 30,
    }
    sched.add_job(
        plan_job,
        "interval",
        seconds=tick_seconds(runtime, runtime.settings.bot.scheduler_interval_seconds),
        args=[runtime, leader],
        id="plan",
        **common,
    )
    # The catch-up pass: plan at once on start rather than an interval later (a "date" job
    # with no date runs now by APScheduler's own clock, whatever clock the runtime has).
    sched.add_job(plan_job, "date", args=[runtime, leader], id="plan-at-start", **common)
    sched.add_job(
        dispatch_job,
        "interval",
        seconds=tick_seconds(runtime, DISPATCH_SECONDS),
        args=[runtime, leader],
        id="dispatch",
        **common,
    )
    sched.start()
    log.info("scheduler started (%s)", leader.holder)
    return sched
