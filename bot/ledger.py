"""The year-end 台账: one .xlsx workbook, built only from what the bot recorded.

Sheets (each with its title in row 1, its column headers frozen and repeated on every
printed page, A4 landscape fitted to the page width; see :mod:`bot.xlsx`):

- 汇总 — one row per branch: members; meetings required and held per cadence rule; the
  attendance rate; 学时 as branch aggregates (average hours and target, members at the
  pro-rata pace); the notice confirmation rate; dues and tasks on time; the compliance
  score (and the rank, only where ``[score] ranking`` is on); a 合计 row.
- 合规自查 — each branch's score part by part: weight, done / due, points, what was
  counted and what the branch still owes (:mod:`bot.scorecard`).
- 会议台账, 学习台账, 通知台账, 党费台账, 任务台账, 政治生日, 办实事 — the registers, one
  section per branch (a title row, its rows, a 小计 row; each branch starts a new printed
  page) and a 合计 row at the end.

The year runs from 1 January 00:00 to 31 December 24:00 Asia/Shanghai. The current year is
reported to "now" (what has happened so far); a past year whole, with every period closed.

Who sees 学时 per person: with ``member_study`` the 学习台账 lists every member's hours (the
CLI, whose user holds the database anyway, and a secretary's own-branch export); without it
only branch aggregates (the office's and leaders' chat export), since 学时 per person is
private to the member and their secretary (DESIGN §4.5 我的).

Memory stays flat as the data grows: every sheet streams to its own temporary file, all
sheets are filled branch by branch in one pass, and each query covers one branch or streams
its rows (``yield_per``). What is kept across branches is one small summary line per branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from bot import messages as msg
from bot.calendar import local_date
from bot.clock import local
from bot.config import Settings
from bot.models import (
    Attendance,
    Deed,
    DuesRecord,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    Task,
    TaskProgress,
)
from bot.scorecard import YearScorecard, as_of, year_scorecards, year_span
from bot.status import StudyProgress, study_progress
from bot.store import (
    ABSENT,
    INVITED,
    LEAVE,
    MADE_UP,
    SIGNED_IN,
    branch_members,
    groups_of,
    list_branches,
)
from bot.xlsx import MAX_CELL_CHARS, Book, Column, StreamSheet
from schedules.base import anniversary

Title = Callable[[str], str]
"""A sheet's printed title from its name: 机关党委 2026年会议台账（截至11月25日）."""
STREAM_ROWS = 2000
"""Rows fetched at a time from the big queries (attendance, notice receipts)."""

