"""Branch status and the office's compliance scorecard: the figures behind 状态, 总览, 我的,
``mofan status`` and the reminder engine.

Everything here is computed from the records (meetings, attendance, study, notices, dues,
tasks) at an instant the caller passes; nothing reads a clock or sends anything. Rendering
to text is at the end of the module and takes its wording from :mod:`bot.messages`.

**Cadence.** For each rule of ``settings.cadence_for(branch)`` the current period (month,
quarter, half or year holding today, :func:`bot.calendar.period_of`) is compared with the
meetings held in it. The counting rule is the reminder engine's (``schedules.cadence.tally``):
a meeting is *held* when its status says ``held``, or it is still ``scheduled`` and has
started; cancelled meetings never count; one still to come in the period is *scheduled*.
A 书记讲党课 is a meeting of that kind or a 党课 whose topic names the 书记. Group rules
(党小组会) apply to each 党小组 of the branch and not at all to a branch without groups;
leadership rules (民主生活会) concern the 党委's leadership group and 谈心谈话 is about
coverage of people, not a count, so neither appears in a branch's cadence lines.

**Study (学时).** Hours are recorded minutes / 60 over the calendar year; the target is
``study.committee_target_hours`` for committee members and ``study.member_target_hours`` for
everyone else. The pro-rata pace on a day is target × (days of the year so far / days in
the year). Figures per person are only ever shown to the member and their secretary.

**Scorecard.** A 0–100 compliance score per branch, never per person, with every part
explained (``[score]`` weights; the defaults give study no weight, as the 2026 办法 forbids
学习时长 as grounds for assessment). Each part is done / due over the year so far:

- cadence: rule periods that met their minimum, over the periods that have closed since
  the bot's records begin (the period of the earliest meeting in the database, so that a
  bureau starting in June is not marked down for January), plus current periods already met;
- attendance: (signed in + made up) / (attendees − those on leave) over ended meetings;
- dues: member-months paid / member-months due (a month is due from its 党费日 on);
- tasks: tasks due so far this year and done by their due date / tasks due so far;
- study (weight 0 by default): members at or above the pro-rata pace / members.

A part with nothing due yet is shown as such and left out of the total, so the total is
Σ weight × done/due ÷ Σ weight over the parts that have something due. 总览 orders branches
by what they still owe *this period* (outstanding cadence meetings and overdue tasks), not
by score: it is a to-do list, not a league table. Its scores come from a snapshot taken once
a day (:func:`daily_scorecards`: a year of attendance is too much to read per message in a
large bureau); what is owed this period and notice confirmations are always live.
"""

from __future__ import annotations

import json
import weakref
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, NamedTuple, cast, overload

from sqlalchemy import and_, bindparam, case, func, literal, or_, select
from sqlmodel import Session, col

from bot import messages as msg
from bot.calendar import local_date, period_of
from bot.clock import SHANGHAI, to_utc
from bot.config import CadenceRule, Period, Settings
from bot.db import engine_of
from bot.models import (
    Attendance,
    DuesRecord,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    Task,
)
from bot.store import (
    ABSENT,
    BRANCH_KINDS,
    INVITED,
    MADE_UP,
    SIGNED_IN,
    branch_members,
    is_committee,
    list_branches,
    study_minutes,
    unpaid_members,
    upcoming_branch_meetings,
)

RECENT_NOTICE_DAYS = 30
"""状态 lists unconfirmed notices sent within this many days."""


def day_start(d: date) -> datetime:
    """Midnight in Asia/Shanghai at the start of ``d``, as UTC."""
    return to_utc(datetime.combine(d, time(0), tzinfo=SHANGHAI))


def year_fraction(today: date) -> float:
    """How much of today's year has passed, counting today (1 January → 1/365)."""
    first = date(today.year, 1, 1)
    days = (date(today.year + 1, 1, 1) - first).days
    return ((today - first).days + 1) / days


def _held(now: datetime) -> Any:
    """The engine's rule: held, or scheduled and already started."""
    return or_(
        col(Meeting.status) == "held",
        and_(col(Meeting.status) == "scheduled", col(Meeting.starts_at) <= now),
    )


def _by_secretary() -> Any:
    """1 for a 党课 whose topic names the 书记 (it is also a 书记讲党课)."""
    return case(
        (and_(col(Meeting.kind) == "党课", col(Meeting.topic).contains("书记")), 1), else_=0
    )


SECRETARY_LESSON = "书记讲党课"
FEW_BRANCHES = 20
"""Up to this many branches, their meetings are read row by row; beyond, counted in SQL."""
SKIPPED_KINDS = frozenset({"谈心谈话"})


class _Tally:
    """Meeting counts keyed for O(1) lookups: per (branch, kind[, group][, period index])."""

    def __init__(self) -> None:
        self.any: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
        self.group: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])

    def add(
        self, b: int, kind: str, g: int | None, by_secretary: bool, held: bool, n: int, *extra: int
    ) -> None:
        kinds = [kind, SECRETARY_LESSON] if by_secretary and kind != SECRETARY_LESSON else [kind]
        for k in kinds:
            slot = 0 if held else 1
            self.any[(b, k, *extra)][slot] += n
            if g is not None:
                self.group[(b, k, g, *extra)][slot] += n

    def get(self, b: int, kind: str, g: int | None, *extra: int) -> tuple[int, int]:
        table, key = (
            (self.any, (b, kind, *extra)) if g is None else (self.group, (b, kind, g, *extra))
        )
        v = table.get(key)
        return (v[0], v[1]) if v else (0, 0)


