"""Time, injected: the only place the program reads the wall clock.

Everything stores UTC and computes in the bureau's zone (Asia/Shanghai). Code that needs
"now" takes a :class:`Clock`; tests and ``mofan simulate`` pass a :class:`FixedClock` they
can step.

**For tests and benchmarks only**, ``mofan serve`` can run on a :class:`ScaledClock`: time
that starts at a given instant and runs N times faster than the wall clock, so that real
processes live through a simulated week in minutes (``bench/two_instances.py``). It is
chosen by the environment variable :data:`DEV_CLOCK_ENV`, never by the config file::

    MOFAN_DEV_CLOCK="2026-12-07T08:00+08:00 x600"              # from this process's start
    MOFAN_DEV_CLOCK="2026-12-07T08:00+08:00 x600 @1796601600"  # from that Unix time

Processes that must share one simulated timeline (two instances, a restart) need the same
``@`` anchor. Under it, ``mofan serve`` also scales the scheduler's ticks and the leases that
guard against dead processes (``bot.serve.use_dev_clock``), which are real-time matters.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEV_CLOCK_ENV = "MOFAN_DEV_CLOCK"
"""Development only (tests, benchmarks): run on a :class:`ScaledClock`; see the module doc."""


class Clock(Protocol):
    """A source of the current instant. ``now()`` is always timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move (tests, ``mofan simulate``)."""

    def __init__(self, at: datetime) -> None:
        self._at = to_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = to_utc(at)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._at += delta if delta is not None else timedelta(**kwargs)
        return self._at


class ScaledClock:
    """Development only: simulated time that was ``start`` at the Unix time ``anchor`` and
    runs ``factor`` times faster than the wall clock. Never used unless asked for through
    :data:`DEV_CLOCK_ENV`."""

    def __init__(
        self,
        start: datetime,
        factor: float,
        *,
        anchor: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if factor <= 0:
            raise ValueError("the speed factor must be positive")
        self.start = to_utc(start)
        self.factor = float(factor)
        self._wall = wall
        self.anchor = wall() if anchor is None else float(anchor)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._wall() - self.anchor) * self.factor)

    def real_seconds(self, simulated: float) -> float:
        """Wall-clock seconds that ``simulated`` seconds of this clock take."""
        return simulated / self.factor

    def describe(self) -> str:
        return f"{local(self.start).isoformat()} x{self.factor:g} @{self.anchor:.3f}"


_DEV_CLOCK = re.compile(r"\s*(\S+)\s+x(\d+(?:\.\d+)?)(?:\s+@(\d+(?:\.\d+)?))?\s*")


def parse_dev_clock(value: str) -> ScaledClock:
    """``"2026-12-07T08:00+08:00 x600 [@unix-time]"`` as a :class:`ScaledClock` (a start
    without an offset is Asia/Shanghai wall time)."""
    m = _DEV_CLOCK.fullmatch(value)
    if not m:
        raise ValueError(
            f"{DEV_CLOCK_ENV} must look like '2026-12-07T08:00+08:00 x600' (optionally "
            f"followed by ' @<unix time>' of that instant), not {value!r}"
        )
    start = datetime.fromisoformat(m.group(1))
    anchor = float(m.group(3)) if m.group(3) else None
    return ScaledClock(start, float(m.group(2)), anchor=anchor)


def dev_clock_from_env() -> ScaledClock | None:
    """The development clock :data:`DEV_CLOCK_ENV` asks for, or None (the normal case)."""
    value = os.environ.get(DEV_CLOCK_ENV, "").strip()
    return parse_dev_clock(value) if value else None


def to_utc(at: datetime) -> datetime:
    """A naive datetime is taken as Asia/Shanghai wall time (what people type)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
    return at.astimezone(UTC)


def local(at: datetime, tz: tzinfo = SHANGHAI) -> datetime:
    """An instant shown in the bureau's zone. Naive values read back from SQLite are UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz)