MEETING_COLUMNS = (
    Column("日期", 11, "date"),
    Column("时间", 12),
    Column("类型", 11),
    Column("党小组", 11),
    Column("地点", 12, "wrap"),
    Column("主题", 22, "wrap"),
    Column("第一议题", 22, "wrap"),
    Column("应到", 6, "int"),
    Column("出席", 6, "int"),
    Column("出席人员（签到）", 28, "wrap"),
    Column("请假（原因）", 22, "wrap"),
    Column("缺席", 16, "wrap"),
    Column("补学", 16, "wrap"),
)
STUDY_COLUMNS = (
    Column("姓名", 12),
    Column("职务", 14),
    Column("人员类别", 10),
    Column("学时", 8, "num"),
    Column("年度目标学时", 10, "num"),
    Column("完成比例", 9, "pct"),
    Column("按进度应达学时", 12, "num"),
)
STUDY_BRANCH_COLUMNS = (
    Column("支部", 20),
    Column("党员数", 8, "int"),
    Column("学时合计", 10, "num"),
    Column("人均学时", 10, "num"),
    Column("人均目标学时", 12, "num"),
    Column("达到进度人数", 12, "int"),
)
NOTICE_COLUMNS = (
    Column("编号", 6, "int"),
    Column("发出时间", 16, "datetime"),
    Column("内容", 34, "wrap"),
    Column("范围", 12, "wrap"),
    Column("应确认", 7, "int"),
    Column("已确认", 7, "int"),
    Column("确认率", 8, "pct"),
    Column("已确认（确认时间）", 40, "wrap"),
    Column("未确认", 24, "wrap"),
)
DUES_COLUMNS = (
    Column("姓名", 12),
    *(Column(f"{m}月", 6.5, "md") for m in range(1, 13)),
    Column("已交月数", 8, "int"),
    Column("未交月数", 8, "int"),
)
TASK_COLUMNS = (
    Column("类型", 8),
    Column("名称", 26, "wrap"),
    Column("截止日期", 11, "date"),
    Column("完成日期", 11, "date"),
    Column("情况", 11),
    Column("进展记录", 60, "wrap"),
)
BIRTHDAY_COLUMNS = (
    Column("姓名", 12),
    Column("人员类别", 10),
    Column("入党日期", 11, "date"),
    Column("转正日期", 11, "date"),
    Column("政治生日", 11, "date"),
    Column("党龄（年）", 9, "int"),
)
DEED_COLUMNS = (
    Column("日期", 11, "date"),
    Column("党员", 12),
    Column("内容", 80, "wrap"),
)
SCORE_COLUMNS = (
    Column("支部", 20),
    Column("项目", 16),
    Column("权重", 6, "num"),
    Column("完成", 8, "int"),
    Column("应完成", 8, "int"),
    Column("完成率", 8, "pct"),
    Column("得分", 7, "num"),
    Column("统计了什么", 40, "wrap"),
    Column("还欠什么", 50, "wrap"),
)
SCORE_NOTES = (
    "合规自查分按支部计算，不针对个人。满分100：各项得分 = 权重 × 完成/应完成；"
    "暂无到期要求的项目不计入，总分按计入项目的权重折算为百分制。",
    "学习时长不作为考核依据（国办2026年《政务移动互联网应用程序规范化管理办法》），默认权重为0。"
    "本表是会议、出勤、党费、任务按期情况的自查，不作排名通报之用。",
)
TASK_KINDS = {"task": "任务", "milestone": "节点"}
TASK_ON_TIME, TASK_LATE, TASK_OVERDUE, TASK_OPEN = "按期完成", "逾期完成", "逾期未完成", "未到期"


# Values -----------------------------------------------------------------------------------


def _wall(at: datetime) -> datetime:
    """An instant as Asia/Shanghai wall time without a zone (Excel has none)."""
    return local(at).replace(tzinfo=None, microsecond=0)


def _ratio(done: float, due: float) -> float | None:
    return done / due if due else None


def _per(total: float, n: int) -> float | None:
    return round(total / n, 1) if n else None


def _hours(minutes: float) -> float:
    return round(minutes / 60, 1)


def _names(names: Sequence[str]) -> str:
    text = "、".join(names)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 20] + f"…等{len(names)}人"
    return text


def _md_hm(at: datetime) -> str:
    loc = local(at)
    return f"{loc.month}-{loc.day} {loc.hour}:{loc.minute:02d}"


# One branch at a time ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    year: int
    start: datetime
    end: datetime
    at: datetime
    """The instant the figures are taken at: now, or the year's last instant."""
    closed: bool

    @property
    def today(self) -> date:
        return local_date(self.at)

    def within(self, column: Any) -> tuple[Any, ...]:
        """``column`` falls in the year and not after ``at``."""
        return (column >= self.start, column < self.end, column <= self.at)


@dataclass
class _Branch:
    """What the registers share about the branch being written (dropped after it)."""

    org: Org
    card: YearScorecard
    members: list[Member]
    progress: list[StudyProgress]
    # Filled by the registers for the summary row:
    meetings: int = 0
    receipts: int = 0
    confirmed: int = 0

    @property
    def id(self) -> int:
        return self.org.id or 0


