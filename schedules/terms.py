"""换届 and 转正.

换届: a committee's term (``terms.years``, 3 by default) runs from the org's 换届日期. Its
secretaries and the office hear ``terms.months_before`` months before the end (6, 3, 1),
then on the day it ends and monthly after it while no new 换届日期 is recorded.

转正: a 预备党员's probation ends a year after admission (or on the recorded 转正 date);
the member and the secretaries hear ``terms.probation_months_before`` months before.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import messages
from bot.calendar import local_date
from bot.config import Settings
from schedules.base import (
    OrgInfo,
    PlanData,
    Reminder,
    add_months,
    cn_date,
    daily,
    end_of_day,
    months_between,
    on_day,
    userids,
)

NAME = "terms"
LEAD_SLACK_DAYS = 20
"""A step moves back over days off, never this far."""


def term_end(org: OrgInfo, settings: Settings) -> date | None:
    if org.term_started_on is None:
        return None
    return add_months(org.term_started_on, 12 * settings.terms.years)


def probation_end(joined_on: date, full_on: date | None) -> date:
    return full_on if full_on is not None else add_months(joined_on, 12)


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    return _terms(now, data, settings) + _probation(now, data, settings)


def _recipients(org: OrgInfo, data: PlanData) -> list[str]:
    people = data.secretaries(org.id) if data.by_branch.get(org.id) else []
    return userids([*people, *data.office])


def _terms(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    cal = data.cal
    out: list[Reminder] = []
    earliest = max(settings.terms.months_before, default=0)
    for org in sorted(data.orgs.values(), key=lambda o: o.id):
        end = term_end(org, settings)
        if end is None or today < add_months(end, -earliest) - timedelta(days=LEAD_SLACK_DAYS):
            continue  # far from its end: nothing to say yet
        # Before the end: one step per configured offset, each relevant until the next.
        offsets = sorted(set(settings.terms.months_before), reverse=True)
        ats = [daily(add_months(end, -n), settings, cal) for n in offsets]
        for i, (n, at) in enumerate(zip(offsets, ats, strict=True)):
            if on_day(at, now):
                until = ats[i + 1] if i + 1 < len(ats) else end_of_day(end)
                out.append(
                    Reminder(
                        at=at,
                        rule=NAME,
                        key=f"term:org-{org.id}:{end}:T-{n}m",
                        to=_recipients(org, data),
                        text=messages.R_TERM.format(org=org.name, end=_cn_full(end), months=n),
                        until=until,
                    )
                )
        if today < add_months(end, -1):
            continue
        # From the end on: monthly. A step moved back over days off can land in the month
        # before, so this month's step and the next are both looked at.
        k0 = max(0, months_between(end, today))
        for k in (k0, k0 + 1):
            at = daily(add_months(end, k), settings, cal)
            if on_day(at, now):
                out.append(
                    Reminder(
                        at=at,
                        rule=NAME,
                        key=f"term:org-{org.id}:{end}:overdue-{k}",
                        to=_recipients(org, data),
                        text=messages.R_TERM_OVERDUE.format(org=org.name, end=_cn_full(end)),
                        until=daily(add_months(end, k + 1), settings, cal),
                    )
                )
    return out


def _probation(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    out: list[Reminder] = []
    for p in data.by_id_order():
        if p.category != "预备党员" or p.joined_on is None:
            continue
        end = probation_end(p.joined_on, p.full_on)
        at = daily(add_months(end, -settings.terms.probation_months_before), settings, data.cal)
        if on_day(at, now):
            out.append(
                Reminder(
                    at=at,
                    rule=NAME,
                    key=f"probation:member-{p.id}:{end}",
                    to=userids([p, *data.secretaries(p.branch_id)]),
                    text=messages.R_PROBATION.format(name=p.name, end=_cn_full(end)),
                    until=end_of_day(end),
                )
            )
    return out


def _cn_full(d: date) -> str:
    return f"{d.year}年{cn_date(d)}"
