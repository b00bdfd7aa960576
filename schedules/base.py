"""What a rule returns (:class:`Reminder`), what it reads (:class:`PlanData`), and the
placement helpers every rule shares.

**The rule contract.** A rule is ``due(now, data, settings) -> list[Reminder]``: every
reminder whose *send day* is the Asia/Shanghai date of ``now``, whatever its time on that day
(earlier or later than ``now``). It reads no clock, no session and no network: ``data`` is a
snapshot loaded once per planning pass (``schedules.data``), ``settings`` the config. The
runner decides what of it goes out now (``schedules.runner``).

**Placement** (DESIGN §4.6). A reminder goes out on a workday inside the send window. A rule
computes a *nominal* instant and places it with :func:`place_before` (a reminder tied to a
deadline: a non-workday moves to the workday before, a time before the window moves to its
start, a time after it to its last minute) or :func:`place_after` (a reminder that follows an
event, such as "24 h after the notice": the next instant inside the window). ``at`` of a
:class:`Reminder` is therefore always sendable; the runner only moves it a few minutes off
:00/:30 (``bot.calendar.spread``).

**Relevance.** ``until`` is when a reminder stops making sense (the deadline, the meeting's
start, the next step of a countdown). A reminder missed while the bot was down still goes out
on start if ``until`` is ahead, else it is dropped with a log line; so is one already in the
outbox that could not be sent in time (the runner plans its day again to learn its
``until``). A rule whose enqueued reminders change what it plans next (notice nudges count
themselves on the receipt) also offers ``waiting_until(key, data, settings)`` for them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from operator import attrgetter
from typing import Any, Protocol, TypeVar, cast

from bot import messages
from bot.calendar import Window, WorkCalendar, local_date, next_send_slot
from bot.clock import SHANGHAI, local, to_utc
from bot.config import Settings
from bot.roles import SECRETARY_DUTIES

WEEKDAYS = "一二三四五六日"
CST = timezone(timedelta(hours=8))
"""Asia/Shanghai as a fixed offset (no summer time since 1991): a much cheaper conversion
where tens of thousands of instants become local dates."""
T = TypeVar("T")


@dataclass(frozen=True)
class Reminder:
    """One reminder to one or more people; ``key`` is its deterministic idempotency key.

    The outbox holds one row per recipient, keyed ``f"{key}:{userid}"``.
    """

    at: datetime
    """When it goes out (aware UTC), already placed on a workday inside the send window."""
    rule: str
    key: str
    to: list[str]
    """Recipients' WeCom userids."""
    text: str
    body: dict[str, Any] | None = None
    """A card body; None sends ``text`` as plain text (and lets it merge with others)."""
    until: datetime | None = None
    """When it stops being relevant; None means the end of its send day."""
    nudge_receipt: int | None = None
    """A notice receipt whose nudge count goes up when this reminder is first enqueued."""

    @property
    def relevant_until(self) -> datetime:
        return self.until if self.until is not None else end_of_day(local_date(self.at))


class Rule(Protocol):
    """A module of ``schedules`` that plans one kind of reminder."""

    NAME: str

    def due(self, now: datetime, data: PlanData, settings: Settings) -> list[Reminder]: ...


# The snapshot ---------------------------------------------------------------------------
# Plain slotted records, read-only by convention: a pass builds ten thousand of them, and a
# frozen dataclass costs about twice as much to construct.


@dataclass(slots=True)
class OrgInfo:
    id: int
    name: str
    kind: str
    parent_id: int | None = None
    term_started_on: date | None = None


@dataclass(slots=True)
class Person:
    id: int
    userid: str
    name: str
    branch_id: int
    group_id: int | None = None
    duties: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    category: str = "正式党员"
    joined_on: date | None = None
    full_on: date | None = None
    liaison_branch_id: int | None = None

    @property
    def is_secretary_proper(self) -> bool:
        return bool({"书记", "副书记"} & self.duties)

    @property
    def is_committee(self) -> bool:
        return bool(SECRETARY_DUTIES & self.duties)

    @property
    def is_office(self) -> bool:
        return "党委办" in self.roles

    @property
    def is_leader(self) -> bool:
        return "党委委员" in self.roles


@dataclass(slots=True)
class MeetingInfo:
    id: int
    branch_id: int
    kind: str
    starts_at: datetime
    ends_at: datetime
    group_id: int | None = None
    place: str = ""
    topic: str = ""
    status: str = "scheduled"
    created_at: datetime | None = None
    attendance: Mapping[int, str] = field(default_factory=dict)
    """member id -> invited | signed_in | leave | absent | made_up."""
    day: date = field(init=False)
    """The local date it starts on (computed once: counts compare it a lot)."""

    def __post_init__(self) -> None:
        self.day = self.starts_at.astimezone(CST).date()

    def counts_as_held(self, now: datetime) -> bool:
        """Held, or scheduled and already started (the secretary may not have closed it)."""
        return self.status == "held" or (self.status == "scheduled" and self.starts_at <= now)