@dataclass(frozen=True)
class _Line:
    """The summary row's figures that come from the register pass (small, one per branch)."""

    members: int
    study_minutes: int
    study_target: float
    study_on_pace: int
    receipts: int
    confirmed: int

    @classmethod
    def of(cls, b: _Branch) -> _Line:
        return cls(
            members=len(b.members),
            study_minutes=sum(p.minutes for p in b.progress),
            study_target=sum(p.target_hours for p in b.progress),
            study_on_pace=sum(not p.behind for p in b.progress),
            receipts=b.receipts,
            confirmed=b.confirmed,
        )


class _Meetings:
    """会议台账: every meeting held (started, not cancelled) with who came, who was excused
    and why, who was absent and who made it up."""

    def __init__(self, book: Book, title: Title) -> None:
        self.sheet = book.sheet("会议台账", title("会议台账"), MEETING_COLUMNS)
        self.count = self.expected = self.present = 0

    def add(self, session: Session, b: _Branch, span: _Span) -> None:
        where = (
            col(Meeting.branch_id) == b.id,
            *span.within(col(Meeting.starts_at)),
            col(Meeting.status) != "cancelled",
        )
        meetings = list(
            session.scalars(
                select(Meeting).where(*where).order_by(col(Meeting.starts_at), col(Meeting.id))
            )
        )
        groups = {
            g.id: g.name.rsplit("/", 1)[-1] for g in groups_of(session=session, branch_id=b.id)
        }
        ids = [m.id for m in meetings]
        rows = session.execute(
            select(
                col(Attendance.meeting_id),
                col(Attendance.status),
                col(Attendance.reason),
                col(Member.name),
            )
            .join(Meeting, col(Meeting.id) == col(Attendance.meeting_id))
            .join(Member, col(Member.id) == col(Attendance.member_id))
            # The ids on both sides let PostgreSQL walk the indexes instead of hashing tables.
            .where(col(Attendance.meeting_id).in_(ids), col(Meeting.id).in_(ids))
            .order_by(col(Meeting.starts_at), col(Meeting.id), col(Member.id))
            .execution_options(yield_per=STREAM_ROWS)
        )
        pending = next(rows, None)
        self.sheet.section(f"{b.org.name}（{len(meetings)}次）")
        expected = present = 0
        for m in meetings:
            people: dict[str, list[str]] = {SIGNED_IN: [], LEAVE: [], ABSENT: [], MADE_UP: []}
            while pending is not None and pending[0] == m.id:
                _, status, reason, name = pending
                status = ABSENT if status == INVITED else status  # invited and not there
                people.setdefault(status, []).append(
                    f"{name}（{reason}）" if status == LEAVE and reason else name
                )
                pending = next(rows, None)
            n = sum(len(v) for v in people.values())
            start, end = local(m.starts_at), local(m.ends_at)
            self.sheet.row(
                [
                    start.date(),
                    f"{start:%H:%M}–{end:%H:%M}",
                    m.kind,
                    groups.get(m.group_id, "") if m.group_id else "",
                    m.place,
                    m.topic,
                    m.first_topic or "",
                    n,
                    len(people[SIGNED_IN]),
                    _names(people[SIGNED_IN]),
                    _names(people[LEAVE]),
                    _names(people[ABSENT]),
                    _names(people[MADE_UP]),
                ]
            )
            expected += n
            present += len(people[SIGNED_IN])
        self.sheet.total(["小计", f"{len(meetings)}次", *[""] * 5, expected, present])
        b.meetings = len(meetings)
        self.count += len(meetings)
        self.expected += expected
        self.present += present

    def finish(self) -> None:
        self.sheet.total(["合计", f"{self.count}次", *[""] * 5, self.expected, self.present])


