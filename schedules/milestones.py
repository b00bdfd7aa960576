"""Milestones and tasks: the responsible secretaries ``tasks.days_before`` days (default 14,
7, 3, 1) before the due date; after it, every workday until done; the office one daily
summary of everything overdue.

Campaign milestones come from ``[[milestones]]``: one per branch in its scope and year. The
runner writes them as ``Task`` rows (kind ``milestone``) so that secretaries can report on
them with 进度 like any task; until it has, this rule plans them from the config alone,
under the same keys. A milestone that asks for nothing to be submitted (``submit = false``)
is not chased once its date has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bot import messages
from bot.calendar import local_date
from bot.config import Milestone, Settings
from schedules.base import (
    PlanData,
    Reminder,
    cn_date_weekday,
    countdown,
    daily,
    end_of_day,
    on_day,
    userids,
)

NAME = "milestones"
SUMMARY_MAX_LINES = 50


@dataclass(frozen=True)
class Item:
    name: str
    branch_id: int
    due_on: date
    milestone: bool
    task_id: int | None
    chase_overdue: bool = True
    """Chased every workday once overdue (a milestone only when it asks for a submission)."""

    @property
    def key(self) -> str:
        if self.milestone or self.task_id is None:
            return f"milestone:{self.name}:branch-{self.branch_id}"
        return f"task:{self.task_id}"


def in_scope(milestone: Milestone, data: PlanData) -> list[int]:
    """Branch ids a milestone applies to: 全体, or branch names joined by 、."""
    branches = [b for b in data.branches if data.by_branch.get(b.id)]
    if milestone.scope.strip() in ("", "全体"):
        return [b.id for b in branches]
    wanted = {n.strip() for n in milestone.scope.split("、")}
    return [b.id for b in branches if b.name in wanted]


def expected_milestones(
    settings: Settings, data: PlanData, first: date, last: date
) -> list[tuple[str, int, date]]:
    """(name, branch id, due date) of every config milestone due in ``[first, last]``."""
    out: list[tuple[str, int, date]] = []
    for ms in settings.milestones:
        for year in range(first.year, last.year + 1):
            due_on = ms.due_in(year)
            if due_on is not None and first <= due_on <= last:
                out.extend((ms.name, bid, due_on) for bid in in_scope(ms, data))
    return out


def items(today: date, data: PlanData, settings: Settings) -> list[Item]:
    """Open tasks and milestones, the config's milestones included."""
    submit = {ms.name: ms.submit for ms in settings.milestones}
    out: list[Item] = []
    rows = set()
    for t in data.tasks:
        rows.add((t.name, t.branch_id, t.due_on))
        if t.done or t.branch_id not in data.orgs:
            continue
        milestone = t.kind == "milestone"
        out.append(
            Item(
                t.name,
                t.branch_id,
                t.due_on,
                milestone,
                t.id,
                chase_overdue=submit.get(t.name, True) if milestone else True,
            )
        )
    horizon = max(settings.tasks.days_before, default=0) + 30
    for name, bid, due_on in expected_milestones(
        settings, data, date(today.year, 1, 1), date.fromordinal(today.toordinal() + horizon)
    ):
        if (name, bid, due_on) not in rows:
            out.append(Item(name, bid, due_on, True, None, chase_overdue=submit[name]))
    return out


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    cal = data.cal
    out: list[Reminder] = []
    overdue: list[Item] = []
    steps = {}
    for item in items(today, data, settings):
        branch = data.orgs[item.branch_id]
        to = userids(data.secretaries(item.branch_id))
        if item.due_on >= today:
            if item.due_on not in steps:
                steps[item.due_on] = [
                    s
                    for s in countdown(item.due_on, settings.tasks.days_before, settings, cal)
                    if on_day(s.at, now)
                ]
            for step in steps[item.due_on]:
                days = (item.due_on - today).days
                out.append(
                    Reminder(
                        at=step.at,
                        rule=NAME,
                        key=f"{item.key}:T-{step.offset}:{item.due_on}",
                        to=to,
                        text=messages.R_MILESTONE.format(
                            branch=branch.name,
                            name=item.name,
                            due=cn_date_weekday(item.due_on),
                            days=days,
                            submit=(
                                messages.R_MILESTONE_SUBMIT
                                if item.milestone and item.chase_overdue
                                else ""
                            ),
                        ),
                        until=step.until,
                    )
                )
        elif item.chase_overdue:
            overdue.append(item)
            if settings.tasks.overdue_daily and cal.is_workday(today):
                out.append(
                    Reminder(
                        at=daily(today, settings, cal),
                        rule=NAME,
                        key=f"{item.key}:overdue:{item.due_on}:{today}",
                        to=to,
                        text=messages.R_MILESTONE_OVERDUE.format(
                            branch=branch.name,
                            name=item.name,
                            due=cn_date_weekday(item.due_on),
                            days=(today - item.due_on).days,
                        ),
                        until=end_of_day(today),
                    )
                )
    if overdue and data.office and cal.is_workday(today):
        out.append(_summary(overdue, today, data, settings))
    return out


def _summary(overdue: list[Item], today: date, data: PlanData, settings: Settings) -> Reminder:
    overdue.sort(key=lambda i: (i.due_on, i.branch_id, i.name))
    lines = [
        messages.R_OVERDUE_LINE.format(
            branch=data.orgs[i.branch_id].name,
            name=i.name,
            due=cn_date_weekday(i.due_on),
            days=(today - i.due_on).days,
        )
        for i in overdue[:SUMMARY_MAX_LINES]
    ]
    if len(overdue) > SUMMARY_MAX_LINES:
        lines.append(messages.R_NAMES_MORE.format(count=len(overdue)))
    return Reminder(
        at=daily(today, settings, data.cal),
        rule=NAME,
        key=f"overdue-summary:{today}",
        to=userids(data.office),
        text=messages.R_OVERDUE_SUMMARY.format(count=len(overdue), lines="\n".join(lines)),
        until=end_of_day(today),
    )
