"""APScheduler wakes the planners and the outbox dispatcher; it holds no job per reminder.

What was planned and sent lives in our tables, so the memory job store is enough: jobs have
explicit ids, ``replace_existing=True``, ``coalesce=True`` and a short misfire grace.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.runtime import Runtime

log = logging.getLogger("mofan.scheduler")

DISPATCH_SECONDS = 5


async def dispatch_job(runtime: Runtime) -> None:
    try:
        await runtime.dispatcher.run_once()
    except Exception:
        log.exception("dispatch pass failed")


async def plan_job(runtime: Runtime) -> None:
    try:
        from schedules.runner import plan_and_enqueue

        plan_and_enqueue(runtime)
    except Exception:
        log.exception("planning pass failed")


def start_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    sched = AsyncIOScheduler(timezone=runtime.settings.bot.timezone)
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
        args=[runtime],
        id="plan",
        **common,
    )
    sched.add_job(
        dispatch_job, "interval", seconds=DISPATCH_SECONDS, args=[runtime], id="dispatch", **common
    )
    sched.start()
    log.info("scheduler started")
    return sched