class _Study:
    """学习台账: each member's 学时 against their target (``member_study``), else one line
    of branch aggregates per branch."""

    def __init__(self, book: Book, title: Title, member_study: bool) -> None:
        self.member_study = member_study
        if member_study:
            self.sheet = book.sheet("学习台账", title("学习台账"), STUDY_COLUMNS)
        else:
            self.sheet = book.sheet(
                "学习台账", title("学习台账"), STUDY_BRANCH_COLUMNS, (msg.LEDGER_STUDY_PRIVATE,)
            )
        self.members = self.minutes = self.on_pace = 0
        self.target = 0.0

    def add(self, b: _Branch) -> None:
        line = _Line.of(b)
        self.members += line.members
        self.minutes += line.study_minutes
        self.target += line.study_target
        self.on_pace += line.study_on_pace
        if not self.member_study:
            self.sheet.row(self._aggregate(b.org.name, line))
            return
        self.sheet.section(f"{b.org.name}（{line.members}人）")
        for m, p in zip(b.members, b.progress, strict=True):
            self.sheet.row(
                [
                    m.name,
                    m.duties if m.duties != "党员" else "",
                    m.category,
                    _hours(p.minutes),
                    p.target_hours,
                    _ratio(p.minutes, p.target_hours * 60),
                    p.expected_hours,
                ]
            )
        self.sheet.total(
            self._subtotal("小计", line.members, line.study_minutes, line.study_target)
        )

    def _aggregate(self, name: str, line: _Line) -> list[Any]:
        n = line.members
        return [
            name,
            n,
            _hours(line.study_minutes),
            _per(line.study_minutes / 60, n),
            _per(line.study_target, n),
            line.study_on_pace,
        ]

    @staticmethod
    def _subtotal(label: str, members: int, minutes: int, target: float) -> list[Any]:
        return [
            label,
            f"{members}人",
            "",
            _hours(minutes),
            target,
            _ratio(minutes, target * 60),
        ]

    def finish(self) -> None:
        if self.member_study:
            self.sheet.total(self._subtotal("合计", self.members, self.minutes, self.target))
        else:
            line = _Line(self.members, self.minutes, self.target, self.on_pace, 0, 0)
            self.sheet.total(self._aggregate("合计", line))


class _Notices:
    """通知台账: every notice that reached the branch, who confirmed it when, who has not."""

    def __init__(self, book: Book, title: Title, session: Session, span: _Span) -> None:
        self.sheet = book.sheet("通知台账", title("通知台账"), NOTICE_COLUMNS)
        self.total = self.confirmed = 0
        # The year's notices (a few hundred at most): id → (sent, text, scope).
        self.notices = {
            int(i): (c, t, s)
            for i, c, t, s in session.execute(
                select(
                    col(Notice.id), col(Notice.created_at), col(Notice.text), col(Notice.scope)
                ).where(*span.within(col(Notice.created_at)))
            ).all()
        }

    def add(self, session: Session, b: _Branch, span: _Span) -> None:
        rows = session.execute(
            select(col(NoticeReceipt.notice_id), col(Member.name), col(NoticeReceipt.confirmed_at))
            .join(Member, col(Member.id) == col(NoticeReceipt.member_id))
            .join(Notice, col(Notice.id) == col(NoticeReceipt.notice_id))
            .where(col(Member.branch_id) == b.id, *span.within(col(Notice.created_at)))
            .order_by(col(Notice.created_at), col(Notice.id), col(Member.id))
            .execution_options(yield_per=STREAM_ROWS)
        )
        self.sheet.section(b.org.name)
        count = total = confirmed = 0
        current: int | None = None
        yes: list[str] = []
        no: list[str] = []
        for nid, name, at in chain(rows, [(None, "", None)]):  # the sentinel flushes the last
            if nid != current:
                if current is not None:
                    self._row(current, yes, no)
                    count += 1
                current, yes, no = nid, [], []
            if nid is None:
                break
            total += 1
            if at is not None and at <= span.at:
                yes.append(f"{name} {_md_hm(at)}")
                confirmed += 1
            else:
                no.append(name)
        self.sheet.total(["小计", f"{count}条", "", "", total, confirmed, _ratio(confirmed, total)])
        b.receipts, b.confirmed = total, confirmed
        self.total += total
        self.confirmed += confirmed

    def _row(self, nid: int, yes: list[str], no: list[str]) -> None:
        sent, text, scope = self.notices[nid]
        n = len(yes) + len(no)
        self.sheet.row(
            [
                nid,
                _wall(sent),
                text,
                scope,
                n,
                len(yes),
                _ratio(len(yes), n),
                _names(yes),
                _names(no),
            ]
        )

    def finish(self) -> None:
        self.sheet.total(
            ["合计", "", "", "", self.total, self.confirmed, _ratio(self.confirmed, self.total)]
        )