# Cadence ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CadenceLine:
    """One cadence rule for one branch (or one 党小组) in the current period."""

    kind: str
    period: Period
    minimum: int
    start: date
    end: date
    held: int
    scheduled: int
    days_left: int
    group_id: int | None = None
    group_name: str | None = None

    @property
    def owed(self) -> int:
        return max(0, self.minimum - self.held)

    @property
    def met(self) -> bool:
        return self.held >= self.minimum


class _Group(NamedTuple):
    id: int
    short: str
    """The name people see (第一党小组, without the branch)."""


_GROUPS = (
    select(col(Org.id), col(Org.name), col(Org.parent_id))
    .where(col(Org.kind) == "党小组", col(Org.active))
    .order_by(col(Org.id))
)
_GROUPS_OF = _GROUPS.where(col(Org.parent_id).in_(bindparam("branch_ids", expanding=True)))


def _groups_by_branch(
    session: Session, branch_ids: Sequence[int] | None
) -> dict[int, list[_Group]]:
    """Each branch's active 党小组s, in roster order (plain tuples: a bureau has hundreds)."""
    if branch_ids is None:
        rows = session.execute(_GROUPS).all()
    else:
        rows = session.execute(_GROUPS_OF, {"branch_ids": list(branch_ids)}).all()
    out: dict[int, list[_Group]] = defaultdict(list)
    for gid, name, parent in rows:
        if parent is not None:
            out[parent].append(_Group(gid, name.rsplit("/", 1)[-1]))
    return out


def _period_counts(
    session: Session,
    branch_ids: Sequence[int] | None,
    start: date,
    end: date,
    now: datetime,
    kinds: set[str],
) -> _Tally:
    """(held, scheduled) meetings of ``kinds`` starting in ``[start, end]``, per branch, kind
    and group: one grouped query, for many branches at once."""
    held = case((_held(now), 1), else_=0)
    flag = _by_secretary()
    if SECRETARY_LESSON in kinds:
        kinds = kinds | {"党课"}
    stmt = (
        select(
            col(Meeting.branch_id),
            col(Meeting.kind),
            col(Meeting.group_id),
            flag,
            held,
            func.count(),
        )
        .where(
            col(Meeting.starts_at) >= day_start(start),
            col(Meeting.starts_at) < day_start(end + timedelta(days=1)),
            col(Meeting.status) != "cancelled",
            col(Meeting.kind).in_(sorted(kinds)),
        )
        .group_by(col(Meeting.branch_id), col(Meeting.kind), col(Meeting.group_id), flag, held)
    )
    if branch_ids is not None:
        stmt = stmt.where(col(Meeting.branch_id).in_(branch_ids))
    tally = _Tally()
    for b, kind, g, by_secretary, was_held, n in session.execute(stmt).all():
        tally.add(b, kind, g, bool(by_secretary), bool(was_held), int(n))
    return tally


_FEW_BRANCH_MEETINGS = select(
    col(Meeting.branch_id),
    col(Meeting.kind),
    col(Meeting.group_id),
    col(Meeting.topic),
    col(Meeting.status),
    col(Meeting.starts_at),
).where(
    col(Meeting.branch_id).in_(bindparam("branch_ids", expanding=True)),
    col(Meeting.starts_at) >= bindparam("first"),
    col(Meeting.starts_at) < bindparam("end"),
    col(Meeting.status) != "cancelled",
)


def _few_branch_counts(
    session: Session, branch_ids: Sequence[int], today: date, periods: set[Period], now: datetime
) -> dict[Period, _Tally]:
    """The same tallies for a few branches from one indexed read of their meetings (a branch
    holds a few dozen a year): cheaper than a grouped query per period."""
    bounds = {p: period_of(today, p) for p in periods}
    first = min(b[0] for b in bounds.values())
    last = max(b[1] for b in bounds.values())
    tallies = {p: _Tally() for p in periods}
    rows = session.execute(
        _FEW_BRANCH_MEETINGS,
        {
            "branch_ids": list(branch_ids),
            "first": day_start(first),
            "end": day_start(last + timedelta(days=1)),
        },
    ).all()
    for b, kind, g, topic, status, starts_at in rows:
        day = local_date(starts_at)
        held = status == "held" or (status == "scheduled" and starts_at <= now)
        by_secretary = kind == "党课" and "书记" in (topic or "")
        for p, (lo, hi) in bounds.items():
            if lo <= day <= hi:
                tallies[p].add(b, kind, g, by_secretary, held, 1)
    return tallies


def _rules(settings: Settings, branch: Org) -> list[CadenceRule]:
    return [
        r
        for r in settings.cadence_for(branch.name)
        if r.scope != "leadership" and r.kind not in SKIPPED_KINDS and r.minimum > 0
    ]


def cadence_status(
    *,
    session: Session,
    settings: Settings,
    branches: Sequence[Org],
    now: datetime,
    unmet_only: bool = False,
) -> dict[int, list[CadenceLine]]:
    """The current period's cadence lines for each branch (a few grouped queries in all)."""
    today = local_date(now)
    ids = [b.id for b in branches if b.id is not None]
    rules = {b.id: _rules(settings, b) for b in branches}
    periods = {r.period for rs in rules.values() for r in rs}
    if len(ids) <= FEW_BRANCHES:
        groups = _groups_by_branch(session, ids)
        counts = _few_branch_counts(session, ids, today, periods, now)
    else:
        groups = _groups_by_branch(session, None)  # a big IN list costs more than it saves
        counts = {
            p: _period_counts(
                session, None, *period_of(today, p), now,
                {r.kind for rs in rules.values() for r in rs if r.period == p},
            )
            for p in periods
        }  # fmt: skip
    bounds = {p: period_of(today, p) for p in periods}
    out: dict[int, list[CadenceLine]] = {}
    for branch in branches:
        bid = branch.id or 0
        lines: list[CadenceLine] = []
        for rule in rules[branch.id]:
            start, end = bounds[rule.period]
            tally = counts[rule.period]
            units: list[_Group | None] = (
                list(groups.get(bid, [])) if rule.scope == "group" else [None]
            )
            for g in units:
                held, scheduled = tally.get(bid, rule.kind, g.id if g else None)
                if unmet_only and held >= rule.minimum:
                    continue
                lines.append(
                    CadenceLine(
                        rule.kind,
                        rule.period,
                        rule.minimum,
                        start,
                        end,
                        held,
                        scheduled,
                        (end - today).days,
                        g.id if g else None,
                        g.short if g else None,
                    )  # fmt: skip
                )
        out[bid] = lines
    return out


