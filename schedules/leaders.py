"""Leaders (党委委员) with a liaison branch (联系点): once a quarter, on its first workday, a note
to visit it (``leaders.quarterly_visit``) with what the branch still owes this period; and
``leaders.attend_days_before`` days before the branch's 组织生活会, a note to attend it
(双重组织生活). A 组织生活会 scheduled later than that is announced to the leader at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot import messages
from bot.calendar import local_date, period_of
from bot.config import Settings
from schedules import cadence
from schedules.base import (
    PlanData,
    Reminder,
    cn_when,
    daily,
    end_of_day,
    on_day,
    place_after,
)

NAME = "leaders"
KIND = "组织生活会"


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    cal = data.cal
    out: list[Reminder] = []
    start, end = period_of(today, "quarter")
    visit = daily(cal.first_workday_of_month(start.year, start.month), settings, cal)
    quarter = (start.month - 1) // 3 + 1
    for p in data.leaders:
        branch = data.orgs.get(p.liaison_branch_id) if p.liaison_branch_id else None
        if branch is None:
            continue
        if settings.leaders.quarterly_visit and on_day(visit, now):
            last_quarter = period_of(start - timedelta(days=1), "quarter")
            short = cadence.missed(branch, data, settings, *last_quarter, now)
            items = "、".join(
                messages.R_LEADER_VISIT_ITEM.format(kind=rule.kind, n=n, unit=_unit(rule.period))
                for rule, n in short
            )
            status = messages.R_LEADER_VISIT_MISSED.format(items=items) if items else ""
            out.append(
                Reminder(
                    at=visit,
                    rule=NAME,
                    key=f"leader-visit:{start.year}-Q{quarter}:member-{p.id}",
                    to=[p.userid],
                    text=messages.R_LEADER_VISIT.format(branch=branch.name, status=status),
                    until=end_of_day(end),
                )
            )
        for m in data.this_months_meetings(branch.id, today):
            if m.kind != KIND or m.status != "scheduled" or m.starts_at <= now - timedelta(days=1):
                continue
            day = local_date(m.starts_at) - timedelta(days=settings.leaders.attend_days_before)
            at = daily(day, settings, cal)
            if m.created_at is not None and m.created_at > at:
                at = place_after(m.created_at, cal, settings.bot.send_window)
            if at < m.starts_at and on_day(at, now):
                out.append(
                    Reminder(
                        at=at,
                        rule=NAME,
                        key=f"leader-attend:meeting-{m.id}:member-{p.id}",
                        to=[p.userid],
                        text=messages.R_LEADER_ATTEND.format(
                            branch=branch.name, when=cn_when(m.starts_at)
                        ),
                        until=m.starts_at,
                    )
                )
    return out


def _unit(period: str) -> str:
    return "个月" if period == "month" else "个季度"