@dataclass(slots=True)
class ReceiptInfo:
    id: int
    member_id: int
    nudges: int = 0
    last_nudged_at: datetime | None = None


@dataclass(slots=True)
class NoticeInfo:
    id: int
    text: str
    created_at: datetime
    deadline: datetime | None = None
    open_receipts: Sequence[ReceiptInfo] = ()
    """Receipts not yet confirmed."""
    sender_name: str | None = None


@dataclass(slots=True)
class TaskInfo:
    id: int
    name: str
    branch_id: int
    due_on: date
    kind: str = "task"
    done: bool = False


@dataclass
class PlanData:
    """Everything the rules read, loaded once per planning pass (``schedules.data``).

    Only active members and orgs are here: someone who left the roster gets nothing, someone
    who joined gets what is due from the day they appear.
    """

    cal: WorkCalendar
    orgs: dict[int, OrgInfo] = field(default_factory=dict)
    members: dict[int, Person] = field(default_factory=dict)
    meetings: list[MeetingInfo] = field(default_factory=list)
    """Meetings from the start of the earliest planned day's year on, and every future one."""
    study_minutes: dict[tuple[int, int], int] = field(default_factory=dict)
    """(member id, year) -> minutes recorded."""
    dues_paid: dict[int, set[str]] = field(default_factory=dict)
    """member id -> months paid (``YYYY-MM``), recent months only."""
    dues_since: str | None = None
    """The first month any dues were recorded: months before it are never counted unpaid."""
    dues_history: bool = True
    """``dues_paid`` reaches back far enough for the unpaid-months flags (the loader reads
    that far only when a 党费日 is planned)."""
    study_loaded: bool = True
    """``study_minutes`` was read (only when a 学时 note can go out on the days planned)."""
    notices: list[NoticeInfo] = field(default_factory=list)
    tasks: list[TaskInfo] = field(default_factory=list)
    first_day: date | None = None
    """The earliest day this snapshot can plan (set by the loader)."""
    loaded_on: date | None = None
    """The day it was loaded; a snapshot is reused only within that day."""
    memo: dict[str, Any] = field(default_factory=dict)
    """Indexes a rule derives from the snapshot once (see :meth:`derived`)."""

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        self.by_branch: dict[int, list[Person]] = {}
        self.by_group: dict[int, list[Person]] = {}
        for p in sorted(self.members.values(), key=lambda p: p.id):
            self.by_branch.setdefault(p.branch_id, []).append(p)
            if p.group_id is not None:
                self.by_group.setdefault(p.group_id, []).append(p)
        self.office = [p for p in self.by_id_order() if p.is_office]
        self.leaders = [p for p in self.by_id_order() if p.is_leader]
        self.groups_of: dict[int, list[OrgInfo]] = {}
        for o in sorted(self.orgs.values(), key=lambda o: o.id):
            if o.kind == "党小组" and o.parent_id is not None:
                self.groups_of.setdefault(o.parent_id, []).append(o)
        self._secretaries: dict[int, list[Person]] = {}

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """``build()`` once per snapshot, kept under ``name`` (a rule's index of the data)."""
        if name not in self.memo:
            self.memo[name] = build()
        return cast(T, self.memo[name])

    @property
    def meetings_by_branch(self) -> dict[int, list[MeetingInfo]]:
        """branch id -> its meetings by start (built on first use: most passes need none of
        the year's history)."""

        def build() -> dict[int, list[MeetingInfo]]:
            index: dict[int, list[MeetingInfo]] = {}
            for m in self.meetings_since(date.min):
                index.setdefault(m.branch_id, []).append(m)
            return index

        return self.derived("meetings-by-branch", build)

    def this_months_meetings(self, branch_id: int, month: date) -> list[MeetingInfo]:
        """A branch's meetings in the month of ``month`` and after (a cheap index for rules
        that look only at this month and the next)."""

        def build() -> dict[int, list[MeetingInfo]]:
            index: dict[int, list[MeetingInfo]] = {}
            for m in self.meetings_since(month.replace(day=1)):
                index.setdefault(m.branch_id, []).append(m)
            return index

        return self.derived(f"meetings-from:{month:%Y-%m}", build).get(branch_id, [])

    def meetings_since(self, day: date) -> list[MeetingInfo]:
        """Meetings starting on or after ``day``, by start (most of a year's are older)."""
        ordered = self.derived(
            "meetings-by-start", lambda: sorted(self.meetings, key=attrgetter("starts_at", "id"))
        )
        days = self.derived("meetings-days", lambda: [m.day for m in ordered])
        return ordered[bisect_left(days, day) :]

    def by_id_order(self) -> list[Person]:
        return sorted(self.members.values(), key=lambda p: p.id)

    @property
    def branches(self) -> list[OrgInfo]:
        """党支部 (and any other non-group org that holds members), by id."""
        return [
            o
            for o in sorted(self.orgs.values(), key=lambda o: o.id)
            if o.kind == "党支部" or (o.kind != "党小组" and o.id in self.by_branch)
        ]

    def secretaries(self, branch_id: int) -> list[Person]:
        """Who answers for a branch: its 书记 and 副书记; else its committee; else the office."""
        found = self._secretaries.get(branch_id)
        if found is None:
            people = self.by_branch.get(branch_id, [])
            found = [p for p in people if p.is_secretary_proper]
            found = found or [p for p in people if p.is_committee] or list(self.office)
            self._secretaries[branch_id] = found
        return found

    def committee(self, branch_id: int) -> list[Person]:
        return [p for p in self.by_branch.get(branch_id, []) if p.is_committee]


