"""Load the :class:`~schedules.base.PlanData` snapshot: a few Core queries per planning pass.

Plain tuples rather than ORM objects (ten thousand members load in tens of milliseconds),
fetched whole (``_rows``), lists of ids sent as one parameter (``bot.db.among``), and only
what the rules can read on the days being planned:

- meetings: in full from three weeks before the first day or its month's start (follow-ups,
  this month's 主题党日) on, and every future one; older ones with only the columns a count
  needs, back to the previous quarter's start (monthly and quarterly counts, a liaison
  leader's "last quarter"), and for the kinds a rule counts over a half or a whole year
  (:func:`long_kinds`) back to 1 January too;
- attendance of the recent meetings and of this year's 谈心谈话;
- dues paid this month and next; the months before (for the 3- and 5-month flags) only when
  a 党费日 is among the days planned;
- the year's study totals only when a 学时 note can go out on the days planned;
- recent notices' open receipts, and tasks not done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, String, case, func, or_, select, type_coerce
from sqlmodel import Session, col

from bot.calendar import WorkCalendar, local_date, period_of
from bot.config import Settings
from bot.db import among, engine_of
from bot.models import (
    Attendance,
    DuesRecord,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    StudyRecord,
    Task,
)
from bot.roles import split_list
from schedules.base import (
    MeetingInfo,
    NoticeInfo,
    OrgInfo,
    Person,
    PlanData,
    ReceiptInfo,
    TaskInfo,
    add_months,
    start_of_day,
)


@dataclass
class _Cache:
    """Per engine: the parts of the snapshot that change rarely, with the fingerprint that
    tells when they did (a planning pass runs every minute; a roster import or a meeting
    recorded months late happens a few times a year)."""

    members_key: tuple[Any, ...] | None = None
    members: dict[int, Person] = field(default_factory=dict)
    history_key: tuple[Any, ...] | None = None
    history: list[MeetingInfo] = field(default_factory=list)


_CACHES: WeakKeyDictionary[Engine, _Cache] = WeakKeyDictionary()


def _cache(session: Session) -> _Cache:
    engine = engine_of(session)
    if engine not in _CACHES:
        _CACHES[engine] = _Cache()
    return _CACHES[engine]


RECENT_DAYS = 21
"""How far back follow-ups look: meetings to confirm, notices to chase. Longer than any run
of days off (国庆 with 中秋 is 8 days), plus the 48 h a notice waits."""


def load_plan_data(
    session: Session,
    settings: Settings,
    cal: WorkCalendar,
    *,
    first_day: date,
    now: datetime,
    last_day: date | None = None,
) -> PlanData:
    """The snapshot for planning the days from ``first_day`` to the date of ``now`` (or to
    ``last_day`` when forecasting further)."""
    from schedules import dues, study

    last = max(local_date(now), last_day or first_day)
    days = [first_day + timedelta(days=i) for i in range((last - first_day).days + 1)]
    dues_history = dues.history_needed(days, settings, cal)
    study_needed = study.needed(days, settings, cal)
    meetings = load_meetings(session, first_day, long_kinds(settings))
    return PlanData(
        cal=cal,
        orgs=load_orgs(session),
        members=load_members(session),
        meetings=meetings,
        study_minutes=load_study(session, first_day.year, last.year) if study_needed else {},
        study_loaded=study_needed,
        dues_paid=load_dues(session, settings, first_day, last, history=dues_history),
        dues_history=dues_history,
        dues_since=(
            session.scalar(select(func.min(col(DuesRecord.month)))) if dues_history else None
        ),
        notices=load_notices(session, first_day),
        tasks=load_tasks(session, first_day),
        first_day=first_day,
        loaded_on=local_date(now),
    )


def _run(session: Session, statement: Any, params: Any = None) -> Any:
    """Execute on the session's connection: Core execution skips the ORM's per-row
    machinery. Rows come back as plain tuples (typed loosely: ids are never None here)."""
    return session.connection().execute(statement, params)


def _rows(session: Session, statement: Any) -> list[Any]:
    """All the rows at once: one ``fetchall`` in the driver's C code instead of a Python
    ``fetchone`` call per row (tens of thousands of meetings and attendance rows)."""
    return list(_run(session, statement).all())


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _utc(value: datetime | str) -> datetime:
    """A timestamp read raw (``_raw_time``): SQLite gives its stored text, PostgreSQL an
    aware datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _raw_time(column: object) -> Any:
    # Read past the UTCDateTime type: its per-value Python hook is most of the cost of
    # reading a year of meetings; _utc does the same in one C call.
    return type_coerce(column, String)


