"""Queries and writes the chat commands share: keyword-only functions named verb-object.

Handlers, the CLI and the reminder engine read and write through here, so that one fact has
one definition. Everything runs in the caller's session (one transaction per message) and
takes "now" from the caller; nothing here reads a clock.

How the records are kept (what other modules may rely on):

- **Meeting attendees.** At 安排 the attendees are fixed by the meeting's kind — 支委会: the
  branch committee (anyone holding a 职务 in :data:`bot.roles.SECRETARY_DUTIES`); 党小组会:
  that group's members; any other kind: the whole branch — and one :class:`Attendance` row
  with status ``invited`` is written per attendee. A reply moves it to ``signed_in`` or
  ``leave``; the secretary's 补学 to ``made_up``. After the meeting has ended an ``invited``
  row means absent (rows written as ``absent`` by imports mean the same). A member who
  joined after 安排 has no row; their 签到 or 请假 adds one, since they belong to the
  meeting's audience (:func:`is_in_audience`). The reminder engine reads
  :func:`attendees` and the same statuses.
- **Held meetings.** A meeting counts as held once it has ended and was not cancelled (or
  its status says ``held``): the secretary's 安排 is the record (alternatives.md §3.2).
- **Notices.** :func:`create_notice` writes one :class:`NoticeReceipt` per recipient at
  broadcast time; ``confirmed_at`` marks 收到; ``nudges`` counts every nudge, by the
  secretary's 催办 and by the engine alike, against ``notices.max_nudges``.
- **Tasks.** One :class:`Task` row per responsible branch (unique name, branch, due date).
- **Dues.** One :class:`DuesRecord` per member and month (``YYYY-MM``); a row means paid.
- **Concurrency.** Writes that two messages could race on (签到, 请假, 收到, 催办, 已交党费)
  are single compare-and-set statements or inserts that ignore a duplicate key, so that the
  same person tapping twice records one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from bot.db import insert_ignore
from bot.models import (
    Attendance,
    Deed,
    DuesRecord,
    Feedback,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    StudyRecord,
    Task,
    TaskProgress,
    UTCDateTime,
)
from bot.prepared import columns_of, connection, load, load_all, rows, run
from bot.roles import SECRETARY_DUTIES, is_secretary_proper, split_list

BRANCH_KINDS = ("党支部", "党总支")
"""Organisations members belong to directly (Member.branch_id)."""

INVITED, SIGNED_IN, LEAVE, ABSENT, MADE_UP = "invited", "signed_in", "leave", "absent", "made_up"
COMMITTEE_KINDS = frozenset({"支委会"})
GROUP_KINDS = frozenset({"党小组会"})


# Helpers ----------------------------------------------------------------------------------


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def is_committee(member: Member) -> bool:
    return bool(SECRETARY_DUTIES & set(split_list(member.duties)))


# Organisations and people -----------------------------------------------------------------


def list_branches(*, session: Session) -> list[Org]:
    """Active branches (党支部, 党总支), in roster order."""
    stmt = select(Org).where(col(Org.kind).in_(BRANCH_KINDS), col(Org.active)).order_by(col(Org.id))
    return list(session.scalars(stmt))


def find_branches(*, session: Session, name: str) -> list[Org]:
    """Branches called ``name``; failing that, those whose name contains it (第一支部 → 第一党支部)."""
    name = name.strip()
    if not name:
        return []
    exact = session.scalars(
        select(Org).where(col(Org.name) == name, col(Org.kind).in_(BRANCH_KINDS), col(Org.active))
    ).all()
    if exact:
        return list(exact)
    loose = name.replace("党", "")
    branches = list_branches(session=session)
    return [b for b in branches if name in b.name or loose in b.name.replace("党", "")]


def branch_members(*, session: Session, branch_id: int) -> list[Member]:
    stmt = (
        select(Member)
        .where(col(Member.branch_id) == branch_id, col(Member.active))
        .order_by(col(Member.id))
    )
    return list(session.scalars(stmt))


def branch_committee(*, session: Session, branch_id: int) -> list[Member]:
    """The branch committee: everyone with a committee 职务."""
    return [m for m in branch_members(session=session, branch_id=branch_id) if is_committee(m)]


def branch_secretaries(*, session: Session, branch_id: int) -> list[Member]:
    """Who is told of leave and gets lists: 书记 and 副书记, else the whole committee."""
    committee = branch_committee(session=session, branch_id=branch_id)
    proper = [m for m in committee if is_secretary_proper(m)]
    return proper or committee


def office_members(*, session: Session) -> list[Member]:
    stmt = select(Member).where(col(Member.active), col(Member.roles).contains("党委办"))
    return list(session.scalars(stmt.order_by(col(Member.id))))


def groups_of(*, session: Session, branch_id: int) -> list[Org]:
    stmt = (
        select(Org)
        .where(col(Org.parent_id) == branch_id, col(Org.kind) == "党小组", col(Org.active))
        .order_by(col(Org.id))
    )
    return list(session.scalars(stmt))


def find_members(*, session: Session, name: str, branch_id: int | None = None) -> list[Member]:
    """Active members called ``name`` (or with that WeCom userid), optionally in one branch."""
    cond = or_(col(Member.name) == name, col(Member.userid) == name)
    stmt = select(Member).where(cond, col(Member.active))
    if branch_id is not None:
        stmt = stmt.where(col(Member.branch_id) == branch_id)
    return list(session.scalars(stmt.order_by(col(Member.id))))


def members_in_scope(
    *, session: Session, everyone: bool, secretaries: bool, branch_ids: Iterable[int]
) -> list[Member]:
    """The active members a notice or task scope names, each once, in roster order.

    ``everyone``: the whole bureau; ``secretaries``: every branch's 书记 and 副书记;
    ``branch_ids``: everyone in those organisations and in the branches under them (a
    党总支 names its 党支部s too).
    """
    stmt = select(Member).where(col(Member.active)).order_by(col(Member.id))
    if everyone:
        return list(session.scalars(stmt))
    chosen: dict[int, Member] = {}
    ids = set(branch_ids)
    if ids:
        children = session.scalars(
            select(col(Org.id)).where(col(Org.parent_id).in_(ids), col(Org.kind).in_(BRANCH_KINDS))
        )
        ids |= {i for i in children if i is not None}
        for m in session.scalars(stmt.where(col(Member.branch_id).in_(ids))):
            chosen[m.id] = m  # type: ignore[index]
    if secretaries:
        for m in session.scalars(stmt.where(col(Member.duties).contains("书记"))):
            if is_secretary_proper(m):
                chosen[m.id] = m  # type: ignore[index]
    return sorted(chosen.values(), key=lambda m: m.id or 0)


# Meetings ---------------------------------------------------------------------------------


def meeting_audience(
    *, session: Session, branch_id: int, kind: str, group_id: int | None
) -> list[Member]:
    """Who a meeting of ``kind`` is for (see the module docstring)."""
    if kind in COMMITTEE_KINDS:
        return branch_committee(session=session, branch_id=branch_id)
    if kind in GROUP_KINDS and group_id is not None:
        stmt = select(Member).where(col(Member.group_id) == group_id, col(Member.active))
        return list(session.scalars(stmt.order_by(col(Member.id))))
    return branch_members(session=session, branch_id=branch_id)


def is_in_audience(meeting: Meeting, member: Member) -> bool:
    if member.branch_id != meeting.branch_id:
        return False
    if meeting.kind in COMMITTEE_KINDS:
        return is_committee(member)
    if meeting.kind in GROUP_KINDS and meeting.group_id is not None:
        return member.group_id == meeting.group_id
    return True


def find_duplicate_meeting(
    *, session: Session, branch_id: int, kind: str, starts_at: datetime
) -> Meeting | None:
    stmt = select(Meeting).where(
        col(Meeting.branch_id) == branch_id,
        col(Meeting.kind) == kind,
        col(Meeting.starts_at) == starts_at,
        col(Meeting.status) != "cancelled",
    )
    return session.scalars(stmt).first()


def schedule_meeting(
    *,
    session: Session,
    branch_id: int,
    kind: str,
    group_id: int | None,
    starts_at: datetime,
    ends_at: datetime,
    place: str,
    topic: str,
    created_by: Member | None,
    now: datetime,
) -> tuple[Meeting, list[Member]]:
    """Create the meeting and invite its audience; returns the meeting and the attendees."""
    meeting = Meeting(
        branch_id=branch_id,
        group_id=group_id,
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        place=place,
        topic=topic,
        status="held" if ends_at <= now else "scheduled",
        created_by_id=created_by.id if created_by else None,
        created_at=now,
    )
    session.add(meeting)
    session.flush()
    people = meeting_audience(session=session, branch_id=branch_id, kind=kind, group_id=group_id)
    rows = [
        {"meeting_id": meeting.id, "member_id": m.id, "status": INVITED, "reason": "", "at": now}
        for m in people
    ]
    insert_ignore(session, Attendance, rows, keys=("meeting_id", "member_id"))
    return meeting, people


def meeting_has_ended(meeting: Meeting, now: datetime) -> bool:
    return meeting.ends_at <= now


def open_meetings_for(
    *, session: Session, member: Member, now: datetime, before: timedelta
) -> list[Meeting]:
    """Meetings of the member's branch open for 签到 now (from ``before`` the start to the end)."""
    stmt = (
        select(Meeting)
        .where(
            col(Meeting.branch_id) == member.branch_id,
            col(Meeting.status) != "cancelled",
            col(Meeting.starts_at) <= now + before,
            col(Meeting.ends_at) >= now,
        )
        .order_by(col(Meeting.starts_at))
    )
    return [m for m in session.scalars(stmt) if is_in_audience(m, member)]


