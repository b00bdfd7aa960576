"""Workdays, periods and the send window, all in Asia/Shanghai (DESIGN §4.2, §4.6).

A date is a workday when it is listed in ``[calendar] extra_workdays``, or when it is not in
``extra_holidays``, not a statutory holiday, and is either Monday–Friday or a 调休 weekend
day the State Council made a working day. Statutory holidays and 调休 working days come from
the ``holidays`` package (``holidays.country_holidays("CN")``), which carries each year's
official schedule once it is published (the notice comes out around November for the
following year); before that it only has the statutory festivals, so ``extra_workdays`` and
``extra_holidays`` fill the gap.

The send window is half-open, ``[start, end)``: with the default 08:30–18:00 a message may go
out at 08:30:00 and at 17:59:59, not at 18:00:00.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Final

from bot.clock import SHANGHAI, local, to_utc
from bot.config import CalendarSettings, Period

Window = tuple[time, time]
"""A send window ``(start, end)`` in Asia/Shanghai wall time, start inclusive, end exclusive."""

EXTRA_HOLIDAY_NAME: Final = "节假日"
"""What :meth:`WorkCalendar.holiday_name` says of an ``extra_holidays`` date with no name."""

_MONTHS: Final[dict[str, int]] = {"month": 1, "quarter": 3, "half": 6, "year": 12}
_SEARCH_LIMIT: Final = 400
"""No real schedule has a run of this many days off; past it the config is broken."""


class WorkCalendar:
    """China's statutory working calendar with the config's overrides.

    Holiday data is loaded a year at a time on first use, so building one is free and the
    ``holidays`` import (about 0.1 s, plus about 0.2 s for its first year) is paid only by
    code that asks about a date.
    """

    def __init__(
        self, extra_holidays: Iterable[date] = (), extra_workdays: Iterable[date] = ()
    ) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        both = self.extra_holidays & self.extra_workdays
        if both:
            raise ValueError(f"dates listed both as holiday and workday: {sorted(both)}")
        self._names: dict[date, str] = {}
        self._weekend_workdays: set[date] = set()
        self._years: set[int] = set()

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> WorkCalendar:
        return cls(settings.extra_holidays, settings.extra_workdays)

    def _load(self, year: int) -> None:
        # A 调休 working day can fall in the year before its holiday (a Saturday late in
        # December that pays for 2 January), so a date's year and the next one are loaded.
        missing = {year, year + 1} - self._years
        if not missing:
            return
        import holidays  # deferred: see the class docstring

        cn = holidays.country_holidays("CN", years=sorted(missing), language="zh_CN")
        self._names.update(cn.items())
        self._weekend_workdays |= cn.weekend_workdays
        self._years |= missing

    def statutory_holiday(self, d: date) -> str | None:
        """The package's name for ``d`` (e.g. 国庆节), ignoring the config's overrides."""
        self._load(d.year)
        return self._names.get(d)

    def is_adjusted_workday(self, d: date) -> bool:
        """``d`` is a weekend day the State Council made a working day (调休上班)."""
        self._load(d.year)
        return d in self._weekend_workdays

    def is_workday(self, d: date) -> bool:
        if d in self.extra_workdays:
            return True
        if d in self.extra_holidays or self.statutory_holiday(d) is not None:
            return False
        return d.weekday() < 5 or self.is_adjusted_workday(d)

    def holiday_name(self, d: date) -> str | None:
        """Why ``d`` is a day off, in Chinese; None on workdays and on ordinary weekends."""
        if d in self.extra_workdays:
            return None
        name = self.statutory_holiday(d)
        if name is None and d in self.extra_holidays:
            return EXTRA_HOLIDAY_NAME
        return name

    def _walk(self, d: date, step: int) -> date:
        for _ in range(_SEARCH_LIMIT):
            if self.is_workday(d):
                return d
            d += timedelta(days=step)
        raise ValueError(f"no workday within {_SEARCH_LIMIT} days of {d}: check [calendar]")

    def workday_on_or_before(self, d: date) -> date:
        """``d`` if it is a workday, else the last workday before it (§4.6's rule)."""
        return self._walk(d, -1)

    def workday_on_or_after(self, d: date) -> date:
        return self._walk(d, 1)

    def next_workday(self, d: date) -> date:
        """The first workday strictly after ``d``."""
        return self._walk(d + timedelta(days=1), 1)

    def previous_workday(self, d: date) -> date:
        """The last workday strictly before ``d``."""
        return self._walk(d - timedelta(days=1), -1)

    def first_workday_of_month(self, year: int, month: int) -> date:
        return self.workday_on_or_after(date(year, month, 1))

    def first_workday_of_week(self, d: date) -> date | None:
        """The first workday of the Monday–Sunday week holding ``d``, or None if it has none.

        A week can have none: 16–22 February 2026 is all 春节 and weekend.
        """
        monday = d - timedelta(days=d.weekday())
        for i in range(7):
            if self.is_workday(day := monday + timedelta(days=i)):
                return day
        return None

    def add_workdays(self, d: date, n: int) -> date:
        """Move ``n`` workdays from ``d`` (back if ``n`` < 0); ``n`` = 0 returns ``d`` as is.

        Only workdays strictly after (before) ``d`` are counted, so from a Saturday,
        ``add_workdays(sat, 1)`` is the following workday.
        """
        step = 1 if n > 0 else -1
        for _ in range(abs(n)):
            d = self._walk(d + timedelta(days=step), step)
        return d

    def workdays_between(self, a: date, b: date) -> int:
        """Workdays in ``[a, b)``; negative when ``b`` is before ``a``.

        Half-open like ``numpy.busday_count``: the counts of adjacent spans add up, and for a
        workday ``d``, ``workdays_between(d, add_workdays(d, n)) == n``.
        """
        if b < a:
            return -self.workdays_between(b, a)
        return sum(self.is_workday(a + timedelta(days=i)) for i in range((b - a).days))


# Periods ---------------------------------------------------------------------------------


def _add_months(year: int, month: int, months: int) -> date:
    index = year * 12 + month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_of(d: date, period: Period) -> tuple[date, date]:
    """The ``(first, last)`` day of the month, quarter, half-year or year holding ``d``."""
    n = _MONTHS[period]
    start = date(d.year, (d.month - 1) // n * n + 1, 1)
    return start, _add_months(start.year, start.month, n) - timedelta(days=1)


def period_end(d: date, period: Period) -> date:
    return period_of(d, period)[1]


def days_left(d: date, period: Period) -> int:
    """Days from ``d`` to its period's last day: 0 on the last day, 10 ten days before it."""
    return (period_end(d, period) - d).days


def period_key(d: date, period: Period) -> str:
    """A stable label for idempotency keys: ``2026-11``, ``2026-Q4``, ``2026-H2``, ``2026``."""
    if period == "month":
        return f"{d.year}-{d.month:02d}"
    if period == "quarter":
        return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    if period == "half":
        return f"{d.year}-H{(d.month - 1) // 6 + 1}"
    return str(d.year)


# Instants and the send window -----------------------------------------------------------


def local_date(at: datetime) -> date:
    """The Asia/Shanghai date of an instant (naive values are UTC, as :func:`local` reads)."""
    return local(at).date()


def _inside(loc: datetime, window: Window) -> bool:
    return window[0] <= loc.time() < window[1]


def in_send_window(at: datetime, window: Window, cal: WorkCalendar) -> bool:
    """``at`` falls on a workday, at or after the window's start and before its end."""
    loc = local(at)
    return _inside(loc, window) and cal.is_workday(loc.date())


def next_send_slot(at: datetime, window: Window, cal: WorkCalendar) -> datetime:
    """The earliest instant at or after ``at`` inside the window on a workday, in UTC."""
    loc = local(at)
    day = loc.date()
    if cal.is_workday(day) and loc.time() < window[1]:
        if _inside(loc, window):
            return to_utc(loc)
        return to_utc(datetime.combine(day, window[0], tzinfo=SHANGHAI))
    return to_utc(datetime.combine(cal.next_workday(day), window[0], tzinfo=SHANGHAI))


def spread(at: datetime, seed: str, window: Window) -> datetime:
    """``at`` moved 1–9 minutes, chosen by ``seed``, off the :00 and :30 minutes, in UTC.

    Everyone else's bots fire on the hour and half hour; a per-recipient seed (say the
    reminder's idempotency key) also spreads one batch over several minutes. The same
    ``(at, seed)`` always gives the same result. The shift is forward when that stays in the
    window, else backward, so an ``at`` inside the window stays inside it on the same day
    (for any window longer than 20 minutes). An ``at`` outside the window is only moved off
    the round minutes: call :func:`next_send_slot` first.
    """
    loc = local(at)
    k = 1 + int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % 9
    offsets = [k, -k, *range(1, 10), *range(-1, -10, -1)]
    candidates = [loc + timedelta(minutes=m) for m in offsets]
    allowed = [c for c in candidates if c.minute not in (0, 30)]
    if _inside(loc, window):
        kept = [c for c in allowed if c.date() == loc.date() and _inside(c, window)]
        allowed = kept or allowed
    return to_utc(allowed[0])
