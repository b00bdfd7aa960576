"""政治生日: on the first workday of the month each secretary gets the month's list; on the
day (or the workday before) the member gets a greeting.

Which date is the 政治生日 is ``bot.political_birthday``: ``joined`` (入党日期, the default)
or ``full`` (转正日期). A birthday on 1 January is greeted on the last workday of December.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from bot import messages
from bot.calendar import local_date
from bot.config import Settings
from schedules.base import (
    Person,
    PlanData,
    Reminder,
    add_months,
    anniversary,
    at_time,
    cn_date,
    daily,
    end_of_day,
    on_day,
    place_before,
    userids,
)

NAME = "birthdays"
LOOKAHEAD_DAYS = 20
"""A greeting moves back at most over a run of days off; no run is this long."""


def birthday_of(p: Person, settings: Settings) -> date | None:
    return p.joined_on if settings.bot.political_birthday == "joined" else p.full_on


def by_day(data: PlanData, settings: Settings) -> dict[tuple[int, int], list[Person]]:
    """Members by (month, day) of their 政治生日, built once per snapshot."""

    def build() -> dict[tuple[int, int], list[Person]]:
        index: dict[tuple[int, int], list[Person]] = {}
        for p in data.by_id_order():
            born = birthday_of(p, settings)
            if born is not None:
                index.setdefault((born.month, born.day), []).append(p)
        return index

    return data.derived(f"birthdays:{settings.bot.political_birthday}", build)


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    index = by_day(data, settings)
    out: list[Reminder] = []
    for ahead in range(LOOKAHEAD_DAYS + 1):
        day = today + timedelta(days=ahead)
        people = list(index.get((day.month, day.day), []))
        if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
            people += index.get((2, 29), [])
        if not people:
            continue
        at = daily(day, settings, data.cal)
        if not on_day(at, now):
            continue
        for p in people:
            born = birthday_of(p, settings)
            assert born is not None
            if day.year <= born.year:
                continue
            out.append(
                Reminder(
                    at=at,
                    rule=NAME,
                    key=f"birthday:{day.year}:member-{p.id}",
                    to=[p.userid],
                    text=messages.R_BIRTHDAY.format(
                        name=p.name, date=cn_date(day), years=day.year - born.year
                    ),
                    until=end_of_day(day),
                )
            )
    first = data.cal.first_workday_of_month(today.year, today.month)
    if first == today:
        at = place_before(
            at_time(first, settings.bot.reminder_time), data.cal, settings.bot.send_window
        )
        out.extend(_lists(today.replace(day=1), at, data, settings))
    return out


def _lists(month: date, at: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    out = []
    until = end_of_day(add_months(month, 1) - timedelta(days=1))
    for branch in data.branches:
        items = []
        for p in data.by_branch.get(branch.id, []):
            born = birthday_of(p, settings)
            if born is None or born.month != month.month or born.year >= month.year:
                continue
            day = anniversary(born, month.year)
            items.append(
                (
                    day,
                    messages.R_BIRTHDAY_LIST_ITEM.format(
                        name=p.name, date=cn_date(day), years=month.year - born.year
                    ),
                )
            )
        if not items:
            continue
        out.append(
            Reminder(
                at=at,
                rule=NAME,
                key=f"birthday-list:{month:%Y-%m}:branch-{branch.id}",
                to=userids(data.secretaries(branch.id)),
                text=messages.R_BIRTHDAY_LIST.format(
                    branch=branch.name, items="、".join(text for _, text in sorted(items))
                ),
                until=until,
            )
        )
    return out
