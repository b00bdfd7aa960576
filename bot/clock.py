"""Time, injected: the only place the program reads the wall clock.

Everything stores UTC and computes in the bureau's zone (Asia/Shanghai). Code that needs
"now" takes a :class:`Clock`; tests and ``mofan simulate`` pass a :class:`FixedClock` they
can step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


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