def _short(org: Org) -> str:
    return org.name.rsplit("/", 1)[-1] if org.kind == "党小组" else org.name


# Study ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyProgress:
    member_id: int
    name: str
    minutes: int
    target_hours: float
    expected_hours: float
    """The pro-rata pace today."""

    @property
    def hours(self) -> float:
        return self.minutes / 60

    @property
    def behind(self) -> bool:
        return self.hours + 1e-9 < self.expected_hours


def study_target(settings: Settings, member: Member) -> float:
    if is_committee(member):
        return settings.study.committee_target_hours
    return settings.study.member_target_hours


def study_progress(
    *, session: Session, settings: Settings, members: Sequence[Member], now: datetime
) -> list[StudyProgress]:
    """This year's 学时 for each member against their target and today's pace, in roster order."""
    today = local_date(now)
    start = day_start(date(today.year, 1, 1))
    minutes = study_minutes(
        session=session,
        member_ids=[m.id for m in members if m.id],
        start=start,
        end=now + timedelta(seconds=1),
    )
    frac = year_fraction(today)
    out = []
    for m in members:
        target = study_target(settings, m)
        out.append(
            StudyProgress(
                member_id=m.id or 0,
                name=m.name,
                minutes=minutes.get(m.id or 0, 0),
                target_hours=target,
                expected_hours=round(target * frac, 1),
            )
        )
    return out


# Branch status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeLine:
    notice_id: int
    text: str
    created_at: datetime
    confirmed: int
    total: int

    @property
    def unconfirmed(self) -> int:
        return self.total - self.confirmed


@dataclass(frozen=True)
class TaskLine:
    task_id: int
    name: str
    due_on: date
    days_left: int

    @property
    def overdue(self) -> bool:
        return self.days_left < 0


@dataclass(frozen=True)
class MeetingLine:
    meeting_id: int
    kind: str
    starts_at: datetime
    ends_at: datetime
    place: str
    topic: str


@dataclass(frozen=True)
class StudySummary:
    members: int
    hours: float
    target_hours: float
    expected_hours: float
    behind: int


@dataclass(frozen=True)
class BranchStatus:
    branch_id: int
    branch: str
    today: date
    cadence: list[CadenceLine]
    missing_first_topic: list[MeetingLine]
    study: StudySummary | None
    """None where the viewer may not see 学时 (the office, leaders)."""
    notices: list[NoticeLine]
    dues_month: str
    dues_unpaid: list[str]
    tasks: list[TaskLine]
    next_meetings: list[MeetingLine]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cadence"] = [asdict(c) | {"owed": c.owed, "met": c.met} for c in self.cadence]
        return data


def _meeting_line(m: Meeting) -> MeetingLine:
    return MeetingLine(m.id or 0, m.kind, m.starts_at, m.ends_at, m.place, m.topic)


_MISSING_FIRST_TOPIC = (
    select(
        col(Meeting.id),
        col(Meeting.kind),
        col(Meeting.starts_at),
        col(Meeting.ends_at),
        col(Meeting.place),
        col(Meeting.topic),
    )
    .where(
        col(Meeting.branch_id) == bindparam("branch_id"),
        col(Meeting.status) != "cancelled",
        col(Meeting.starts_at) >= bindparam("since"),
        col(Meeting.ends_at) <= bindparam("now"),
        or_(col(Meeting.first_topic).is_(None), col(Meeting.first_topic) == ""),
    )
    .order_by(col(Meeting.starts_at).desc())
)
"""Built once, like the other statements 状态 runs (building one cost as much as running it).
The kind is checked in Python: with it in the WHERE clause SQLite (without ANALYZE
statistics) prefers the bureau-wide (kind, starts_at) index to the branch's own."""


def missing_first_topic(
    *, session: Session, branch_id: int, now: datetime, limit: int = 5
) -> list[MeetingLine]:
    """支委会 held this year with no 第一议题 recorded, latest first."""
    today = local_date(now)
    rows = session.execute(
        _MISSING_FIRST_TOPIC,
        {"branch_id": branch_id, "since": day_start(date(today.year, 1, 1)), "now": now},
    ).all()
    return [MeetingLine(*row) for row in rows if row[1] == "支委会"][:limit]


_BRANCH_NOTICES = (
    select(
        col(Notice.id),
        col(Notice.text),
        col(Notice.created_at),
        func.count(col(NoticeReceipt.confirmed_at)),
        func.count(),
    )
    .join(NoticeReceipt, col(NoticeReceipt.notice_id) == col(Notice.id))
    .join(Member, col(Member.id) == col(NoticeReceipt.member_id))
    .where(
        col(Member.branch_id) == bindparam("branch_id"),
        col(Notice.created_at) >= bindparam("since"),
    )
    .group_by(col(Notice.id), col(Notice.text), col(Notice.created_at))
    .order_by(col(Notice.created_at).desc())
)