# Placement -----------------------------------------------------------------------------


def at_time(day: date, t: time) -> datetime:
    """``day`` at wall time ``t`` in Asia/Shanghai, as aware UTC."""
    return to_utc(datetime.combine(day, t, tzinfo=SHANGHAI))


def start_of_day(day: date) -> datetime:
    return at_time(day, time(0, 0))


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` (exclusive end), as aware UTC."""
    return start_of_day(day + timedelta(days=1))


def place_before(at: datetime, cal: WorkCalendar, window: Window) -> datetime:
    """A deadline-bound reminder: on a non-workday it moves to the workday before (same
    wall time); before the window it moves to the window's start; at or after its end, to
    its last minute."""
    return _place_before(at, cal, window)


@lru_cache(maxsize=65536)
def _place_before(at: datetime, cal: WorkCalendar, window: Window) -> datetime:
    # Pure and called for the same few instants by every branch and every pass: cached.
    # A calendar hashes by identity, and the runner keeps one per set of overrides.
    loc = local(at)
    day = cal.workday_on_or_before(loc.date())
    t = loc.time().replace(second=0, microsecond=0)
    if t < window[0]:
        t = window[0]
    elif t >= window[1]:
        t = (datetime.combine(day, window[1]) - timedelta(minutes=1)).time()
    return at_time(day, t)


def place_after(at: datetime, cal: WorkCalendar, window: Window) -> datetime:
    """A reminder that follows an event: the first sendable instant at or after ``at``."""
    return next_send_slot(at.replace(second=0, microsecond=0), window, cal)


def daily(day: date, settings: Settings, cal: WorkCalendar) -> datetime:
    """A day-level reminder for ``day``: ``bot.reminder_time`` on it (or the workday before)."""
    return place_before(at_time(day, settings.bot.reminder_time), cal, settings.bot.send_window)


@dataclass(frozen=True)
class Step:
    """One step of a countdown to a deadline."""

    offset: int
    """Days before the deadline (negative: after it)."""
    at: datetime
    until: datetime


def countdown(
    deadline: date, offsets: Iterable[int], settings: Settings, cal: WorkCalendar
) -> list[Step]:
    """The reminders ``offsets`` days before ``deadline``, earliest first.

    Each stays relevant until the next one is due (so a restart after a long outage sends
    only the latest), the last until the deadline's day ends. Two offsets that land on the
    same workday (a deadline just after a long holiday) keep only the nearer one.
    """
    steps: list[tuple[int, datetime]] = []
    for off in sorted(set(offsets), reverse=True):
        at = daily(deadline - timedelta(days=off), settings, cal)
        if steps and local_date(steps[-1][1]) == local_date(at):
            steps.pop()
        steps.append((off, at))
    out = []
    for i, (off, at) in enumerate(steps):
        until = steps[i + 1][1] if i + 1 < len(steps) else end_of_day(deadline)
        out.append(Step(off, at, until))
    return out


def on_day(at: datetime, now: datetime) -> bool:
    """``at`` falls on the local date of ``now`` (the rule contract's "today")."""
    return local_date(at) == local_date(now)


# Text helpers --------------------------------------------------------------------------


def userids(people: Iterable[Person]) -> list[str]:
    """Recipients' userids, each once, in order."""
    return list(dict.fromkeys(p.userid for p in people))


def names(people: Iterable[Person]) -> str:
    listed = [p.name for p in people]
    shown = "、".join(listed[: messages.REMINDER_MAX_NAMES])
    if len(listed) > messages.REMINDER_MAX_NAMES:
        shown += messages.R_NAMES_MORE.format(count=len(listed))
    return shown


def cn_date(d: date) -> str:
    return f"{d.month}月{d.day}日"


def cn_date_weekday(d: date) -> str:
    return f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）"


def cn_when(at: datetime) -> str:
    loc = local(at)
    return f"{cn_date_weekday(loc.date())}{loc:%H:%M}"


def months_between(a: date, b: date) -> int:
    """Whole months from ``a`` to ``b`` (``b`` ≥ ``a``), counting by day of month."""
    n = (b.year - a.year) * 12 + b.month - a.month
    return n - 1 if b.day < a.day else n


def add_months(d: date, months: int) -> date:
    """``d`` moved by whole months; a day missing in the target month becomes its last day."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def anniversary(d: date, year: int) -> date:
    """``d``'s anniversary in ``year`` (29 February becomes the 28th in other years)."""
    try:
        return d.replace(year=year)
    except ValueError:
        return date(year, 2, 28)