def _upcoming_statement(dialect: str) -> Any:
    return (
        select(*columns_of(Meeting))
        .where(
            col(Meeting.branch_id) == bindparam("branch_id"),
            col(Meeting.status) != "cancelled",
            col(Meeting.ends_at) > bindparam("now", type_=UTCDateTime()),
        )
        .order_by(col(Meeting.starts_at))
        .limit(bindparam("limit"))
    )


def upcoming_meetings_for(
    *, session: Session, member: Member, now: datetime, limit: int = 3
) -> list[Meeting]:
    """The member's meetings not yet ended, soonest first (我的: prepared)."""
    found = load_all(
        session,
        _upcoming_statement,
        Meeting,
        {"branch_id": member.branch_id, "now": now, "limit": limit * 4},
    )
    return [m for m in found if is_in_audience(m, member)][:limit]


def upcoming_branch_meetings(
    *, session: Session, branch_id: int, now: datetime, limit: int = 3
) -> list[Meeting]:
    stmt = (
        select(Meeting)
        .where(
            col(Meeting.branch_id) == branch_id,
            col(Meeting.status) != "cancelled",
            col(Meeting.ends_at) > now,
        )
        .order_by(col(Meeting.starts_at))
        .limit(limit)
    )
    return list(session.scalars(stmt))


