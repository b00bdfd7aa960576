"""bot.calendar against real dates: the official 2026 schedule, periods, the send window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.calendar import (
    EXTRA_HOLIDAY_NAME,
    WorkCalendar,
    days_left,
    in_send_window,
    local_date,
    next_send_slot,
    period_end,
    period_key,
    period_of,
    spread,
)
from bot.clock import local, to_utc
from bot.config import CalendarSettings, Period

WINDOW = (time(8, 30), time(18, 0))

# 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04): days off, and weekend days worked.
OFF_2026 = [
    (date(2026, 1, 1), date(2026, 1, 3)),  # 元旦
    (date(2026, 2, 15), date(2026, 2, 23)),  # 春节
    (date(2026, 4, 4), date(2026, 4, 6)),  # 清明节
    (date(2026, 5, 1), date(2026, 5, 5)),  # 劳动节
    (date(2026, 6, 19), date(2026, 6, 21)),  # 端午节
    (date(2026, 9, 25), date(2026, 9, 27)),  # 中秋节
    (date(2026, 10, 1), date(2026, 10, 7)),  # 国庆节
]
WORKED_WEEKENDS_2026 = {
    date(2026, 1, 4),
    date(2026, 2, 14),
    date(2026, 2, 28),
    date(2026, 5, 9),
    date(2026, 9, 20),
    date(2026, 10, 10),
}


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """An Asia/Shanghai wall time, as the UTC instant the code receives."""
    return to_utc(datetime(y, mo, d, h, mi, s))


def days(a: date, b: date) -> list[date]:
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


# The statutory calendar ------------------------------------------------------------------


def test_every_day_of_2026_matches_the_state_council_notice(cal: WorkCalendar) -> None:
    off = {d for a, b in OFF_2026 for d in days(a, b)}
    for d in days(date(2026, 1, 1), date(2026, 12, 31)):
        expected = d not in off and (d.weekday() < 5 or d in WORKED_WEEKENDS_2026)
        assert cal.is_workday(d) is expected, d
    # 261 weekdays, 19 of them off, 6 weekend days worked.
    assert cal.workdays_between(date(2026, 1, 1), date(2027, 1, 1)) == 248


def test_national_day_2026(cal: WorkCalendar) -> None:
    assert not any(cal.is_workday(d) for d in days(date(2026, 10, 1), date(2026, 10, 7)))
    assert cal.holiday_name(date(2026, 10, 1)) == "国庆节"
    assert cal.holiday_name(date(2026, 10, 6)) == "休息日（由 2026-09-20 调休）"
    assert cal.is_workday(date(2026, 9, 30))
    assert cal.is_workday(date(2026, 10, 8))
    # The two weekend days worked for it.
    for worked in (date(2026, 9, 20), date(2026, 10, 10)):
        assert worked.weekday() >= 5
        assert cal.is_workday(worked)
        assert cal.is_adjusted_workday(worked)
        assert cal.holiday_name(worked) is None
    # Sunday 27 September closes 中秋 (25–27): an ordinary day off, not a 调休 workday.
    assert not cal.is_workday(date(2026, 9, 27))
    assert cal.holiday_name(date(2026, 9, 27)) is None
    assert cal.holiday_name(date(2026, 9, 25)) == "中秋节"


def test_adjusted_working_sunday_starts_2026(cal: WorkCalendar) -> None:
    sunday = date(2026, 1, 4)
    assert sunday.weekday() == 6
    assert cal.is_workday(sunday)
    assert cal.first_workday_of_month(2026, 1) == sunday


def test_spring_festival_2026(cal: WorkCalendar) -> None:
    assert cal.holiday_name(date(2026, 2, 16)) == "农历除夕"
    assert cal.holiday_name(date(2026, 2, 17)) == "春节"
    assert cal.is_workday(date(2026, 2, 14))  # Saturday worked before
    assert cal.is_workday(date(2026, 2, 28))  # and after
    assert cal.workday_on_or_after(date(2026, 2, 15)) == date(2026, 2, 24)
    # The whole week of 16–22 February is off: it has no first workday.
    assert cal.first_workday_of_week(date(2026, 2, 18)) is None


def test_spring_festival_2027_statutory_days(cal: WorkCalendar) -> None:
    # 除夕 and 初一–初三 are statutory whatever the 2027 notice adds around them.
    for d in days(date(2027, 2, 5), date(2027, 2, 8)):
        assert not cal.is_workday(d)
        assert cal.holiday_name(d) is not None
    assert cal.holiday_name(date(2027, 2, 5)) == "农历除夕"
    assert cal.holiday_name(date(2027, 2, 6)) == "春节"


def test_next_years_schedule_goes_in_the_config() -> None:
    # A schedule the package does not have yet: a Saturday worked, a Friday given off.
    settings = CalendarSettings(
        extra_workdays=[date(2027, 2, 20)], extra_holidays=[date(2027, 2, 12)]
    )
    cal = WorkCalendar.from_settings(settings)
    assert cal.is_workday(date(2027, 2, 20))
    assert not cal.is_workday(date(2027, 2, 12))
    assert cal.holiday_name(date(2027, 2, 12)) == EXTRA_HOLIDAY_NAME


def test_overrides_beat_the_package() -> None:
    cal = WorkCalendar(
        extra_holidays=[date(2026, 12, 31), date(2026, 9, 20)],
        extra_workdays=[date(2026, 11, 28), date(2026, 10, 7)],
    )
    assert not cal.is_workday(date(2026, 12, 31))  # a Thursday given off
    assert not cal.is_workday(date(2026, 9, 20))  # a 调休 Sunday taken back
    assert cal.is_workday(date(2026, 11, 28))  # a Saturday worked
    assert cal.is_workday(date(2026, 10, 7))  # a statutory day off worked
    assert cal.holiday_name(date(2026, 10, 7)) is None
    assert cal.holiday_name(date(2026, 12, 31)) == EXTRA_HOLIDAY_NAME


def test_a_date_cannot_be_both() -> None:
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(extra_holidays=[date(2026, 1, 5)], extra_workdays=[date(2026, 1, 5)])


def test_years_the_package_does_not_cover_are_plain_weeks() -> None:
    cal = WorkCalendar()
    assert cal.is_workday(date(2200, 1, 1))  # a Wednesday
    assert not cal.is_workday(date(2200, 1, 4))  # a Saturday


# Moving between workdays ----------------------------------------------------------------


def test_workday_on_or_before(cal: WorkCalendar) -> None:
    assert cal.workday_on_or_before(date(2026, 11, 27)) == date(2026, 11, 27)
    assert cal.workday_on_or_before(date(2026, 11, 28)) == date(2026, 11, 27)  # Saturday
    assert cal.workday_on_or_before(date(2026, 11, 29)) == date(2026, 11, 27)  # Sunday
    for d in days(date(2026, 10, 1), date(2026, 10, 7)):  # across the whole 国庆 week
        assert cal.workday_on_or_before(d) == date(2026, 9, 30)
    assert cal.workday_on_or_before(date(2026, 10, 11)) == date(2026, 10, 10)  # worked Sat


def test_next_and_previous(cal: WorkCalendar) -> None:
    assert cal.workday_on_or_after(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 10, 8)) == date(2026, 10, 9)
    assert cal.next_workday(date(2026, 9, 19)) == date(2026, 9, 20)  # 调休 Sunday
    assert cal.previous_workday(date(2026, 10, 8)) == date(2026, 9, 30)


def test_first_workdays(cal: WorkCalendar) -> None:
    assert cal.first_workday_of_month(2026, 10) == date(2026, 10, 8)
    assert cal.first_workday_of_month(2026, 2) == date(2026, 2, 2)
    assert cal.first_workday_of_month(2026, 11) == date(2026, 11, 2)  # 1st is a Sunday
    assert cal.first_workday_of_week(date(2026, 10, 11)) == date(2026, 10, 8)
    assert cal.first_workday_of_week(date(2026, 9, 30)) == date(2026, 9, 28)
    assert cal.first_workday_of_week(date(2026, 11, 27)) == date(2026, 11, 23)


def test_add_workdays(cal: WorkCalendar) -> None:
    assert cal.add_workdays(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert cal.add_workdays(date(2026, 9, 29), 3) == date(2026, 10, 9)
    assert cal.add_workdays(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert cal.add_workdays(date(2026, 11, 28), 0) == date(2026, 11, 28)
    assert cal.add_workdays(date(2026, 11, 28), 1) == date(2026, 11, 30)
    assert cal.add_workdays(date(2026, 11, 28), -1) == date(2026, 11, 27)


def test_workdays_between(cal: WorkCalendar) -> None:
    assert cal.workdays_between(date(2026, 10, 1), date(2026, 10, 8)) == 0
    # 28, 29, 30 September and 8, 9, 10 October.
    assert cal.workdays_between(date(2026, 9, 28), date(2026, 10, 11)) == 6
    assert cal.workdays_between(date(2026, 10, 11), date(2026, 9, 28)) == -6
    for d in (date(2026, 9, 30), date(2026, 2, 13), date(2026, 12, 31)):
        for n in (-7, -1, 1, 5, 20):
            assert cal.workdays_between(d, cal.add_workdays(d, n)) == n


# Periods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "period", "span", "key", "left"),
    [
        (date(2026, 12, 31), "year", (date(2026, 1, 1), date(2026, 12, 31)), "2026", 0),
        (date(2026, 12, 21), "year", (date(2026, 1, 1), date(2026, 12, 31)), "2026", 10),
        (date(2026, 12, 31), "quarter", (date(2026, 10, 1), date(2026, 12, 31)), "2026-Q4", 0),
        (date(2026, 12, 31), "half", (date(2026, 7, 1), date(2026, 12, 31)), "2026-H2", 0),
        (date(2026, 12, 5), "month", (date(2026, 12, 1), date(2026, 12, 31)), "2026-12", 26),
        (date(2026, 3, 31), "quarter", (date(2026, 1, 1), date(2026, 3, 31)), "2026-Q1", 0),
        (date(2026, 4, 1), "quarter", (date(2026, 4, 1), date(2026, 6, 30)), "2026-Q2", 90),
        (date(2026, 6, 30), "half", (date(2026, 1, 1), date(2026, 6, 30)), "2026-H1", 0),
        (date(2026, 9, 30), "quarter", (date(2026, 7, 1), date(2026, 9, 30)), "2026-Q3", 0),
        (date(2026, 11, 27), "month", (date(2026, 11, 1), date(2026, 11, 30)), "2026-11", 3),
        (date(2028, 2, 29), "month", (date(2028, 2, 1), date(2028, 2, 29)), "2028-02", 0),
        (date(2028, 2, 28), "month", (date(2028, 2, 1), date(2028, 2, 29)), "2028-02", 1),
        (date(2027, 2, 28), "month", (date(2027, 2, 1), date(2027, 2, 28)), "2027-02", 0),
        (date(2028, 2, 29), "quarter", (date(2028, 1, 1), date(2028, 3, 31)), "2028-Q1", 31),
    ],
)
def test_periods(d: date, period: Period, span: tuple[date, date], key: str, left: int) -> None:
    assert period_of(d, period) == span
    assert period_end(d, period) == span[1]
    assert period_key(d, period) == key
    assert days_left(d, period) == left


# The send window (start inclusive, end exclusive) -------------------------------------


def test_local_date_is_shanghais() -> None:
    assert local_date(datetime(2026, 11, 27, 15, 59, tzinfo=UTC)) == date(2026, 11, 27)
    assert local_date(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)) == date(2026, 11, 28)
    assert local_date(datetime(2026, 11, 27, 16, 0)) == date(2026, 11, 28)  # naive is UTC


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (sh(2026, 11, 27, 8, 30), True),  # first minute
        (sh(2026, 11, 27, 8, 29), False),
        (sh(2026, 11, 27, 8, 29, 59), False),
        (sh(2026, 11, 27, 17, 59), True),  # last minute
        (sh(2026, 11, 27, 17, 59, 59), True),
        (sh(2026, 11, 27, 18, 0), False),  # the end is exclusive
        (sh(2026, 11, 28, 10, 0), False),  # Saturday
        (sh(2026, 9, 20, 10, 0), True),  # 调休 Sunday
        (sh(2026, 10, 1, 10, 0), False),  # 国庆节
    ],
)
def test_in_send_window(cal: WorkCalendar, at: datetime, inside: bool) -> None:
    assert in_send_window(at, WINDOW, cal) is inside


@pytest.mark.parametrize(
    ("at", "slot"),
    [
        (sh(2026, 11, 27, 18, 5), sh(2026, 11, 30, 8, 30)),  # Friday evening → Monday
        (sh(2026, 11, 27, 18, 0), sh(2026, 11, 30, 8, 30)),
        (sh(2026, 11, 27, 17, 0), sh(2026, 11, 27, 17, 0)),  # already inside
        (sh(2026, 11, 27, 7, 0), sh(2026, 11, 27, 8, 30)),  # before the start
        (sh(2026, 9, 30, 18, 5), sh(2026, 10, 8, 8, 30)),  # 国庆 eve
        (sh(2026, 10, 3, 12, 0), sh(2026, 10, 8, 8, 30)),  # inside the holiday
        (sh(2026, 2, 13, 19, 0), sh(2026, 2, 14, 8, 30)),  # 春节 eve → the worked Saturday
        (sh(2026, 9, 19, 12, 0), sh(2026, 9, 20, 8, 30)),  # Saturday → the worked Sunday
    ],
)
def test_next_send_slot(cal: WorkCalendar, at: datetime, slot: datetime) -> None:
    got = next_send_slot(at, WINDOW, cal)
    assert got == slot
    assert got.utcoffset() == timedelta(0)


def test_next_send_slot_is_the_earliest(cal: WorkCalendar) -> None:
    at = sh(2026, 9, 26)
    while at < sh(2026, 10, 12):
        slot = next_send_slot(at, WINDOW, cal)
        assert slot >= at
        assert in_send_window(slot, WINDOW, cal)
        if in_send_window(at, WINDOW, cal):
            assert slot == at
        else:
            assert local(slot).time() == WINDOW[0]
            first = local(at)
            if cal.is_workday(first.date()) and first.time() < WINDOW[0]:
                assert local_date(slot) == first.date()
            else:
                assert local_date(slot) == cal.next_workday(first.date())
        at += timedelta(minutes=13)


def test_spread_is_off_the_round_minutes_and_inside_the_window(cal: WorkCalendar) -> None:
    seeds = [f"notice:42:member-{i}" for i in range(12)]
    at = sh(2026, 11, 27, 8, 30)
    while at < sh(2026, 11, 27, 18, 0):
        for seed in seeds:
            got = spread(at, seed, WINDOW)
            assert local(got).minute not in (0, 30)
            assert in_send_window(got, WINDOW, cal)
            assert local_date(got) == local_date(at)
            assert timedelta(minutes=1) <= abs(got - at) <= timedelta(minutes=9)
            assert got.utcoffset() == timedelta(0)
        at += timedelta(minutes=1)


def test_spread_is_deterministic_and_spreads() -> None:
    at = sh(2026, 11, 27, 9, 0)
    assert spread(at, "digest:branch-3", WINDOW) == spread(at, "digest:branch-3", WINDOW)
    minutes = {local(spread(at, f"digest:branch-{i}", WINDOW)).minute for i in range(60)}
    assert minutes == set(range(1, 10))
    # At the start it moves forward, at the end backward, never out of the window.
    assert sh(2026, 11, 27, 8, 31) <= spread(sh(2026, 11, 27, 8, 30), "x", WINDOW)
    assert spread(sh(2026, 11, 27, 17, 59), "x", WINDOW) <= sh(2026, 11, 27, 17, 58)


def test_spread_outside_the_window_only_avoids_round_minutes() -> None:
    got = spread(sh(2026, 11, 27, 18, 0), "x", WINDOW)
    assert local(got).minute not in (0, 30)
    assert timedelta(minutes=1) <= abs(got - sh(2026, 11, 27, 18, 0)) <= timedelta(minutes=9)
