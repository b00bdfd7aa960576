"""Placement shared by every rule: workdays, the send window's edges, countdowns."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules.base import countdown, daily, place_after, place_before
from tests.snapshot import CAL, at, local_hm, settings_with

WINDOW = Settings().bot.send_window


def test_place_before_keeps_a_workday_moment_inside_the_window():
    assert place_before(at(2026, 11, 25, 9, 0), CAL, WINDOW) == at(2026, 11, 25, 9, 0)


def test_place_before_first_and_last_minute_of_the_window():
    # 08:30 is inside (start inclusive), 18:00 is outside (end exclusive).
    assert place_before(at(2026, 11, 25, 8, 30), CAL, WINDOW) == at(2026, 11, 25, 8, 30)
    assert place_before(at(2026, 11, 25, 8, 29), CAL, WINDOW) == at(2026, 11, 25, 8, 30)
    assert place_before(at(2026, 11, 25, 17, 59), CAL, WINDOW) == at(2026, 11, 25, 17, 59)
    assert place_before(at(2026, 11, 25, 18, 0), CAL, WINDOW) == at(2026, 11, 25, 17, 59)


def test_place_before_moves_saturday_national_day_and_keeps_adjusted_workdays():
    assert place_before(at(2026, 11, 28, 9), CAL, WINDOW) == at(2026, 11, 27, 9)  # Sat -> Fri
    assert place_before(at(2026, 10, 3, 9), CAL, WINDOW) == at(2026, 9, 30, 9)  # 国庆 -> 9/30
    assert place_before(at(2026, 10, 10, 9), CAL, WINDOW) == at(2026, 10, 10, 9)  # 调休 Sat
    assert place_before(at(2026, 9, 20, 9), CAL, WINDOW) == at(2026, 9, 20, 9)  # 调休 Sun


def test_place_after_waits_for_the_next_opening():
    assert place_after(at(2026, 11, 27, 18, 0), CAL, WINDOW) == at(2026, 11, 30, 8, 30)
    assert place_after(at(2026, 9, 30, 18, 5), CAL, WINDOW) == at(2026, 10, 8, 8, 30)
    assert place_after(at(2026, 10, 9, 19, 0), CAL, WINDOW) == at(2026, 10, 10, 8, 30)
    assert place_after(at(2026, 11, 25, 7, 0), CAL, WINDOW) == at(2026, 11, 25, 8, 30)


def test_daily_uses_the_configured_time():
    s = settings_with(bot={"reminder_time": "10:15"})
    assert local_hm_at(daily(date(2026, 11, 25), s, CAL)) == "10:15"
    early = settings_with(bot={"reminder_time": "07:00"})
    assert local_hm_at(daily(date(2026, 11, 25), early, CAL)) == "08:30"


def local_hm_at(moment):  # type: ignore[no-untyped-def]
    from bot.clock import local

    return f"{local(moment):%H:%M}"


def test_countdown_collapses_offsets_that_land_on_the_same_workday():
    # Due Thu 8 October 2026: T-1 (7th), T-3 (5th) and T-7 (1st) all fall in 国庆 and move
    # to 30 September; only the nearest (T-1) is kept, T-14 stays on 24 September.
    steps = countdown(date(2026, 10, 8), [14, 7, 3, 1], Settings(), CAL)
    assert [(s.offset, s.at) for s in steps] == [(14, at(2026, 9, 24)), (1, at(2026, 9, 30))]
    assert steps[0].until == steps[1].at
    assert steps[1].until == at(2026, 10, 9, 0, 0)


def test_local_hm_helper():
    from schedules.base import Reminder

    assert local_hm(Reminder(at(2026, 1, 5, 9, 1), "x", "k", [], "t")) == "09:01"