def branch_notices(
    *, session: Session, branch_id: int, now: datetime, limit: int = 3
) -> list[NoticeLine]:
    """Recent notices with their confirmations in the branch, newest first, unconfirmed ones only."""
    since = now - timedelta(days=RECENT_NOTICE_DAYS)
    rows = session.execute(_BRANCH_NOTICES, {"branch_id": branch_id, "since": since}).all()
    lines = [NoticeLine(int(i), t, c, int(k), int(n)) for i, t, c, k, n in rows]
    return [n for n in lines if n.unconfirmed][:limit]


def branch_status(
    *, session: Session, settings: Settings, branch: Org, now: datetime, with_study: bool = True
) -> BranchStatus:
    """Everything 状态 shows for one branch."""
    today = local_date(now)
    bid = branch.id or 0
    cadence = cadence_status(session=session, settings=settings, branches=[branch], now=now)[bid]
    study = None
    if with_study:
        members = branch_members(session=session, branch_id=bid)
        progress = study_progress(session=session, settings=settings, members=members, now=now)
        study = StudySummary(
            members=len(progress),
            hours=round(sum(p.hours for p in progress), 1),
            target_hours=sum(p.target_hours for p in progress),
            expected_hours=round(sum(p.expected_hours for p in progress), 1),
            behind=sum(p.behind for p in progress),
        )
    month = f"{today.year}-{today.month:02d}"
    tasks = [
        TaskLine(t.id or 0, t.name, t.due_on, (t.due_on - today).days)
        for t in session.scalars(
            select(Task)
            .where(col(Task.branch_id) == bid, col(Task.done_at).is_(None))
            .order_by(col(Task.due_on))
        )
    ]
    horizon = max(settings.tasks.days_before or [14])
    return BranchStatus(
        branch_id=bid,
        branch=branch.name,
        today=today,
        cadence=cadence,
        missing_first_topic=missing_first_topic(session=session, branch_id=bid, now=now),
        study=study,
        notices=branch_notices(session=session, branch_id=bid, now=now),
        dues_month=month,
        dues_unpaid=[m.name for m in unpaid_members(session=session, branch_id=bid, month=month)],
        tasks=[t for t in tasks if t.days_left <= horizon],
        next_meetings=[
            _meeting_line(m)
            for m in upcoming_branch_meetings(session=session, branch_id=bid, now=now)
        ],
    )


# Scorecard --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorePart:
    key: str
    """cadence | attendance | dues | tasks | study."""
    weight: float
    done: int
    due: int

    @property
    def ratio(self) -> float | None:
        return None if self.due == 0 else min(1.0, self.done / self.due)

    @property
    def points(self) -> float | None:
        r = self.ratio
        return None if r is None else round(self.weight * r, 1)


@dataclass(frozen=True)
class Scorecard:
    branch_id: int
    branch: str
    parts: list[ScorePart]
    owed: list[CadenceLine]
    """This period's cadence lines not yet met."""
    overdue_tasks: int
    since: date
    """The first day the cadence part counts from."""

    @property
    def total(self) -> float | None:
        counted = [p for p in self.parts if p.weight > 0 and p.ratio is not None]
        weight = sum(p.weight for p in counted)
        if not weight:
            return None
        return round(100 * sum(p.weight * (p.ratio or 0) for p in counted) / weight, 1)

    @cached_property
    def owed_count(self) -> int:
        """Read several times for each of hundreds of cards by 总览 (sort, render): once."""
        return sum(c.owed for c in self.owed) + self.overdue_tasks

    def to_json(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "score": self.total,
            "since": self.since,
            "parts": [asdict(p) | {"ratio": p.ratio, "points": p.points} for p in self.parts],
            "owed": [
                {
                    "kind": c.kind,
                    "group": c.group_name,
                    "owed": c.owed,
                    "period_end": c.end,
                    "days_left": c.days_left,
                }
                for c in self.owed
            ],
            "overdue_tasks": self.overdue_tasks,
        }


def _period_index(d: date, period: Period) -> int:
    n = {"month": 1, "quarter": 3, "half": 6, "year": 12}[period]
    return (d.month - 1) // n


def _records_begin(session: Session, today: date) -> date:
    first = session.scalar(select(func.min(Meeting.starts_at)))
    if first is None:
        return today
    return max(date(today.year, 1, 1), local_date(first))