def load_orgs(session: Session) -> dict[int, OrgInfo]:
    return {
        r.id: OrgInfo(r.id, r.name, r.kind, r.parent_id, r.term_started_on)
        for r in _rows(
            session,
            select(
                col(Org.id),
                col(Org.name),
                col(Org.kind),
                col(Org.parent_id),
                col(Org.term_started_on),
            ).where(col(Org.active)),
        )
    }


def load_members(session: Session) -> dict[int, Person]:
    """Active members, cached while the roster's fingerprint (count, newest id, newest
    ``updated_at``, active count: every import change touches one) stays the same."""
    key = tuple(
        _run(
            session,
            select(
                func.count(),
                func.max(col(Member.id)),
                func.max(_raw_time(col(Member.updated_at))),
                func.sum(case((col(Member.active), 1), else_=0)),
            ),
        ).one()
    )
    cache = _cache(session)
    if cache.members_key != key:
        cache.members, cache.members_key = _read_members(session), key
    return cache.members


def _read_members(session: Session) -> dict[int, Person]:
    # 职务 and 角色 take a handful of distinct values: split each once.
    parsed: dict[str, frozenset[str]] = {}

    def split(value: str | None) -> frozenset[str]:
        key = value or ""
        if key not in parsed:
            parsed[key] = frozenset(split_list(key))
        return parsed[key]

    return {
        r[0]: Person(
            r[0], r[1], r[2], r[3], r[4], split(r[5]), split(r[6]), r[7], r[8], r[9], r[10]
        )
        for r in _rows(
            session,
            select(
                col(Member.id),
                col(Member.userid),
                col(Member.name),
                col(Member.branch_id),
                col(Member.group_id),
                col(Member.duties),
                col(Member.roles),
                col(Member.category),
                col(Member.joined_on),
                col(Member.full_on),
                col(Member.liaison_branch_id),
            ).where(col(Member.active)),
        )
    }


def history_start(first_day: date) -> date:
    """The earliest meeting any rule counts: 1 January, or the previous quarter's start (a
    liaison leader's note in January looks back at October–December)."""
    return min(date(first_day.year, 1, 1), previous_quarter_start(first_day))


def previous_quarter_start(first_day: date) -> date:
    """The earliest meeting a monthly or quarterly count reads (a liaison leader's "last
    quarter")."""
    return period_of(period_of(first_day, "quarter")[0] - timedelta(days=1), "quarter")[0]


def long_kinds(settings: Settings) -> frozenset[str]:
    """Meeting kinds some cadence rule counts over a half or a whole year (any branch's
    override included). The others are read from the previous quarter on: in November that
    leaves out two thirds of the year's 党小组会, 支委会 and 主题党日."""
    from schedules.cadence import counted_kinds

    kinds: set[str] = set()
    for rule in settings.cadence:
        periods = {rule.period, *(o.period for o in rule.overrides.values())}
        if periods & {"half", "year"}:
            kinds |= counted_kinds(rule.kind)
    return frozenset(kinds)


def full_start(first_day: date) -> date:
    """From here on meetings are loaded whole: follow-ups of the last three weeks and this
    month's 主题党日 (its time and place go into the reminder)."""
    return min(first_day - timedelta(days=RECENT_DAYS), first_day.replace(day=1))