class _Dues:
    """党费台账: the date each month was paid; 未交 for a month due and not recorded.

    A month is due once its 党费日 has come, from the month the records begin (the
    scorecard's ``since``) and, for someone who joined this year, from the month they
    joined."""

    def __init__(self, book: Book, title: Title, dues_day: int) -> None:
        self.sheet = book.sheet("党费台账", title("党费台账"), DUES_COLUMNS)
        self.dues_day = dues_day
        self.totals = [0] * 14

    def add(self, session: Session, b: _Branch, span: _Span) -> None:
        year, today, since = span.year, span.today, b.card.card.since
        last = 12 if span.closed else today.month - (today.day < self.dues_day)
        first = 13 if since.year > year else since.month if since.year == year else 1
        paid: dict[int, dict[int, datetime]] = {}
        stmt = select(
            col(DuesRecord.member_id), col(DuesRecord.month), col(DuesRecord.paid_at)
        ).where(
            col(DuesRecord.member_id).in_([m.id for m in b.members]),
            col(DuesRecord.month).in_([f"{year}-{m:02d}" for m in range(1, 13)]),
        )
        for member_id, month, paid_at in session.execute(stmt).all():
            paid.setdefault(int(member_id), {})[int(month[5:7])] = paid_at
        self.sheet.section(b.org.name)
        sub = [0] * 14  # paid per month, then paid and unpaid member-months
        for m in b.members:
            mine = paid.get(m.id or 0, {})
            start = first
            if m.joined_on and m.joined_on.year >= year:
                start = max(start, m.joined_on.month if m.joined_on.year == year else 13)
            cells: list[Any] = []
            n_paid = n_unpaid = 0
            for month in range(1, 13):
                if month in mine:
                    cells.append(local_date(mine[month]))
                    sub[month - 1] += 1
                    n_paid += 1
                elif start <= month <= last:
                    cells.append("未交")
                    n_unpaid += 1
                else:
                    cells.append(None)
            self.sheet.row([m.name, *cells, n_paid, n_unpaid])
            sub[12] += n_paid
            sub[13] += n_unpaid
        self.sheet.total(["小计", *sub])
        self.totals = [a + x for a, x in zip(self.totals, sub, strict=True)]

    def finish(self) -> None:
        self.sheet.total(["合计", *self.totals])


def task_state(task: Task, today: date, closed: bool) -> str:
    """按期完成 / 逾期完成 / 逾期未完成 / 未到期, as the scorecard's tasks part counts them."""
    if task.done_at is not None:
        return TASK_ON_TIME if local_date(task.done_at) <= task.due_on else TASK_LATE
    late = task.due_on <= today if closed else task.due_on < today
    return TASK_OVERDUE if late else TASK_OPEN