def recent_branch_meetings(
    *,
    session: Session,
    branch_id: int,
    now: datetime,
    kind: str | None = None,
    on: tuple[datetime, datetime] | None = None,
    limit: int = 1,
) -> list[Meeting]:
    """Meetings of the branch that have started, latest first (optionally of one kind or day)."""
    stmt = select(Meeting).where(
        col(Meeting.branch_id) == branch_id,
        col(Meeting.status) != "cancelled",
        col(Meeting.starts_at) <= now,
    )
    if kind:
        stmt = stmt.where(col(Meeting.kind) == kind)
    if on:
        stmt = select(Meeting).where(
            col(Meeting.branch_id) == branch_id,
            col(Meeting.status) != "cancelled",
            col(Meeting.starts_at) >= on[0],
            col(Meeting.starts_at) < on[1],
        )
        if kind:
            stmt = stmt.where(col(Meeting.kind) == kind)
    return list(session.scalars(stmt.order_by(col(Meeting.starts_at).desc()).limit(limit)))


def attendance_of(*, session: Session, meeting_id: int, member_id: int) -> Attendance | None:
    stmt = select(Attendance).where(
        col(Attendance.meeting_id) == meeting_id, col(Attendance.member_id) == member_id
    )
    return session.scalars(stmt).first()