def load_meetings(
    session: Session, first_day: date, long_kinds: frozenset[str] | None = None
) -> list[MeetingInfo]:
    """``long_kinds`` (None: every kind) are read from :func:`history_start` on, the others
    from :func:`previous_quarter_start`."""
    whole_from = start_of_day(full_start(first_day))
    not_cancelled = col(Meeting.status) != "cancelled"
    history = _history(
        session,
        start_of_day(history_start(first_day)),
        whole_from,
        short_since=start_of_day(
            history_start(first_day) if long_kinds is None else previous_quarter_start(first_day)
        ),
        long_kinds=long_kinds or frozenset(),
    )
    rows = _run(
        session,
        select(
            col(Meeting.id),
            col(Meeting.branch_id),
            col(Meeting.group_id),
            col(Meeting.kind),
            col(Meeting.starts_at),
            col(Meeting.ends_at),
            col(Meeting.place),
            col(Meeting.topic),
            col(Meeting.status),
            col(Meeting.created_at),
        )
        .where(col(Meeting.starts_at) >= whole_from, not_cancelled)
        .order_by(col(Meeting.starts_at), col(Meeting.id)),
    ).all()
    # Attendance only where a rule reads it: the recent and coming meetings (follow-ups,
    # leave) and this year's 谈心谈话 (coverage).
    wanted = [r[0] for r in rows] + [m.id for m in history if m.kind == "谈心谈话"]
    attendance = _attendance(session, wanted)
    talks = [
        replace(m, attendance=attendance.get(m.id, {})) for m in history if m.kind == "谈心谈话"
    ]
    return (
        [m for m in history if m.kind != "谈心谈话"]
        + talks
        + [
            MeetingInfo(
                id=r[0],
                branch_id=r[1],
                group_id=r[2],
                kind=r[3],
                starts_at=r[4],
                ends_at=r[5],
                place=r[6] or "",
                topic=r[7] or "",
                status=r[8],
                created_at=r[9],
                attendance=attendance.get(r[0], {}),
            )
            for r in rows
        ]
    )


def _history(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    short_since: datetime,
    long_kinds: frozenset[str],
) -> list[MeetingInfo]:
    """Meetings before ``until`` with the columns a count needs: from ``since`` on those of
    ``long_kinds``, from ``short_since`` on the others. Cached while the window and the
    range's fingerprint (count, newest id, per-status counts) stay the same."""
    start = col(Meeting.starts_at)
    in_range = (
        start >= since,
        start < until,
        or_(start >= short_since, col(Meeting.kind).in_(sorted(long_kinds))),
    )
    key = (
        since,
        until,
        short_since,
        long_kinds,
        *_run(
            session,
            select(
                func.count(),
                func.max(col(Meeting.id)),
                func.sum(case((col(Meeting.status) == "cancelled", 1), else_=0)),
                func.sum(case((col(Meeting.status) == "held", 1), else_=0)),
            ).where(*in_range),
        ).one(),
    )
    cache = _cache(session)
    if cache.history_key == key:
        return cache.history
    history = [
        MeetingInfo(
            id=r[0],
            branch_id=r[1],
            group_id=r[2],
            kind=r[3],
            starts_at=(starts := _utc(r[4])),
            ends_at=starts,
            topic=r[5] or "",
            status=r[6],
        )
        for r in _rows(
            session,
            select(
                col(Meeting.id),
                col(Meeting.branch_id),
                col(Meeting.group_id),
                col(Meeting.kind),
                _raw_time(col(Meeting.starts_at)),
                col(Meeting.topic),
                col(Meeting.status),
            )
            .where(*in_range, col(Meeting.status) != "cancelled")
            .order_by(col(Meeting.starts_at), col(Meeting.id)),
        )
    ]
    cache.history, cache.history_key = history, key
    return history