def _cadence_parts(
    session: Session,
    settings: Settings,
    branches: Sequence[Org],
    now: datetime,
    since: date,
    closed: bool = False,
) -> dict[int, tuple[int, int]]:
    """``{branch: (periods met, periods due)}`` over this year's closed periods and met current ones
    (``closed``: the year is over, so its current periods count like the others)."""
    today = local_date(now)
    year_start = date(today.year, 1, 1)
    groups = _groups_by_branch(session, None)
    periods = {r.period for b in branches for r in _rules(settings, b)}
    # Per period kind: meetings held this year, per (branch, kind, group, period index).
    tallies: dict[Period, _Tally] = {}
    for p in periods:
        edges = sorted({period_of(date(today.year, m, 1), p)[0] for m in range(1, 13)})[1:]
        index: Any = (
            case(
                *[(col(Meeting.starts_at) < day_start(e), i) for i, e in enumerate(edges)],
                else_=len(edges),
            )
            if edges
            else literal(0)
        )
        flag = _by_secretary()
        stmt = (
            select(
                col(Meeting.branch_id),
                col(Meeting.kind),
                col(Meeting.group_id),
                flag,
                index,
                func.count(),
            )
            .where(
                col(Meeting.starts_at) >= day_start(max(year_start, period_of(since, p)[0])),
                col(Meeting.starts_at) < day_start(period_of(today, p)[1] + timedelta(days=1)),
                col(Meeting.status) != "cancelled",
                _held(now),
            )
            .group_by(col(Meeting.branch_id), col(Meeting.kind), col(Meeting.group_id), flag, index)
        )
        tally = _Tally()
        for b, kind, g, by_secretary, i, n in session.execute(stmt).all():
            tally.add(b, kind, g, bool(by_secretary), True, int(n), int(i))
        tallies[p] = tally
    out: dict[int, tuple[int, int]] = {}
    for branch in branches:
        bid = branch.id or 0
        met = due = 0
        for rule in _rules(settings, branch):
            current = _period_index(today, rule.period)
            first = _period_index(max(since, year_start), rule.period)
            tally = tallies[rule.period]
            units: list[int | None] = (
                [g.id for g in groups.get(bid, [])] if rule.scope == "group" else [None]
            )
            for unit in units:
                for i in range(first, current + 1):
                    ok = tally.get(bid, rule.kind, unit, i)[0] >= rule.minimum
                    if i < current or closed:
                        due += 1
                        met += ok
                    elif ok:  # the current period counts once it is met, never against
                        due += 1
                        met += 1
        out[bid] = (met, due)
    return out