def attendees(*, session: Session, meeting_id: int) -> list[tuple[Member, Attendance]]:
    """Every attendee of the meeting with their attendance row, in roster order."""
    stmt = (
        select(Member, Attendance)
        .join(Attendance, col(Attendance.member_id) == col(Member.id))
        .where(col(Attendance.meeting_id) == meeting_id)
        .order_by(col(Member.id))
    )
    return [(m, a) for m, a in session.execute(stmt).all()]


def _set_attendance(
    *,
    session: Session,
    meeting_id: int,
    member_id: int,
    status: str,
    reason: str,
    at: datetime,
    from_statuses: Sequence[str],
) -> bool:
    """Move one attendance row to ``status`` if it is in ``from_statuses`` (or create it); True if it changed."""
    result = session.execute(
        update(Attendance)
        .where(
            col(Attendance.meeting_id) == meeting_id,
            col(Attendance.member_id) == member_id,
            col(Attendance.status).in_(from_statuses),
        )
        .values(status=status, reason=reason, at=at)
    )
    if _rowcount(result):
        return True
    row = {
        "meeting_id": meeting_id,
        "member_id": member_id,
        "status": status,
        "reason": reason,
        "at": at,
    }
    return insert_ignore(session, Attendance, [row], keys=("meeting_id", "member_id")) > 0


def sign_in(*, session: Session, meeting_id: int, member_id: int, at: datetime) -> bool:
    """Record 签到; False if the member was already signed in (nothing changes)."""
    return _set_attendance(
        session=session, meeting_id=meeting_id, member_id=member_id, status=SIGNED_IN,
        reason="", at=at, from_statuses=(INVITED, LEAVE, ABSENT),
    )  # fmt: skip


def ask_leave(
    *, session: Session, meeting_id: int, member_id: int, reason: str, at: datetime
) -> bool:
    """Record 请假 (or update its reason); False if the member has already signed in."""
    return _set_attendance(
        session=session, meeting_id=meeting_id, member_id=member_id, status=LEAVE,
        reason=reason[:200], at=at, from_statuses=(INVITED, LEAVE, ABSENT),
    )  # fmt: skip


def record_makeup(*, session: Session, meeting_id: int, member_id: int, at: datetime) -> bool:
    """Record 补学 for a member who missed the meeting; False if they had signed in or made it up."""
    return _set_attendance(
        session=session, meeting_id=meeting_id, member_id=member_id, status=MADE_UP,
        reason="", at=at, from_statuses=(INVITED, LEAVE, ABSENT),
    )  # fmt: skip


