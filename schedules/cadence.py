"""三会一课 and the other cadence rules: a branch behind its required count hears about it
``remind_days_before_end`` days (default 10 and 3) before the period ends.

Every rule is data (``[[cadence]]``, with per-branch overrides through
``settings.cadence_for``). What counts:

- a meeting of the rule's kind in the period, held (or scheduled and already started);
  one still scheduled later in the period also counts, since its own reminders follow it;
- scope ``group``: each 党小组 of the branch on its own; the secretary gets the groups behind;
- scope ``leadership`` (民主生活会): the bureau's leadership as a whole; the office is told;
- ``书记讲党课``: a 党课 whose topic names the 书记 (the 条例 asks the secretary for one a year);
- ``谈心谈话``: coverage, not a count: the secretary gets the members nobody has talked with
  this year (attendance of a 谈心谈话).

The counting lives in :func:`tally` so that the digest and the leaders' notes agree with it
(``bot/status.py`` should use the same rule; see the note in :func:`tally`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache

from bot import messages
from bot.calendar import local_date, period_key, period_of
from bot.config import CadenceRule, Period, Settings
from schedules.base import (
    MeetingInfo,
    OrgInfo,
    PlanData,
    Reminder,
    Step,
    countdown,
    names,
    on_day,
    userids,
)

NAME = "cadence"
PRESENT = frozenset({"signed_in", "made_up"})
StepsToday = Callable[[date, list[int]], list[Step]]


@lru_cache(maxsize=1024)
def _periods(today: date, period: Period) -> tuple[tuple[date, date], ...]:
    """This period and the next: a step of the next one can land today after a holiday move."""
    this = period_of(today, period)
    return (this, period_of(this[1] + timedelta(days=1), period))


def _matches(m: MeetingInfo, kind: str) -> bool:
    if kind == "书记讲党课":
        return m.kind == "书记讲党课" or (m.kind == "党课" and "书记" in m.topic)
    return m.kind == kind


def counted_kinds(kind: str) -> set[str]:
    """The meeting kinds a rule for ``kind`` counts (what :func:`_matches` can accept)."""
    return {"书记讲党课", "党课"} if kind == "书记讲党课" else {kind}


def tally(
    meetings: list[MeetingInfo],
    kind: str,
    start: date,
    end: date,
    now: datetime,
    group_id: int | None = None,
) -> tuple[int, int]:
    """(held, still planned) meetings of ``kind`` in ``[start, end]``.

    Held means status ``held``, or ``scheduled`` with its start already past (the secretary
    may not have closed it). Cancelled meetings are never loaded. When ``bot/status.py``
    exists this is the rule it should share.
    """
    held = planned = 0
    for m in meetings:
        if not _matches(m, kind) or (group_id is not None and m.group_id != group_id):
            continue
        if not start <= m.day <= end:
            continue
        if m.counts_as_held(now):
            held += 1
        else:
            planned += 1
    return held, planned


def talked_with(data: PlanData, branch_id: int, start: date, end: date) -> set[int]:
    """Members of a branch present at a 谈心谈话 in ``[start, end]``."""
    seen: set[int] = set()
    for m in data.meetings_by_branch.get(branch_id, []):
        if m.kind == "谈心谈话" and start <= m.day <= end:
            seen |= {mid for mid, status in m.attendance.items() if status in PRESENT}
    return seen


def shortfalls(
    branch: OrgInfo, data: PlanData, settings: Settings, now: datetime
) -> list[tuple[CadenceRule, int]]:
    """The branch-scope rules not yet met in the current period, with the count held.

    A yearly or half-yearly rule is listed only once its reminders have begun (within the
    largest ``remind_days_before_end`` of the period's end): in January "组织生活会 0/1" is
    not news.
    """
    today = local_date(now)
    out = []
    for rule in settings.cadence_for(branch.name):
        if rule.scope != "branch" or rule.kind == "谈心谈话" or rule.minimum <= 0:
            continue
        start, end = period_of(today, rule.period)
        lead = max(rule.remind_days_before_end, default=0)
        if rule.period in ("half", "year") and (end - today).days > lead:
            continue
        meetings = data.meetings_by_branch.get(branch.id, [])
        held, planned = tally(meetings, rule.kind, start, end, now)
        if held + planned < rule.minimum:
            out.append((rule, held))
    return out


def missed(
    branch: OrgInfo, data: PlanData, settings: Settings, first: date, last: date, now: datetime
) -> list[tuple[CadenceRule, int]]:
    """Monthly and quarterly branch rules, with how many of their periods inside
    ``[first, last]`` ended short of the count (what a liaison leader should ask about)."""
    out = []
    meetings = data.meetings_by_branch.get(branch.id, [])
    for rule in settings.cadence_for(branch.name):
        if rule.scope != "branch" or rule.period not in ("month", "quarter") or rule.minimum <= 0:
            continue
        short = 0
        start, end = period_of(first, rule.period)
        while end <= last:
            held, _ = tally(meetings, rule.kind, start, end, now)
            short += held < rule.minimum
            start, end = period_of(end + timedelta(days=1), rule.period)
        if short:
            out.append((rule, short))
    return out


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    today = local_date(now)
    steps: dict[tuple[date, tuple[int, ...]], list[Step]] = {}

    def steps_today(end: date, offsets: list[int]) -> list[Step]:
        key = (end, tuple(offsets))
        if key not in steps:
            steps[key] = [
                s for s in countdown(end, offsets, settings, data.cal) if on_day(s.at, now)
            ]
        return steps[key]

    out: list[Reminder] = []
    for branch in data.branches:
        if not data.by_branch.get(branch.id):
            continue
        for rule in settings.cadence_for(branch.name):
            if rule.scope == "leadership":
                continue
            for start, end in _periods(today, rule.period):
                for step in steps_today(end, rule.remind_days_before_end):
                    if end - timedelta(days=step.offset) < start:
                        continue  # the offset reaches back before the period began
                    out.extend(_branch_reminder(branch, rule, start, end, step, data, now))
    out.extend(_leadership(now, data, settings, steps_today))
    return out


def _branch_reminder(
    branch: OrgInfo,
    rule: CadenceRule,
    start: date,
    end: date,
    step: Step,
    data: PlanData,
    now: datetime,
) -> list[Reminder]:
    days = (end - local_date(step.at)).days
    period_name = messages.R_PERIOD_NAMES[rule.period]
    meetings = data.meetings_by_branch.get(branch.id, [])
    if rule.kind == "谈心谈话":
        seen = talked_with(data, branch.id, start, end)
        missing = [p for p in data.by_branch[branch.id] if p.id not in seen]
        if not missing:
            return []
        text = messages.R_TALKS.format(
            branch=branch.name, count=len(missing), names=names(missing), days=days
        )
    elif rule.scope == "group":
        behind = []
        for g in data.groups_of.get(branch.id, []):
            if not data.by_group.get(g.id):
                continue
            held, planned = tally(meetings, rule.kind, start, end, now, group_id=g.id)
            if held + planned < rule.minimum:
                behind.append(g.name.rsplit("/", 1)[-1])
        if not behind:
            return []
        text = messages.R_CADENCE_GROUPS.format(
            branch=branch.name,
            period=period_name,
            kind=rule.kind,
            groups="、".join(behind),
            days=days,
        )
    else:
        held, planned = tally(meetings, rule.kind, start, end, now)
        if held + planned >= rule.minimum:
            return []
        text = messages.R_CADENCE.format(
            branch=branch.name,
            period=period_name,
            kind=rule.kind,
            minimum=rule.minimum,
            held=held,
            days=days,
        )
    label = period_key(start, rule.period)
    return [
        Reminder(
            at=step.at,
            rule=NAME,
            key=f"cadence:{rule.kind}:branch-{branch.id}:{label}:T-{step.offset}",
            to=userids(data.secretaries(branch.id)),
            text=text,
            until=step.until,
        )
    ]


def _leadership(
    now: datetime, data: PlanData, settings: Settings, steps_today: StepsToday
) -> list[Reminder]:
    """民主生活会 and other leadership-scope rules: once for the bureau, to the office."""
    if not data.office:
        return []
    today = local_date(now)
    out = []
    for rule in settings.cadence:
        if rule.scope != "leadership" or not rule.enabled:
            continue
        for start, end in _periods(today, rule.period):
            for step in steps_today(end, rule.remind_days_before_end):
                if end - timedelta(days=step.offset) < start:
                    continue
                held, planned = tally(data.meetings, rule.kind, start, end, now)
                if held + planned >= rule.minimum:
                    continue
                text = messages.R_CADENCE_LEADERSHIP.format(
                    period=messages.R_PERIOD_NAMES[rule.period],
                    kind=rule.kind,
                    minimum=rule.minimum,
                    held=held,
                    days=(end - local_date(step.at)).days,
                )
                out.append(
                    Reminder(
                        at=step.at,
                        rule=NAME,
                        key=f"cadence:{rule.kind}:{period_key(start, rule.period)}:T-{step.offset}",
                        to=userids(data.office),
                        text=text,
                        until=step.until,
                    )
                )
    return out
