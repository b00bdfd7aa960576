"""What a serving process does once it has started, so that no member pays for it later.

- :func:`freeze_heap`: the start-up heap (imports, settings, compiled statements) goes into
  the garbage collector's permanent generation. Without it, every full collection walks those
  hundreds of thousands of objects again, and the handler that triggers one (总览 allocates
  thousands of rows) waits tens of milliseconds for it.
- :func:`keep_warm`: computes the day's 总览 snapshot (:func:`bot.status.warm_daily`, about a
  second for a large bureau) at start and again just after each local midnight, in a thread,
  so that the day's first reader does not wait for it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.calendar import local_date
from bot.clock import SHANGHAI
from bot.runtime import Runtime

log = logging.getLogger("mofan.warmup")

AFTER_MIDNIGHT = timedelta(seconds=30)


def freeze_heap() -> None:
    gc.collect()
    gc.freeze()


def seconds_until_next_day(now: datetime) -> float:
    """Seconds from ``now`` until just after the next local (Asia/Shanghai) midnight."""
    tomorrow = local_date(now) + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=SHANGHAI)
    return max(1.0, (midnight + AFTER_MIDNIGHT - now).total_seconds())


def warm_once(runtime: Runtime) -> None:
    from bot.status import warm_daily

    try:
        with Session(runtime.engine) as session:
            warm_daily(session=session, settings=runtime.settings, now=runtime.clock.now())
    except Exception:  # a cache: the reader computes it if this failed
        log.exception("could not compute the day's 总览 snapshot ahead of time")


async def keep_warm(runtime: Runtime) -> None:
    """Run until cancelled: warm now, then after every local midnight."""
    while True:
        await asyncio.to_thread(warm_once, runtime)
        await asyncio.sleep(seconds_until_next_day(runtime.clock.now()))