def missed_meetings(
    *, session: Session, member_id: int, now: datetime, limit: int = 5
) -> list[Meeting]:
    """Ended meetings the member missed (absent or on leave) and has not made up, latest first."""
    stmt = (
        select(Meeting)
        .join(Attendance, col(Attendance.meeting_id) == col(Meeting.id))
        .where(
            col(Attendance.member_id) == member_id,
            col(Attendance.status).in_((INVITED, ABSENT, LEAVE)),
            col(Meeting.ends_at) <= now,
            col(Meeting.status) != "cancelled",
        )
        .order_by(col(Meeting.starts_at).desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def set_first_topic(*, session: Session, meeting: Meeting, text: str) -> None:
    meeting.first_topic = text[:500]
    session.add(meeting)


# Study ------------------------------------------------------------------------------------


def _record_study_statement(dialect: str) -> Any:
    return insert(StudyRecord).values(
        member_id=bindparam("member_id"),
        minutes=bindparam("minutes"),
        topic=bindparam("topic"),
        at=bindparam("at", type_=UTCDateTime()),
    )


def record_study(
    *, session: Session, member: Member, minutes: int | None, topic: str, at: datetime
) -> None:
    """One study session (学习 is said often: a prepared INSERT, not an ORM flush)."""
    run(
        connection(session),
        _record_study_statement,
        [{"member_id": member.id, "minutes": minutes, "topic": topic[:500], "at": at}],
    )


_STUDY_MINUTES = (
    select(col(StudyRecord.member_id), func.coalesce(func.sum(StudyRecord.minutes), 0))
    .where(
        col(StudyRecord.member_id).in_(bindparam("member_ids", expanding=True)),
        col(StudyRecord.at) >= bindparam("start"),
        col(StudyRecord.at) < bindparam("end"),
    )
    .group_by(col(StudyRecord.member_id))
)
"""Built once (状态 runs it for every secretary's question)."""


def _one_member_minutes(dialect: str) -> Any:
    return select(func.coalesce(func.sum(StudyRecord.minutes), 0)).where(
        col(StudyRecord.member_id) == bindparam("member_id"),
        col(StudyRecord.at) >= bindparam("start", type_=UTCDateTime()),
        col(StudyRecord.at) < bindparam("end", type_=UTCDateTime()),
    )


def study_minutes(
    *, session: Session, member_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, int]:
    """Minutes of study recorded per member in ``[start, end)``; members with none are absent."""
    if not member_ids:
        return {}
    if len(member_ids) == 1:  # one member's own (学习, 我的): prepared
        row = run(
            connection(session),
            _one_member_minutes,
            [{"member_id": member_ids[0], "start": start, "end": end}],
        )
        return {int(member_ids[0]): int(row[0])} if row and row[0] else {}
    rows = session.execute(
        _STUDY_MINUTES, {"member_ids": list(member_ids), "start": start, "end": end}
    ).all()
    return {int(mid): int(total) for mid, total in rows}


# Notices ----------------------------------------------------------------------------------


def create_notice(
    *,
    session: Session,
    text: str,
    scope: str,
    sender: Member | None,
    recipients: Sequence[Member],
    now: datetime,
    deadline: datetime | None,
) -> Notice:
    """The notice and one receipt per recipient."""
    notice = Notice(
        text=text,
        scope=scope[:500],
        sender_id=sender.id if sender else None,
        created_at=now,
        deadline=deadline,
    )
    session.add(notice)
    session.flush()
    rows = [
        {
            "notice_id": notice.id,
            "member_id": m.id,
            "confirmed_at": None,
            "nudges": 0,
            "last_nudged_at": None,
        }
        for m in recipients
    ]
    insert_ignore(session, NoticeReceipt, rows, keys=("notice_id", "member_id"))
    return notice


def _receipt_statement(dialect: str) -> Any:
    return select(*columns_of(NoticeReceipt)).where(
        col(NoticeReceipt.notice_id) == bindparam("notice_id"),
        col(NoticeReceipt.member_id) == bindparam("member_id"),
    )


def receipt_of(*, session: Session, notice_id: int, member_id: int) -> NoticeReceipt | None:
    found = load(
        session,
        connection(session),
        _receipt_statement,
        (NoticeReceipt,),
        {"notice_id": notice_id, "member_id": member_id},
    )
    return None if found is None else found[0]


def _waiting(receipts: Any, *columns: Any) -> Any:
    """``columns`` over the notices waiting for the member's 收到 (``receipts``: the receipt
    table or an alias of it), newest first: what 收到 alone confirms first is what 我的 lists
    first."""
    return (
        select(*columns)
        .select_from(receipts)
        .join(Notice, col(Notice.id) == receipts.c.notice_id)
        .where(receipts.c.member_id == bindparam("member_id"), receipts.c.confirmed_at.is_(None))
        .order_by(col(Notice.created_at).desc(), col(Notice.id).desc())
    )


def _confirm_latest_statement(dialect: str) -> Any:
    mine = NoticeReceipt.__table__.alias("mine")  # type: ignore[attr-defined]
    latest = _waiting(mine, mine.c.id).limit(1).scalar_subquery()
    text = select(col(Notice.text)).where(col(Notice.id) == col(NoticeReceipt.notice_id))
    return (
        update(NoticeReceipt)
        .where(col(NoticeReceipt.id) == latest)
        .values(confirmed_at=bindparam("at", type_=UTCDateTime()))
        .returning(col(NoticeReceipt.notice_id), text.scalar_subquery())
    )


def confirm_latest(*, conn: Connection, member_id: int, at: datetime) -> tuple[int, str] | None:
    """收到 alone: confirm the newest notice ``member_id`` has not confirmed, and return its
    id and text (None: nothing is waiting). One prepared statement on the message's
    connection (:meth:`bot.router.Context.connection`), since a burst of 收到 follows every
    notice: choosing and confirming cannot be split by another tap. A receipt some session
    holds is not updated; code that holds receipts uses :func:`confirm_notice`."""
    row = run(conn, _confirm_latest_statement, [{"member_id": member_id, "at": at}])
    return None if row is None else (int(row[0]), str(row[1]))


def _unconfirmed_statement(dialect: str) -> Any:
    receipts = NoticeReceipt.__table__  # type: ignore[attr-defined]
    return _waiting(receipts, *columns_of(Notice)).limit(bindparam("limit"))


def unconfirmed_notices(*, session: Session, member_id: int, limit: int = 5) -> list[Notice]:
    """The member's newest notices not yet confirmed (我的: prepared)."""
    return load_all(
        session, _unconfirmed_statement, Notice, {"member_id": member_id, "limit": limit}
    )


def _confirm_statement(dialect: str) -> Any:
    return (
        update(NoticeReceipt)
        .where(
            col(NoticeReceipt.notice_id) == bindparam("notice_id"),
            col(NoticeReceipt.member_id) == bindparam("member_id"),
            col(NoticeReceipt.confirmed_at).is_(None),
        )
        .values(confirmed_at=bindparam("at", type_=UTCDateTime()))
    )


def confirm_notice(*, session: Session, notice_id: int, member_id: int, at: datetime) -> bool:
    """Record 收到; False if it was already confirmed (or the notice was not sent to them).
    A prepared UPDATE (a burst of 收到 follows every notice); a receipt the session holds is
    brought up to date, as the ORM's own UPDATE would."""
    changed = run(
        connection(session),
        _confirm_statement,
        [{"notice_id": notice_id, "member_id": member_id, "at": at}],
    )
    if not changed:
        return False
    for obj in list(session.identity_map.values()):
        if (
            isinstance(obj, NoticeReceipt)
            and (obj.notice_id, obj.member_id) == (notice_id, member_id)
            and obj.confirmed_at is None
        ):
            set_committed_value(obj, "confirmed_at", at)
    return True


def latest_notice_for_branch(*, session: Session, branch_id: int) -> Notice | None:
    """The most recent notice sent to anyone in the branch."""
    stmt = (
        select(Notice)
        .join(NoticeReceipt, col(NoticeReceipt.notice_id) == col(Notice.id))
        .join(Member, col(Member.id) == col(NoticeReceipt.member_id))
        .where(col(Member.branch_id) == branch_id)
        .order_by(col(Notice.created_at).desc(), col(Notice.id).desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def latest_notice(*, session: Session) -> Notice | None:
    stmt = select(Notice).order_by(col(Notice.created_at).desc(), col(Notice.id).desc()).limit(1)
    return session.scalars(stmt).first()


def notice_receipts(
    *, session: Session, notice_id: int, branch_id: int | None = None
) -> list[tuple[Member, NoticeReceipt]]:
    stmt = (
        select(Member, NoticeReceipt)
        .join(NoticeReceipt, col(NoticeReceipt.member_id) == col(Member.id))
        .where(col(NoticeReceipt.notice_id) == notice_id)
        .order_by(col(Member.id))
    )
    if branch_id is not None:
        # Driven from the branch's few dozen members (one (notice, member) probe each), not
        # from a bureau-wide notice's ten thousand receipts.
        members = select(col(Member.id)).where(col(Member.branch_id) == branch_id)
        stmt = stmt.where(
            col(Member.branch_id) == branch_id, col(NoticeReceipt.member_id).in_(members)
        )
    return [(m, r) for m, r in session.execute(stmt).all()]


def confirmation_counts(
    *, session: Session, notice_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[int, int]]:
    """``{(notice_id, branch_id): (confirmed, total)}`` for the notices."""
    if not notice_ids:
        return {}
    stmt = (
        select(
            col(NoticeReceipt.notice_id),
            col(Member.branch_id),
            func.count(col(NoticeReceipt.confirmed_at)),
            func.count(),
        )
        .join(Member, col(Member.id) == col(NoticeReceipt.member_id))
        .where(col(NoticeReceipt.notice_id).in_(notice_ids))
        .group_by(col(NoticeReceipt.notice_id), col(Member.branch_id))
    )
    return {(int(n), int(b)): (int(c), int(t)) for n, b, c, t in session.execute(stmt).all()}


def count_nudges(
    *, session: Session, notice_id: int, member_ids: Sequence[int], at: datetime, cap: int
) -> dict[int, int]:
    """Count one nudge for each member still unconfirmed and under ``cap``: ``{member_id: nudge number}``.

    One UPDATE whose condition is checked row by row as it writes (PostgreSQL re-checks a row
    a concurrent writer changed), so a nudge raced by the engine or a second 催办 never passes
    the cap.
    """
    if not member_ids:
        return {}
    result = session.execute(
        update(NoticeReceipt)
        .where(
            col(NoticeReceipt.notice_id) == notice_id,
            col(NoticeReceipt.member_id).in_(member_ids),
            col(NoticeReceipt.confirmed_at).is_(None),
            col(NoticeReceipt.nudges) < cap,
        )
        .values(nudges=col(NoticeReceipt.nudges) + 1, last_nudged_at=at)
        .returning(col(NoticeReceipt.member_id), col(NoticeReceipt.nudges))
    )
    return {int(member_id): int(nudges) for member_id, nudges in result.all()}


# Dues -------------------------------------------------------------------------------------


def record_dues(
    *, session: Session, member: Member, months: Sequence[str], at: datetime, recorded_by: Member
) -> list[str]:
    """Mark the months paid; returns the months that were new (the rest were already recorded)."""
    rows = [
        {"member_id": member.id, "month": m, "paid_at": at, "recorded_by_id": recorded_by.id}
        for m in months
    ]
    if not rows:
        return []
    before = set(paid_months(session=session, member_id=member.id or 0, months=months))
    insert_ignore(session, DuesRecord, rows, keys=("member_id", "month"))
    return [m for m in months if m not in before]


def remove_dues(*, session: Session, member: Member, months: Sequence[str]) -> list[str]:
    """Undo a dues record (the organiser's correction); returns the months removed."""
    rows = list(
        session.scalars(
            select(DuesRecord).where(
                col(DuesRecord.member_id) == member.id, col(DuesRecord.month).in_(months)
            )
        )
    )
    for row in rows:
        session.delete(row)
    session.flush()
    return sorted(r.month for r in rows)


def _paid_in_year_statement(dialect: str) -> Any:
    return select(col(DuesRecord.month)).where(
        col(DuesRecord.member_id) == bindparam("member_id"),
        col(DuesRecord.month).like(bindparam("prefix")),
    )


def paid_months(
    *,
    session: Session,
    member_id: int,
    months: Sequence[str] | None = None,
    year: int | None = None,
) -> list[str]:
    if months is None and year is not None:  # 我的: one member's year, prepared
        found = rows(
            connection(session),
            _paid_in_year_statement,
            {"member_id": member_id, "prefix": f"{year}-%"},
        )
        return sorted(str(r[0]) for r in found)
    stmt = select(col(DuesRecord.month)).where(col(DuesRecord.member_id) == member_id)
    if months is not None:
        stmt = stmt.where(col(DuesRecord.month).in_(months))
    if year is not None:
        stmt = stmt.where(col(DuesRecord.month).startswith(f"{year}-"))
    return sorted(session.scalars(stmt))


def unpaid_members(*, session: Session, branch_id: int, month: str) -> list[Member]:
    # NOT EXISTS probes the (member_id, month) unique index per member: a branch costs a few
    # dozen lookups however many dues records the bureau holds.
    paid = (
        select(col(DuesRecord.id))
        .where(col(DuesRecord.member_id) == col(Member.id), col(DuesRecord.month) == month)
        .exists()
    )
    stmt = (
        select(Member)
        .where(col(Member.branch_id) == branch_id, col(Member.active), ~paid)
        .order_by(col(Member.id))
    )
    return list(session.scalars(stmt))


# Tasks ------------------------------------------------------------------------------------


def create_tasks(
    *,
    session: Session,
    name: str,
    due_on: date,
    branch_ids: Sequence[int],
    created_by: Member | None,
    now: datetime,
) -> list[Task]:
    """One task per branch (an existing identical task is kept); returns the branches' tasks."""
    rows = [
        {
            "name": name, "branch_id": b, "due_on": due_on, "kind": "task",
            "created_by_id": created_by.id if created_by else None, "created_at": now, "done_at": None,
        }
        for b in branch_ids
    ]  # fmt: skip
    insert_ignore(session, Task, rows, keys=("name", "branch_id", "due_on"))
    stmt = select(Task).where(
        col(Task.name) == name, col(Task.due_on) == due_on, col(Task.branch_id).in_(branch_ids)
    )
    return list(session.scalars(stmt.order_by(col(Task.branch_id))))


def open_tasks(*, session: Session, branch_id: int) -> list[Task]:
    stmt = (
        select(Task)
        .where(col(Task.branch_id) == branch_id, col(Task.done_at).is_(None))
        .order_by(col(Task.due_on), col(Task.id))
    )
    return list(session.scalars(stmt))


def branch_tasks(*, session: Session, branch_id: int) -> list[Task]:
    stmt = (
        select(Task)
        .where(col(Task.branch_id) == branch_id)
        .order_by(col(Task.due_on), col(Task.id))
    )
    return list(session.scalars(stmt))


def record_progress(
    *, session: Session, task: Task, member: Member, note: str, done: bool, at: datetime
) -> TaskProgress:
    row = TaskProgress(task_id=task.id, member_id=member.id, note=note[:1000], done=done, at=at)  # type: ignore[arg-type]
    session.add(row)
    if done and task.done_at is None:
        task.done_at = at
        session.add(task)
    session.flush()
    return row


# Feedback and deeds ------------------------------------------------------------------------


def record_feedback(
    *, session: Session, member: Member, kind: str, text: str, at: datetime
) -> Feedback:
    row = Feedback(kind=kind, member_id=member.id, text=text[:2000], at=at)  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


def acknowledge_feedback(*, session: Session, feedback_id: int, at: datetime) -> bool:
    """Mark a 报告 read by the office; False if it already was."""
    result = session.execute(
        update(Feedback)
        .where(col(Feedback.id) == feedback_id, col(Feedback.acknowledged_at).is_(None))
        .values(acknowledged_at=at)
    )
    return _rowcount(result) > 0


def record_deed(*, session: Session, member: Member, text: str, at: datetime) -> Deed:
    row = Deed(member_id=member.id, branch_id=member.branch_id, text=text[:2000], at=at)  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


# Attendance counts (for 我的 and the scorecard) ---------------------------------------------


def _attendance_counts_statement(dialect: str) -> Any:
    return (
        select(col(Attendance.status), func.count())
        .join(Meeting, col(Meeting.id) == col(Attendance.meeting_id))
        .where(
            col(Attendance.member_id) == bindparam("member_id"),
            col(Meeting.starts_at) >= bindparam("start", type_=UTCDateTime()),
            col(Meeting.ends_at) <= bindparam("now", type_=UTCDateTime()),
            col(Meeting.status) != "cancelled",
        )
        .group_by(col(Attendance.status))
    )


def member_attendance_counts(
    *, session: Session, member_id: int, start: datetime, now: datetime
) -> dict[str, int]:
    """``{status: count}`` over the member's meetings that ended in ``[start, now]``.

    ``invited`` rows of ended meetings are reported as ``absent``.
    """
    counts: dict[str, int] = {}
    found = rows(
        connection(session),
        _attendance_counts_statement,
        {"member_id": member_id, "start": start, "now": now},
    )
    for status, n in found:
        key = ABSENT if status == INVITED else str(status)
        counts[key] = counts.get(key, 0) + int(n)
    return counts
