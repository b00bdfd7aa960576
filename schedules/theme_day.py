"""主题党日: a fixed day each month (``theme_day.day``, per branch ``[branches.NAME]
theme_day``). Members hear of it ``member_days_before`` days before; the secretary
``secretary_days_before`` days before if nothing is scheduled for it that month.

The day itself stays as configured even on a weekend (branches often move the activity to a
nearby workday; the scheduled 主题党日 meeting, when there is one, gives the real date).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import messages
from bot.calendar import local_date
from bot.config import Settings
from schedules.base import (
    MeetingInfo,
    OrgInfo,
    PlanData,
    Reminder,
    add_months,
    cn_date_weekday,
    cn_when,
    daily,
    on_day,
    start_of_day,
    userids,
)

NAME = "theme_day"
KIND = "主题党日"


def planned(branch_id: int, month: date, data: PlanData) -> MeetingInfo | None:
    """The branch's 主题党日 meeting in ``month`` (held or scheduled), if any."""
    for m in data.this_months_meetings(branch_id, month):
        if m.kind == KIND and (m.day.year, m.day.month) == (month.year, month.month):
            return m
    return None


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    this_month = today.replace(day=1)
    out: list[Reminder] = []
    cache: dict[tuple[date, int], datetime] = {}

    def when(day: date, before: int) -> datetime:
        if (day, before) not in cache:
            cache[(day, before)] = daily(day - timedelta(days=before), settings, data.cal)
        return cache[(day, before)]

    for branch in data.branches:
        members = data.by_branch.get(branch.id)
        if not members:
            continue
        for month in (this_month, add_months(this_month, 1)):
            day = month.replace(day=settings.theme_day_for(branch.name))
            to_members = when(day, settings.theme_day.member_days_before)
            to_secretary = when(day, settings.theme_day.secretary_days_before)
            if not (on_day(to_members, now) or on_day(to_secretary, now)):
                continue
            meeting = planned(branch.id, month, data)
            out.extend(_reminders(branch, day, meeting, to_members, to_secretary, now, data))
    return out


def _reminders(
    branch: OrgInfo,
    day: date,
    meeting: MeetingInfo | None,
    to_members: datetime,
    to_secretary: datetime,
    now: datetime,
    data: PlanData,
) -> list[Reminder]:
    out = []
    month = f"{day:%Y-%m}"
    if on_day(to_members, now) and not (meeting and meeting.counts_as_held(now)):
        # An activity already held this month needs no announcement.
        shown = meeting.day if meeting else day
        detail = (
            messages.R_THEME_DAY_PLANNED.format(
                when=cn_when(meeting.starts_at), place=meeting.place or "待定"
            )
            if meeting
            else ""
        )
        out.append(
            Reminder(
                at=to_members,
                rule=NAME,
                key=f"theme-day:branch-{branch.id}:{month}:members",
                to=userids(data.by_branch[branch.id]),
                text=messages.R_THEME_DAY.format(
                    date=cn_date_weekday(shown), branch=branch.name, detail=detail
                ),
                until=start_of_day(max(day, shown)),
            )
        )
    if on_day(to_secretary, now) and meeting is None:
        out.append(
            Reminder(
                at=to_secretary,
                rule=NAME,
                key=f"theme-day:branch-{branch.id}:{month}:secretary",
                to=userids(data.secretaries(branch.id)),
                text=messages.R_THEME_DAY_SECRETARY.format(
                    branch=branch.name, date=cn_date_weekday(day)
                ),
                until=start_of_day(day),
            )
        )
    return out