def _attendance(session: Session, meeting_ids: Sequence[int]) -> dict[int, dict[int, str]]:
    out: dict[int, dict[int, str]] = defaultdict(dict)
    if not meeting_ids:
        return out
    meeting = col(Attendance.meeting_id)
    for meeting_id, member_id, status in _rows(
        session,
        select(meeting, col(Attendance.member_id), col(Attendance.status)).where(
            among(_dialect(session), meeting, meeting_ids)
        ),
    ):
        out[meeting_id][member_id] = status
    return out


def load_study(session: Session, first_year: int, last_year: int) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for year in range(first_year, last_year + 1):
        for member_id, minutes in _rows(
            session,
            select(col(StudyRecord.member_id), func.sum(col(StudyRecord.minutes)))
            .where(
                col(StudyRecord.at) >= start_of_day(date(year, 1, 1)),
                col(StudyRecord.at) < start_of_day(date(year + 1, 1, 1)),
            )
            .group_by(col(StudyRecord.member_id)),
        ):
            out[(member_id, year)] = int(minutes or 0)
    return out


def load_dues(
    session: Session, settings: Settings, first: date, last: date, *, history: bool
) -> dict[int, set[str]]:
    """Months paid per member: the planned months and the next, and with ``history`` the
    months a run of unpaid months can reach back to."""
    if history:
        lookback = max([*settings.dues.flag_months, settings.dues.leave_months]) + 1
        since = add_months(first.replace(day=1), -lookback)
    else:
        since = first.replace(day=1)
    until = add_months(last.replace(day=1), 1)
    paid: dict[int, set[str]] = defaultdict(set)
    for member_id, month in _rows(
        session,
        select(col(DuesRecord.member_id), col(DuesRecord.month)).where(
            col(DuesRecord.month) >= f"{since:%Y-%m}", col(DuesRecord.month) <= f"{until:%Y-%m}"
        ),
    ):
        paid[member_id].add(month)
    return dict(paid)


def load_notices(session: Session, first_day: date) -> list[NoticeInfo]:
    rows = _run(
        session,
        select(
            col(Notice.id),
            col(Notice.text),
            col(Notice.created_at),
            col(Notice.deadline),
            col(Member.name).label("sender"),
        )
        .outerjoin(Member, col(Member.id) == col(Notice.sender_id))
        .where(col(Notice.created_at) >= start_of_day(first_day - timedelta(days=RECENT_DAYS))),
    ).all()
    receipts: dict[int, list[ReceiptInfo]] = defaultdict(list)
    notice = col(NoticeReceipt.notice_id)
    open_receipts = select(
        col(NoticeReceipt.id),
        notice,
        col(NoticeReceipt.member_id),
        col(NoticeReceipt.nudges),
        col(NoticeReceipt.last_nudged_at),
    ).where(
        among(_dialect(session), notice, [n.id for n in rows]),
        col(NoticeReceipt.confirmed_at).is_(None),
    )
    for r in _rows(session, open_receipts) if rows else []:
        receipts[r.notice_id].append(
            ReceiptInfo(r.id, r.member_id, r.nudges or 0, r.last_nudged_at)
        )
    return [
        NoticeInfo(n.id, n.text, n.created_at, n.deadline, tuple(receipts.get(n.id, ())), n.sender)
        for n in rows
    ]


def load_tasks(session: Session, first_day: date) -> list[TaskInfo]:
    return [
        TaskInfo(t[0], t[1], t[2], t[3], t[4], t[5] is not None)
        for t in _rows(
            session,
            select(
                col(Task.id),
                col(Task.name),
                col(Task.branch_id),
                col(Task.due_on),
                col(Task.kind),
                col(Task.done_at),
            ).where(
                or_(
                    col(Task.done_at).is_(None),
                    col(Task.due_on) >= date(first_day.year - 1, 1, 1),
                )
            ),
        )
    ]