def _attendance_parts(session: Session, since: date, now: datetime) -> dict[int, tuple[int, int]]:
    """``{branch: (signed in + made up, attendees − on leave)}`` over meetings ended since ``since``."""
    stmt = (
        select(col(Meeting.branch_id), col(Attendance.status), func.count())
        .join(Attendance, col(Attendance.meeting_id) == col(Meeting.id))
        .where(
            col(Meeting.starts_at) >= day_start(since),
            col(Meeting.ends_at) <= now,
            col(Meeting.status) != "cancelled",
        )
        .group_by(col(Meeting.branch_id), col(Attendance.status))
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for b, status, n in session.execute(stmt).all():
        counts[b][status] += n
    out = {}
    for b, c in counts.items():
        present = c[SIGNED_IN] + c[MADE_UP]
        expected = present + c[INVITED] + c[ABSENT]
        out[b] = (present, expected)
    return out


def dues_months_due(today: date, dues_day: int, since: date) -> list[str]:
    """The months whose 党费日 has come, from ``since``'s month to today's, as ``YYYY-MM``."""
    last = today.month if today.day >= dues_day else today.month - 1
    first = since.month if since.year == today.year else 1
    return [f"{today.year}-{m:02d}" for m in range(first, last + 1)]


def _dues_parts(session: Session, months: Sequence[str]) -> tuple[dict[int, int], dict[int, int]]:
    """(member-months paid per branch, active members per branch)."""
    members = dict(
        session.execute(
            select(col(Member.branch_id), func.count())
            .where(col(Member.active))
            .group_by(col(Member.branch_id))
        ).all()
    )
    if not months:
        return {}, {int(b): int(n) for b, n in members.items()}
    paid = dict(
        session.execute(
            select(col(Member.branch_id), func.count())
            .join(DuesRecord, col(DuesRecord.member_id) == col(Member.id))
            .where(col(Member.active), col(DuesRecord.month).in_(months))
            .group_by(col(Member.branch_id))
        ).all()
    )
    return {int(b): int(n) for b, n in paid.items()}, {int(b): int(n) for b, n in members.items()}


def _task_parts(
    session: Session, today: date, closed: bool = False
) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
    """({branch: (done on time, due)}, {branch: overdue and open}); ``closed``: today's are due too."""
    last = col(Task.due_on) <= today if closed else col(Task.due_on) < today
    stmt = select(col(Task.branch_id), col(Task.due_on), col(Task.done_at)).where(
        col(Task.due_on) >= date(today.year, 1, 1), last
    )
    parts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    overdue: dict[int, int] = defaultdict(int)
    for b, due_on, done_at in session.execute(stmt).all():
        parts[b][1] += 1
        if done_at is not None and local_date(done_at) <= due_on:
            parts[b][0] += 1
        if done_at is None:
            overdue[b] += 1
    return {b: (v[0], v[1]) for b, v in parts.items()}, overdue


def _study_parts(session: Session, settings: Settings, now: datetime) -> dict[int, tuple[int, int]]:
    members = list(session.scalars(select(Member).where(col(Member.active))))
    progress = study_progress(session=session, settings=settings, members=members, now=now)
    by_id = {m.id: m for m in members}
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for p in progress:
        b = by_id[p.member_id].branch_id
        out[b][1] += 1
        out[b][0] += not p.behind
    return {b: (v[0], v[1]) for b, v in out.items()}


def scorecards(
    *,
    session: Session,
    settings: Settings,
    now: datetime,
    branches: Sequence[Org] | None = None,
    closed: bool = False,
) -> list[Scorecard]:
    """Every branch's scorecard, ordered by what it still owes this period (most first), then roster order.

    ``closed``: ``now`` is the last instant of a year that is over (the year-end ledger,
    :mod:`bot.scorecard`): its last periods and the tasks due on 31 December count like any
    other. Attendance and dues are counted even at weight 0, for the ledger to show.
    """
    today = local_date(now)
    branches = list(branches) if branches is not None else list_branches(session=session)
    since = _records_begin(session, today)
    w = settings.score
    cadence = _cadence_parts(session, settings, branches, now, since, closed)
    current = cadence_status(session=session, settings=settings, branches=branches, now=now)
    attendance = _attendance_parts(session, since, now)
    months = dues_months_due(today, settings.dues.day, since)
    paid, headcount = _dues_parts(session, months)
    tasks, overdue = _task_parts(session, today, closed)
    study = _study_parts(session, settings, now) if w.study else {}
    cards = []
    for b in branches:
        bid = b.id or 0
        parts = [
            ScorePart("cadence", w.cadence, *cadence.get(bid, (0, 0))),
            ScorePart("attendance", w.attendance, *attendance.get(bid, (0, 0))),
            ScorePart("dues", w.dues, paid.get(bid, 0), headcount.get(bid, 0) * len(months)),
            ScorePart("tasks", w.tasks, *tasks.get(bid, (0, 0))),
        ]
        if w.study:
            parts.append(ScorePart("study", w.study, *study.get(bid, (0, 0))))
        owed = [c for c in current.get(bid, []) if not c.met]
        cards.append(Scorecard(bid, b.name, parts, owed, overdue.get(bid, 0), since))
    order = {b.id: i for i, b in enumerate(branches)}
    cards.sort(key=lambda c: (-c.owed_count, order[c.branch_id]))
    return cards


# Rendering --------------------------------------------------------------------------------


def render_cadence_line(c: CadenceLine) -> str:
    name = f"{c.kind}（{c.group_name}）" if c.group_name else c.kind
    rule = msg.CADENCE_RULE.format(period=msg.PERIOD_NAMES[c.period], minimum=c.minimum)
    if c.met:
        state = msg.CADENCE_MET
    else:
        state = msg.CADENCE_OWED.format(days=c.days_left)
        if c.scheduled:
            state += msg.CADENCE_SCHEDULED.format(n=c.scheduled)
    return msg.CADENCE_LINE.format(
        name=name, rule=rule, period=msg.PERIOD_THIS[c.period], held=c.held, minimum=c.minimum,
        bar=msg.bar(c.held / c.minimum if c.minimum else 1.0, width=5), state=state,
    )  # fmt: skip


def render_branch_status(st: BranchStatus) -> str:
    lines = [msg.STATUS_HEADER.format(branch=st.branch, today=msg.md_w(st.today))]
    if st.cadence:
        lines.append(msg.STATUS_CADENCE)
        lines += [render_cadence_line(c) for c in st.cadence]
    else:
        lines.append(msg.STATUS_NO_RULES)
    if st.missing_first_topic:
        days = "、".join(msg.md(local_date(m.starts_at)) for m in st.missing_first_topic)
        lines.append(msg.STATUS_FIRST_TOPIC_MISSING.format(days=days))
    if st.study is not None:
        s = st.study
        ratio = s.hours / s.target_hours if s.target_hours else 1.0
        lines.append(
            msg.STATUS_STUDY.format(
                hours=msg.hours(s.hours * 60),
                target=msg.hours(s.target_hours * 60),
                bar=msg.bar(ratio),
                pace=msg.hours(s.expected_hours * 60),
            )  # fmt: skip
        )
        if s.behind:
            lines.append(msg.STATUS_STUDY_BEHIND.format(n=s.behind))
    if st.notices:
        for n in st.notices:
            lines.append(
                msg.STATUS_NOTICE.format(
                    id=n.notice_id, text=msg.preview(n.text), n=n.unconfirmed, total=n.total
                )
            )
    else:
        lines.append(msg.STATUS_NOTICES_ALL_CONFIRMED)
    month = int(st.dues_month[5:])
    if st.dues_unpaid:
        names = "、".join(st.dues_unpaid[:10]) + (
            msg.AND_MORE.format(n=len(st.dues_unpaid)) if len(st.dues_unpaid) > 10 else ""
        )
        lines.append(msg.STATUS_DUES_UNPAID.format(month=month, n=len(st.dues_unpaid), names=names))
    else:
        lines.append(msg.STATUS_DUES_ALL_PAID.format(month=month))
    overdue = [t for t in st.tasks if t.overdue]
    soon = [t for t in st.tasks if not t.overdue]
    for t in overdue:
        lines.append(
            msg.STATUS_TASK_OVERDUE.format(name=t.name, due=msg.md(t.due_on), days=-t.days_left)
        )
    for t in soon:
        lines.append(
            msg.STATUS_TASK_DUE.format(name=t.name, due=msg.md(t.due_on), days=t.days_left)
        )
    if st.next_meetings:
        lines.append(msg.STATUS_NEXT)
        lines += [
            msg.MEETING_BRIEF.format(
                id=m.meeting_id,
                kind=m.kind,
                when=msg.when(m.starts_at),
                place=m.place and f" {m.place}",
            )
            for m in st.next_meetings
        ]
    else:
        lines.append(msg.STATUS_NO_NEXT)
    return "\n".join(lines)


def render_part(p: ScorePart) -> str:
    label = msg.SCORE_PART_NAMES[p.key]
    if p.ratio is None:
        return msg.SCORE_PART_NONE.format(label=label)
    return msg.SCORE_PART.format(
        label=label, points=_num(p.points or 0), weight=_num(p.weight), done=p.done, due=p.due
    )


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def render_scorecard(
    card: Scorecard, notice: tuple[int, int, int] | None = None, rank: int | None = None
) -> str:
    total = msg.SCORE_NONE if card.total is None else msg.SCORE_TOTAL.format(score=_num(card.total))
    if rank is not None:  # only where the office turned [score] ranking on
        total += " " + msg.SCORE_RANK.format(rank=rank)
    parts = " · ".join(render_part(p) for p in card.parts if p.weight > 0)
    line = msg.OVERVIEW_BRANCH.format(branch=card.branch, total=total, parts=parts)
    owed = [
        msg.OVERVIEW_OWED_ITEM.format(
            name=f"{c.kind}（{c.group_name}）" if c.group_name else c.kind,
            n=c.owed,
            days=c.days_left,
        )
        for c in card.owed
    ]
    if card.overdue_tasks:
        owed.append(msg.OVERVIEW_OVERDUE_TASKS.format(n=card.overdue_tasks))
    line += "\n" + (
        msg.OVERVIEW_OWES.format(items="、".join(owed)) if owed else msg.OVERVIEW_OWES_NOTHING
    )
    if notice is not None:
        nid, confirmed, total_n = notice
        line += msg.OVERVIEW_NOTICE.format(id=nid, confirmed=confirmed, total=total_n)
    return line


def dumps(data: dict[str, Any]) -> str:
    """One JSON line (dates and instants as ISO 8601)."""

    def default(o: Any) -> str:
        if isinstance(o, datetime | date):
            return o.isoformat()
        raise TypeError(type(o).__name__)

    return json.dumps(data, ensure_ascii=False, default=default)


@dataclass
class Overview:
    today: date
    cards: list[Scorecard]
    notices: list[tuple[Notice, int, int]] = field(default_factory=list)
    """Recent notices with (confirmed, total) across the bureau."""
    by_branch: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """The latest notice's (id, confirmed, total) per branch."""
    scores_as_of: date | None = None
    """The day the scores were taken at (its start), when they come from the daily snapshot."""


_DAILY: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], list[Scorecard]]] = (
    weakref.WeakKeyDictionary()
)
"""Per database engine: the day's scorecards, keyed by (day, settings, branches)."""