class _Tasks:
    """任务台账: the tasks and milestones due in the year, their progress notes and completion."""

    def __init__(self, book: Book, title: Title) -> None:
        self.sheet = book.sheet("任务台账", title("任务台账"), TASK_COLUMNS)
        self.count = self.on_time = 0

    def add(self, session: Session, b: _Branch, span: _Span) -> None:
        tasks = list(
            session.scalars(
                select(Task)
                .where(
                    col(Task.branch_id) == b.id,
                    col(Task.due_on) >= date(span.year, 1, 1),
                    col(Task.due_on) <= date(span.year, 12, 31),
                )
                .order_by(col(Task.due_on), col(Task.id))
            )
        )
        notes: dict[int, list[str]] = {}
        if tasks:
            stmt = (
                select(
                    col(TaskProgress.task_id),
                    col(TaskProgress.at),
                    col(TaskProgress.note),
                    col(Member.name),
                )
                .outerjoin(Member, col(Member.id) == col(TaskProgress.member_id))
                .where(
                    col(TaskProgress.task_id).in_([t.id for t in tasks]),
                    col(TaskProgress.at) <= span.at,
                )
                .order_by(col(TaskProgress.at), col(TaskProgress.id))
            )
            for task_id, at, note, name in session.execute(stmt).all():
                who = f" {name}" if name else ""
                notes.setdefault(int(task_id), []).append(f"{msg.md(local_date(at))}{who}：{note}")
        self.sheet.section(f"{b.org.name}（{len(tasks)}项）")
        on_time = 0
        for t in tasks:
            state = task_state(t, span.today, span.closed)
            on_time += state == TASK_ON_TIME
            done = local_date(t.done_at) if t.done_at and t.done_at <= span.at else None
            self.sheet.row(
                [
                    TASK_KINDS.get(t.kind, t.kind),
                    t.name,
                    t.due_on,
                    done,
                    state,
                    "\n".join(notes.get(t.id or 0, [])),
                ]
            )
        self.sheet.total(["小计", f"{len(tasks)}项，按期完成{on_time}项"])
        self.count += len(tasks)
        self.on_time += on_time

    def finish(self) -> None:
        self.sheet.total(["合计", f"{self.count}项，按期完成{self.on_time}项"])


class _Birthdays:
    """政治生日: each member's in the year (admission or full membership, per
    ``bot.political_birthday``), in date order, with the years in the Party."""

    def __init__(self, book: Book, title: Title, which: str) -> None:
        self.sheet = book.sheet("政治生日", title("政治生日"), BIRTHDAY_COLUMNS)
        self.which = which
        self.count = 0

    def add(self, b: _Branch, year: int) -> None:
        rows = []
        for m in b.members:
            born = m.joined_on if self.which == "joined" else m.full_on
            if born is not None and born.year < year:
                rows.append((anniversary(born, year), m.id or 0, m, year - born.year))
        rows.sort(key=lambda r: (r[0], r[1]))
        self.sheet.section(f"{b.org.name}（{len(rows)}人）")
        for day, _, m, years in rows:
            self.sheet.row([m.name, m.category, m.joined_on, m.full_on, day, years])
        self.sheet.total(["小计", f"{len(rows)}人"])
        self.count += len(rows)

    def finish(self) -> None:
        self.sheet.total(["合计", f"{self.count}人"])


class _Deeds:
    """办实事: the branch's 我为群众办实事 records."""

    def __init__(self, book: Book, title: Title) -> None:
        self.sheet = book.sheet("办实事", title("我为群众办实事"), DEED_COLUMNS)
        self.count = 0

    def add(self, session: Session, b: _Branch, span: _Span) -> None:
        stmt = (
            select(col(Deed.at), col(Member.name), col(Deed.text))
            .join(Member, col(Member.id) == col(Deed.member_id))
            .where(col(Deed.branch_id) == b.id, *span.within(col(Deed.at)))
            .order_by(col(Deed.at), col(Deed.id))
        )
        rows = session.execute(stmt).all()
        self.sheet.section(f"{b.org.name}（{len(rows)}件）")
        for at, name, text in rows:
            self.sheet.row([local_date(at), name, text])
        self.sheet.total(["小计", f"{len(rows)}件"])
        self.count += len(rows)

    def finish(self) -> None:
        self.sheet.total(["合计", f"{self.count}件"])


# The summary and the scorecard sheets -------------------------------------------------------


def _rule_kinds(cards: Sequence[YearScorecard]) -> list[str]:
    kinds: list[str] = []
    for c in cards:
        for r in c.cadence:
            if r.kind not in kinds:
                kinds.append(r.kind)
    return kinds


