"""党费日: on ``dues.day`` of each month (or the workday before) every member who has not
paid the month yet is reminded, the secretary gets the unpaid list, and members unpaid
``dues.flag_months`` (and ``dues.leave_months``) months in a row are flagged to the secretary.

A month counts as unpaid only from the member's joining (预备党员 pay from admission) and from
the first month the bureau recorded any dues: a bureau that starts using the bot in November
is not told that everybody owes since January.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import messages
from bot.calendar import WorkCalendar, local_date
from bot.config import Settings
from schedules.base import (
    OrgInfo,
    Person,
    PlanData,
    Reminder,
    add_months,
    daily,
    end_of_day,
    names,
    on_day,
    userids,
)

NAME = "dues"


def month_key(d: date) -> str:
    return f"{d:%Y-%m}"


def owes(p: Person, month: date) -> bool:
    """``p`` was a member during ``month`` (the first of a month)."""
    return p.joined_on is None or p.joined_on < add_months(month, 1)


def unpaid_run(p: Person, month: date, data: PlanData, limit: int) -> int:
    """Consecutive months unpaid right before ``month``, counted up to ``limit``."""
    paid = data.dues_paid.get(p.id, set())
    run = 0
    cursor = add_months(month, -1)
    for _ in range(limit):
        key = month_key(cursor)
        if key in paid or not owes(p, cursor) or data.dues_since is None or key < data.dues_since:
            break
        run += 1
        cursor = add_months(cursor, -1)
    return run


def send_days(months: list[date], settings: Settings, cal: WorkCalendar) -> list[date]:
    """The 党费日 of each month (the workday on or before ``dues.day``)."""
    return [local_date(daily(m.replace(day=settings.dues.day), settings, cal)) for m in months]


def history_needed(days: list[date], settings: Settings, cal: WorkCalendar) -> bool:
    """Whether a 党费日 is among ``days`` (then the loader reads the months before)."""
    if not days:
        return False
    months = {d.replace(day=1) for d in days}
    months |= {add_months(m, 1) for m in months}
    return bool(set(send_days(sorted(months), settings, cal)) & set(days))


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    out: list[Reminder] = []
    for month in (today.replace(day=1), add_months(today.replace(day=1), 1)):
        at = daily(month.replace(day=settings.dues.day), settings, data.cal)
        if on_day(at, now):
            if not data.dues_history:
                raise RuntimeError("dues history not loaded for a 党费日")
            out.extend(_month(month, at, data, settings))
    return out


def _month(month: date, at: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    key = month_key(month)
    until = end_of_day(add_months(month, 1) - timedelta(days=1))
    flags = sorted({*settings.dues.flag_months, settings.dues.leave_months})
    out: list[Reminder] = []
    for branch in data.branches:
        people = data.by_branch.get(branch.id, [])
        unpaid = [p for p in people if owes(p, month) and key not in data.dues_paid.get(p.id, ())]
        for p in unpaid:
            out.append(
                Reminder(
                    at=at,
                    rule=NAME,
                    key=f"dues:{key}:member-{p.id}",
                    to=[p.userid],
                    text=messages.R_DUES.format(month=f"{month.month}月"),
                    until=until,
                )
            )
        if not unpaid:
            continue
        out.append(_list(branch, month, unpaid, at, until, data))
        flagged = [
            (p, n) for p in unpaid if (n := unpaid_run(p, month, data, flags[-1] + 1)) in flags
        ]
        if flagged:
            items = "、".join(
                messages.R_DUES_FLAG_ITEM.format(name=p.name, months=n) for p, n in flagged
            )
            out.append(
                Reminder(
                    at=at,
                    rule=NAME,
                    key=f"dues:{key}:flags:branch-{branch.id}",
                    to=userids(data.secretaries(branch.id)),
                    text=messages.R_DUES_FLAG.format(
                        branch=branch.name, items=items, leave=settings.dues.leave_months
                    ),
                    until=until,
                )
            )
    return out


def _list(
    branch: OrgInfo,
    month: date,
    unpaid: list[Person],
    at: datetime,
    until: datetime,
    data: PlanData,
) -> Reminder:
    return Reminder(
        at=at,
        rule=NAME,
        key=f"dues:{month_key(month)}:list:branch-{branch.id}",
        to=userids(data.secretaries(branch.id)),
        text=messages.R_DUES_LIST.format(
            branch=branch.name, month=f"{month.month}月", count=len(unpaid), names=names(unpaid)
        ),
        until=until,
    )
