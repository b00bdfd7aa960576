"""学时 pace: a member behind the pro-rata pace of the annual target at a quarter's end gets
one private note (on the quarter's last workday). Targets: ``study.member_target_hours``
(32), ``study.committee_target_hours`` (56) for secretaries and committee members.

The pace runs from 1 January, or from the day a member joined the Party this year. The
weekly nudge (``study.weekly_nudge``, off by default) goes on the first workday of a week to
members behind the pace to date. Study is voluntary: the notes are private, never ranked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import messages
from bot.calendar import WorkCalendar, local_date, period_of
from bot.config import Settings
from schedules.base import Person, PlanData, Reminder, daily, end_of_day, on_day

NAME = "study"
FOLLOW_UP_DAYS = 14


def target_hours(p: Person, settings: Settings) -> float:
    return (
        settings.study.committee_target_hours
        if p.is_committee
        else settings.study.member_target_hours
    )


def pace_hours(p: Person, on: date, settings: Settings) -> float:
    """Hours a member would have by ``on`` (inclusive) at an even pace towards the target."""
    year_start = date(on.year, 1, 1)
    start = max(year_start, p.joined_on) if p.joined_on else year_start
    if start > on:
        return 0.0
    days_in_year = (date(on.year + 1, 1, 1) - year_start).days
    return target_hours(p, settings) * ((on - start).days + 1) / days_in_year


def hours(p: Person, year: int, data: PlanData) -> float:
    return data.study_minutes.get((p.id, year), 0) / 60


def _fmt(h: float) -> str:
    return f"{h:.1f}".rstrip("0").rstrip(".")


def needed(days: list[date], settings: Settings, cal: WorkCalendar) -> bool:
    """Whether a note can go out on one of ``days`` (then the loader reads study totals)."""
    for day in days:
        if settings.study.quarter_pace_note:
            end = period_of(day, "quarter")[1]
            if local_date(daily(end, settings, cal)) == day:
                return True
        if settings.study.weekly_nudge and cal.first_workday_of_week(day) == day:
            return True
    return False


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    out: list[Reminder] = []
    if not data.study_loaded:
        if needed([today], settings, data.cal):
            raise RuntimeError("study totals not loaded for a day that needs them")
        return out
    if settings.study.quarter_pace_note:
        start, end = period_of(today, "quarter")
        at = daily(end, settings, data.cal)
        if on_day(at, now):
            quarter = (end.month - 1) // 3 + 1
            for p in data.by_id_order():
                target = target_hours(p, settings)
                pace = pace_hours(p, end, settings)
                done = hours(p, end.year, data)
                if target <= 0 or done >= pace:
                    continue
                out.append(
                    Reminder(
                        at=at,
                        rule=NAME,
                        key=f"study:{end.year}-Q{quarter}:member-{p.id}",
                        to=[p.userid],
                        text=messages.R_STUDY_PACE.format(
                            hours=_fmt(done), target=_fmt(target), pace=_fmt(pace)
                        ),
                        until=at + timedelta(days=FOLLOW_UP_DAYS),
                    )
                )
    if settings.study.weekly_nudge and data.cal.first_workday_of_week(today) == today:
        at = daily(today, settings, data.cal)
        year, week, _ = today.isocalendar()
        for p in data.by_id_order():
            target = target_hours(p, settings)
            done = hours(p, today.year, data)
            if target <= 0 or done >= pace_hours(p, today, settings):
                continue
            out.append(
                Reminder(
                    at=at,
                    rule=NAME,
                    key=f"study-week:{year}-W{week:02d}:member-{p.id}",
                    to=[p.userid],
                    text=messages.R_STUDY_WEEKLY.format(hours=_fmt(done), target=_fmt(target)),
                    until=end_of_day(today + timedelta(days=6 - today.weekday())),
                )
            )
    return out