def _summary_columns(kinds: Sequence[str], ranking: bool) -> list[Column]:
    cols = [Column("支部", 20), Column("党员数", 7, "int")]
    for k in kinds:
        cols += [Column(f"{k}\n应开", 8, "int"), Column(f"{k}\n实开", 8, "int")]
    cols += [
        Column("出勤率", 8, "pct"),
        Column("人均学时", 8, "num"),
        Column("人均目标学时", 9, "num"),
        Column("学时达到进度人数", 10, "int"),
        Column("通知确认率", 9, "pct"),
        Column("党费交纳率", 9, "pct"),
        Column("任务按期率", 9, "pct"),
        Column("合规自查分", 9, "num"),
    ]
    if ranking:
        cols.append(Column("排名", 6, "int"))
    return cols


def _summary(
    sheet: StreamSheet,
    cards: Sequence[YearScorecard],
    lines: dict[int, _Line],
    kinds: Sequence[str],
    ranking: bool,
) -> None:
    """One row per branch (roster order, or ranked order when ranking is on), then 合计."""
    sums: dict[str, list[float]] = {k: [0, 0] for k in ("attendance", "dues", "tasks", "notices")}
    rule_sums = [0] * (2 * len(kinds))
    members = minutes = on_pace = 0
    target = 0.0
    for card in cards:
        line = lines[card.branch_id]
        per_kind: dict[str, list[int]] = {}
        for r in card.cadence:
            counts = per_kind.setdefault(r.kind, [0, 0])
            counts[0] += r.required
            counts[1] += r.held
        rule_cells: list[Any] = []
        for i, k in enumerate(kinds):
            found = per_kind.get(k)
            rule_cells += found or [None, None]
            if found:
                rule_sums[2 * i] += found[0]
                rule_sums[2 * i + 1] += found[1]
        parts = {p.key: p.part for p in card.parts}
        for key in ("attendance", "dues", "tasks"):
            sums[key][0] += parts[key].done
            sums[key][1] += parts[key].due
        sums["notices"][0] += line.confirmed
        sums["notices"][1] += line.receipts
        members += line.members
        minutes += line.study_minutes
        target += line.study_target
        on_pace += line.study_on_pace
        row = [
            card.branch,
            line.members,
            *rule_cells,
            parts["attendance"].ratio,
            _per(line.study_minutes / 60, line.members),
            _per(line.study_target, line.members),
            line.study_on_pace,
            _ratio(line.confirmed, line.receipts),
            parts["dues"].ratio,
            parts["tasks"].ratio,
            card.total,
        ]
        if ranking:
            row.append(card.rank)
        sheet.row(row)
    sheet.total(
        [
            "合计",
            members,
            *rule_sums,
            _ratio(*sums["attendance"]),
            _per(minutes / 60, members),
            _per(target, members),
            on_pace,
            _ratio(*sums["notices"]),
            _ratio(*sums["dues"]),
            _ratio(*sums["tasks"]),
        ]
    )


def _score_rows(sheet: StreamSheet, card: YearScorecard) -> None:
    """合规自查: a row per part (what it counted, what is owed), then the branch's total."""
    for p in card.parts:
        part = p.part
        shown = bool(part.weight or part.due)
        sheet.row(
            [
                card.branch,
                p.label,
                part.weight,
                part.done if shown else None,
                part.due if shown else None,
                part.ratio if shown else None,
                part.points if part.weight and part.ratio is not None else None,
                p.counted,
                p.owed,
            ]
        )
    counted = sum(p.part.weight for p in card.parts if p.part.weight and p.part.ratio is not None)
    rank = msg.SCORE_RANK.format(rank=card.rank) if card.rank is not None else ""
    sheet.total([card.branch, "总分", counted, None, None, None, card.total, "", rank])


# The workbook -----------------------------------------------------------------------------


@dataclass
class LedgerResult:
    path: Path
    year: int
    closed: bool
    """The year is over (reported whole); otherwise up to the export's instant."""
    branches: int
    meetings: int
    rows: dict[str, int] = field(default_factory=dict)
    """Data rows written per sheet."""


def bureau_name(session: Session) -> str:
    root = session.scalars(
        select(Org).where(col(Org.parent_id).is_(None)).order_by(col(Org.id)).limit(1)
    ).first()
    return root.name if root else ""


