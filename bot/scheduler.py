"""APScheduler wakes the planners and the outbox dispatcher; it holds no job per reminder.

What was planned and sent lives in our tables, so the memory job store is enough: jobs have
explicit ids, ``replace_existing=True``, ``coalesce=True`` and a short misfire grace.

Every instance of ``mofan serve`` runs these jobs, but each tick first asks the leader
election (``bot.leader``) and only the leader plans and dispatches. The plan job also runs
once at start: that is the catch-up pass (``schedules.runner`` plans the days missed since
the last pass and sends what is still relevant). Planning is blocking database work, so it
runs in a worker thread and never holds up the event loop serving WeCom callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.leader import Leader, make_leader

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("mofan.scheduler")

DISPATCH_SECONDS = 5


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


async def _leading(runtime: Runtime, leader: Leader) -> bool:
    return await asyncio.to_thread(leader.ensure, runtime.clock.now())


async def dispatch_job(runtime: Runtime, leader: Leader) -> None:
    try:
        if await _leading(runtime, leader):
            await runtime.dispatcher.run_once()
    except Exception:
        log.exception("dispatch pass failed")


async def plan_job(runtime: Runtime, leader: Leader) -> None:
    try:
        if not await _leading(runtime, leader):
            return
        from schedules.runner import plan_and_enqueue

        added = await asyncio.to_thread(plan_and_enqueue, runtime)
        if added:
            log.info("planning pass enqueued %d messages", added)
            # Send them now rather than at the next dispatch tick (claims are exclusive,
            # so running alongside the dispatch job is safe).
            await runtime.dispatcher.run_once()
    except Exception:
        log.exception("planning pass failed")


def start_scheduler(runtime: Runtime, leader: Leader | None = None) -> MofanScheduler:
    leader = leader or make_leader(runtime.engine)
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
        seconds=runtime.settings.bot.scheduler_interval_seconds,
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
        seconds=DISPATCH_SECONDS,
        args=[runtime, leader],
        id="dispatch",
        **common,
    )
    sched.start()
    log.info("scheduler started (%s)", leader.holder)
    return sched