class LazyBranches(Sequence[Org]):
    """The active branches for 总览: their ids at once (one indexed read), the rows only when
    a cache misses. Loading three hundred ``Org`` rows cost more than the rest of a 总览
    answered from the day's snapshot."""

    def __init__(self, session: Session) -> None:
        self.ids: tuple[int, ...] = tuple(session.scalars(_BRANCH_IDS))
        self._session = session
        self._rows: list[Org] | None = None

    def _load(self) -> list[Org]:
        if self._rows is None:
            self._rows = list_branches(session=self._session)
        return self._rows

    @overload
    def __getitem__(self, i: int) -> Org: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Org]: ...
    def __getitem__(self, i: int | slice) -> Org | Sequence[Org]:
        return self._load()[i]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Org]:
        return iter(self._load())


_BRANCH_IDS = (
    select(col(Org.id))
    .where(col(Org.kind).in_(BRANCH_KINDS), col(Org.active))
    .order_by(col(Org.id))
)
"""The same branches, in the same order, as ``list_branches``."""


def _ids(branches: Sequence[Org]) -> tuple[int | None, ...]:
    ids = getattr(branches, "ids", None)
    return ids if ids is not None else tuple(b.id for b in branches)


def daily_scorecards(
    *, session: Session, settings: Settings, now: datetime, branches: Sequence[Org]
) -> list[Scorecard]:
    """The scorecards as they stood at the start of today (Asia/Shanghai), computed once a day.

    A year-to-date score reads the whole year's attendance (hundreds of thousands of rows in
    a large bureau, about a second); what happened before today does not change during the
    day, so 总览 takes the parts from this snapshot and only the live figures (this period's
    outstanding meetings, overdue tasks, notice confirmations) afresh. ``warm_daily`` fills it
    ahead of the first reader (e.g. from the scheduler just after midnight). Kept per engine,
    in this process; each worker computes its own once a day.
    """
    today = local_date(now)
    engine = engine_of(session)
    key = (today, _settings_key(settings), _ids(branches))
    per_engine = _DAILY.setdefault(engine, {})
    cards = per_engine.get(key)
    if cards is None:
        cards = scorecards(
            session=session, settings=settings, now=day_start(today), branches=branches
        )
        per_engine.clear()  # yesterday's snapshot is no use any more
        per_engine[key] = cards
    return cards


def _settings_key(settings: Settings) -> str:
    return settings.model_dump_json(include={"cadence", "score", "dues", "study"})


_LIVE: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], datetime, datetime, Any]] = (
    weakref.WeakKeyDictionary()
)
LIVE_MAX_AGE = timedelta(minutes=10)
"""A safety net for :func:`bureau_unmet`: meetings changed other than by adding one (an edit
made directly in the database) show within this long."""


def bureau_unmet(
    *, session: Session, settings: Settings, branches: Sequence[Org], now: datetime
) -> dict[int, list[CadenceLine]]:
    """This period's unmet cadence lines of every branch (:func:`cadence_status` with
    ``unmet_only``), remembered until it can change.

    What is owed changes when a meeting is added (a new highest id) or when a scheduled one
    starts and so counts as held; until either happens, and for at most
    :data:`LIVE_MAX_AGE`, the last answer stands. Both checks are single index probes, so
    总览 does not recount three hundred branches' meetings for every reader.
    """
    today = local_date(now)
    engine = engine_of(session)
    latest = session.scalar(select(func.max(Meeting.id)))
    key = (today, _settings_key(settings), _ids(branches), latest)
    hit = _LIVE.get(engine)
    if hit is not None and hit[0] == key and hit[1] <= now < hit[2]:
        return cast(dict[int, list[CadenceLine]], hit[3])
    result = cadence_status(
        session=session, settings=settings, branches=branches, now=now, unmet_only=True
    )
    rules = {r.kind for b in branches for r in _rules(settings, b)}
    kinds = rules | ({"党课"} if SECRETARY_LESSON in rules else set())
    last = max(
        (period_of(today, r.period)[1] for b in branches for r in _rules(settings, b)),
        default=today,
    )
    next_start = session.scalar(
        select(func.min(Meeting.starts_at)).where(
            col(Meeting.kind).in_(sorted(kinds)),
            col(Meeting.status) == "scheduled",
            col(Meeting.starts_at) > now,
            col(Meeting.starts_at) < day_start(last + timedelta(days=1)),
        )
    )
    until = now + LIVE_MAX_AGE
    if next_start is not None:
        until = min(until, next_start.replace(tzinfo=next_start.tzinfo or UTC))
    _LIVE[engine] = (key, now, until, result)
    return result


