"""The weekly digest: on the first workday of each week (``digest.weekly``) each branch's
secretaries get its status — what the period still asks for, dues unpaid, notices not
confirmed, tasks coming due or overdue, and the week's meetings.

It is computed from the same snapshot as the other rules (``schedules.cadence.shortfalls``
for the cadence part), so the digest never disagrees with the reminders.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from bot import messages
from bot.calendar import local_date
from bot.config import Settings
from schedules import cadence, milestones
from schedules.base import (
    OrgInfo,
    PlanData,
    Reminder,
    add_months,
    cn_date_weekday,
    cn_when,
    daily,
    end_of_day,
    userids,
)

NAME = "digest"
TASK_DAYS = 14
"""Tasks due within this many days are listed."""


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    if not settings.digest.weekly or data.cal.first_workday_of_week(today) != today:
        return []
    at = daily(today, settings, data.cal)
    year, week, _ = today.isocalendar()
    until = end_of_day(today + timedelta(days=6 - today.weekday()))
    items_by_branch: dict[int, list[milestones.Item]] = defaultdict(list)
    for item in milestones.items(today, data, settings):
        items_by_branch[item.branch_id].append(item)
    unconfirmed = unconfirmed_by_branch(data)
    out = []
    for branch in data.branches:
        if not data.by_branch.get(branch.id):
            continue
        lines = status_lines(
            branch, now, data, settings, items_by_branch[branch.id], unconfirmed[branch.id]
        )
        out.append(
            Reminder(
                at=at,
                rule=NAME,
                key=f"digest:{year}-W{week:02d}:branch-{branch.id}",
                to=userids(data.secretaries(branch.id)),
                text=messages.R_DIGEST.format(branch=branch.name, lines="\n".join(lines)),
                until=until,
            )
        )
    return out


def unconfirmed_by_branch(data: PlanData) -> dict[int, list[tuple[int, int]]]:
    """branch id -> [(notice id, members not confirmed)], counted in one sweep."""
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for n in data.notices:
        counts: Counter[int] = Counter(
            data.members[r.member_id].branch_id
            for r in n.open_receipts
            if r.member_id in data.members
        )
        for branch_id, count in counts.items():
            out[branch_id].append((n.id, count))
    return out


def status_lines(
    branch: OrgInfo,
    now: datetime,
    data: PlanData,
    settings: Settings,
    open_items: list[milestones.Item],
    unconfirmed: list[tuple[int, int]],
) -> list[str]:
    """The digest's lines for one branch (its own tasks and unconfirmed notices given)."""
    today = local_date(now)
    lines = [
        messages.R_DIGEST_CADENCE.format(
            period=messages.R_PERIOD_NAMES[rule.period],
            kind=rule.kind,
            held=held,
            minimum=rule.minimum,
        )
        for rule, held in cadence.shortfalls(branch, data, settings, now)
    ]
    people = data.by_branch.get(branch.id, [])
    month = today.replace(day=1)
    dues_day = daily(month.replace(day=settings.dues.day), settings, data.cal)
    if local_date(dues_day) <= today:
        key = f"{month:%Y-%m}"
        next_month = add_months(month, 1)
        unpaid = [
            p
            for p in people
            if (p.joined_on is None or p.joined_on < next_month)
            and key not in data.dues_paid.get(p.id, ())
        ]
        if unpaid:
            lines.append(messages.R_DIGEST_DUES.format(month=f"{month.month}月", count=len(unpaid)))
    for notice_id, count in unconfirmed:
        lines.append(messages.R_DIGEST_NOTICES.format(id=notice_id, count=count))
    horizon = today + timedelta(days=TASK_DAYS)
    for item in sorted(open_items, key=lambda i: (i.due_on, i.name)):
        if item.due_on > horizon:
            continue
        if item.due_on < today and not item.chase_overdue:
            continue
        overdue = messages.R_DIGEST_OVERDUE if item.due_on < today else ""
        lines.append(
            messages.R_DIGEST_TASK.format(
                name=item.name, due=cn_date_weekday(item.due_on), overdue=overdue
            )
        )
    week_end = end_of_day(today + timedelta(days=6 - today.weekday()))
    for m in data.this_months_meetings(branch.id, today):
        if m.status == "scheduled" and now <= m.starts_at < week_end:
            lines.append(messages.R_DIGEST_MEETING.format(when=cn_when(m.starts_at), kind=m.kind))
    return lines or [messages.R_DIGEST_ALL_CLEAR]