def write_ledger(
    *,
    session: Session,
    settings: Settings,
    year: int,
    now: datetime,
    path: str | Path,
    branches: Sequence[Org] | None = None,
    member_study: bool = True,
) -> LedgerResult:
    """Write ``year``'s 台账 for ``branches`` (default: every branch) to ``path``.

    Raises ValueError for a year that has not begun. The file appears complete or not at
    all. Read-only on the database.
    """
    at, closed = as_of(year, now)
    span = _Span(year, *year_span(year), at, closed)
    branches = list(branches) if branches is not None else list_branches(session=session)
    cards = year_scorecards(
        session=session, settings=settings, year=year, now=now, branches=branches
    )
    card_of = {c.branch_id: c for c in cards}
    kinds = _rule_kinds(cards)
    ranking = settings.score.ranking
    bureau = bureau_name(session) + (f" {branches[0].name}" if len(branches) == 1 else "")
    until = "" if closed else f"（截至{msg.md(span.today)}）"

    def title(sheet: str) -> str:
        return f"{bureau} {year}年{sheet}{until}"

    with Book() as book:
        summary = book.sheet("汇总", title("汇总"), _summary_columns(kinds, ranking))
        scores = book.sheet("合规自查", title("合规自查"), SCORE_COLUMNS, SCORE_NOTES)
        meetings = _Meetings(book, title)
        study = _Study(book, title, member_study)
        notices = _Notices(book, title, session, span)
        dues = _Dues(book, title, settings.dues.day)
        tasks = _Tasks(book, title)
        birthdays = _Birthdays(book, title, settings.bot.political_birthday)
        deeds = _Deeds(book, title)

        lines: dict[int, _Line] = {}
        for org in branches:
            card = card_of[org.id or 0]
            members = branch_members(session=session, branch_id=org.id or 0)
            progress = study_progress(session=session, settings=settings, members=members, now=at)
            b = _Branch(org, card, members, progress)
            meetings.add(session, b, span)
            study.add(b)
            notices.add(session, b, span)
            dues.add(session, b, span)
            tasks.add(session, b, span)
            birthdays.add(b, year)
            deeds.add(session, b, span)
            _score_rows(scores, card)
            lines[b.id] = _Line.of(b)
            # Nothing else of this branch is kept; the session holds its rows only weakly.
        _summary(summary, cards, lines, kinds, ranking)
        for register in (meetings, study, notices, dues, tasks, birthdays, deeds):
            register.finish()

        target = Path(path)
        book.save(target)
    return LedgerResult(
        path=target.resolve(),
        year=year,
        closed=closed,
        branches=len(branches),
        meetings=meetings.count,
        rows={s.title: s.data_rows for s in book.sheets},
    )


# Export files (the chat command) ----------------------------------------------------------

_UNSAFE = re.compile(r"[\\/:*?\"<>|\s]+")


def export_path(settings: Settings, *, year: int, scope: str, now: datetime) -> Path:
    """Where a chat export goes: ``<export_dir>/2026年台账-第一党支部-20261127-100807.xlsx``."""
    stamp = local(now).strftime("%Y%m%d-%H%M%S")
    name = f"{year}年台账-{_UNSAFE.sub('_', scope)}-{stamp}.xlsx"
    return Path(settings.ledger.export_dir).resolve() / name


_STAMP = re.compile(r"-(\d{8}-\d{6})\.xlsx$")


def prune_exports(settings: Settings, *, now: datetime) -> int:
    """Delete exported workbooks older than ``ledger.keep_days`` (by the time in their name,
    which is the injected clock's); returns how many."""
    folder = Path(settings.ledger.export_dir)
    if not folder.is_dir():
        return 0
    cutoff = local(now - timedelta(days=settings.ledger.keep_days)).strftime("%Y%m%d-%H%M%S")
    removed = 0
    for f in folder.glob("*年台账-*.xlsx"):
        stamp = _STAMP.search(f.name)
        if stamp and stamp.group(1) < cutoff:
            f.unlink(missing_ok=True)  # another worker may have removed it first
            removed += 1
    return removed