def warm_daily(*, session: Session, settings: Settings, now: datetime) -> None:
    """Compute today's snapshot now, so that the day's first 总览 does not wait for it."""
    daily_scorecards(
        session=session, settings=settings, now=now, branches=list_branches(session=session)
    )


def _overdue_tasks(session: Session, today: date) -> dict[int, int]:
    stmt = (
        select(col(Task.branch_id), func.count())
        .where(col(Task.done_at).is_(None), col(Task.due_on) < today)
        .group_by(col(Task.branch_id))
    )
    return {int(b): int(n) for b, n in session.execute(stmt).all()}


def _notice_totals(session: Session, notice_id: int) -> tuple[int, int]:
    stmt = select(func.count(col(NoticeReceipt.confirmed_at)), func.count()).where(
        col(NoticeReceipt.notice_id) == notice_id
    )
    confirmed, total = session.execute(stmt).one()
    return int(confirmed), int(total)


_CARDS: weakref.WeakKeyDictionary[
    Any, tuple[Any, Any, dict[int, int], tuple[int, ...], list[Scorecard]]
] = weakref.WeakKeyDictionary()
"""Per engine: the last 总览's ordered cards and what they were built from."""


def _live_cards(
    engine: Any,
    snapshot: list[Scorecard],
    current: dict[int, list[CadenceLine]],
    overdue: dict[int, int],
    ids: tuple[int, ...],
) -> list[Scorecard]:
    """The day's cards with this period's owed items and overdue tasks, most owed first.
    Rebuilt only when one of its inputs changed: the snapshot and the owed items are the
    caches' own objects (compared by identity), the overdue counts by value."""
    hit = _CARDS.get(engine)
    if (
        hit is not None
        and hit[0] is snapshot
        and hit[1] is current
        and hit[2] == overdue
        and hit[3] == ids
    ):
        return list(hit[4])
    cards = [
        # Not dataclasses.replace: it inspects the fields each time (300 cards a reader).
        Scorecard(
            card.branch_id,
            card.branch,
            card.parts,
            current.get(card.branch_id, []),
            overdue.get(card.branch_id, 0),
            card.since,
        )
        for card in snapshot
    ]
    order = {bid: i for i, bid in enumerate(ids)}
    owed = {c.branch_id: c.owed_count for c in cards}
    cards.sort(key=lambda c: (-owed[c.branch_id], order.get(c.branch_id, len(order))))
    _CARDS[engine] = (snapshot, current, overdue, ids, cards)
    return list(cards)


def overview(
    *, session: Session, settings: Settings, now: datetime, notices: int = 2, exact: bool = False
) -> Overview:
    """总览: every branch's scorecard with this period's outstanding items and the latest
    notices' confirmations, ordered by what each branch still owes.

    The score parts come from the day's snapshot (:func:`daily_scorecards`) unless ``exact``;
    what is outstanding this period, overdue tasks and confirmations are always live.
    """
    from bot.store import confirmation_counts

    today = local_date(now)
    branches = LazyBranches(session)
    if exact:
        cards = scorecards(session=session, settings=settings, now=now, branches=branches)
        as_of = None
    else:
        snapshot = daily_scorecards(session=session, settings=settings, now=now, branches=branches)
        current = bureau_unmet(session=session, settings=settings, branches=branches, now=now)
        overdue = _overdue_tasks(session, today)
        cards = _live_cards(engine_of(session), snapshot, current, overdue, branches.ids)
        as_of = today
    recent = list(
        session.scalars(
            select(Notice)
            .order_by(col(Notice.created_at).desc(), col(Notice.id).desc())
            .limit(notices)
        )
    )
    totals = [(n, *_notice_totals(session, n.id or 0)) for n in recent]
    by_branch = {}
    if recent:
        latest = recent[0].id or 0
        counts = confirmation_counts(session=session, notice_ids=[latest])
        by_branch = {b: (latest, c, t) for (_, b), (c, t) in counts.items()}
    return Overview(today, cards, totals, by_branch, as_of)


def render_overview(ov: Overview, *, limit: int = 15, ranks: dict[int, int] | None = None) -> str:
    lines = [msg.OVERVIEW_HEADER.format(today=msg.md_w(ov.today), n=len(ov.cards))]
    lines.append(msg.OVERVIEW_EXPLAIN)
    if ov.scores_as_of is not None:
        lines.append(
            msg.OVERVIEW_SCORES_AS_OF.format(day=msg.md(ov.scores_as_of - timedelta(days=1)))
        )
    for n, c, t in ov.notices:
        lines.append(
            msg.OVERVIEW_NOTICE_TOTAL.format(
                id=n.id, text=msg.preview(n.text), confirmed=c, total=t
            )
        )
    shown = ov.cards[:limit]
    for card in shown:
        rank = (ranks or {}).get(card.branch_id)
        lines.append(render_scorecard(card, ov.by_branch.get(card.branch_id), rank))
    rest = ov.cards[limit:]
    if rest:
        owing = sum(1 for c in rest if c.owed_count)
        lines.append(msg.OVERVIEW_REST.format(n=len(rest), owing=owing))
    return "\n".join(lines)
