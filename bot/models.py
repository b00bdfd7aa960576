"""Storage tables (SQLModel). Times are stored as UTC; dates are calendar dates in Asia/Shanghai.

Every schema change is an Alembic revision in ``bot/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_now() -> datetime:
    # Only a column default; every code path that matters passes the injected clock's time.
    return datetime.now(UTC)


def UTCField(*, nullable: bool = False, index: bool = False, default: Any = None) -> Any:  # noqa: N802
    kwargs: dict[str, Any] = {}
    if default is not None:
        kwargs["default_factory"] = default
    elif nullable:
        kwargs["default"] = None
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


class Org(SQLModel, table=True):
    """A node of the organisation tree: 党委 / 党总支 / 党支部 / 党小组."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    kind: str = Field(max_length=10)
    parent_id: int | None = Field(default=None, foreign_key="org.id")
    term_started_on: date | None = None
    """换届日期: the date the current committee was elected."""
    robot_key: str | None = Field(default=None, max_length=200)
    active: bool = True


class Member(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    userid: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(index=True, max_length=50)
    branch_id: int = Field(foreign_key="org.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="org.id")
    duties: str = Field(default="", max_length=100)
    """职务, joined by 、 (书记、组织委员 …)."""
    roles: str = Field(default="", max_length=50)
    """Bureau-level roles, joined by 、 (党委办, 党委委员)."""
    category: str = Field(default="正式党员", max_length=10)
    joined_on: date | None = None
    full_on: date | None = None
    phone: str | None = Field(default=None, max_length=20, repr=False)
    """Never logged or printed (repr=False keeps it out of accidental log lines)."""
    liaison_branch_id: int | None = Field(default=None, foreign_key="org.id")
    active: bool = Field(default=True, index=True)
    updated_at: datetime = UTCField(default=_utc_now)


class Meeting(SQLModel, table=True):
    __table_args__ = (
        Index("ix_meeting_branch_start", "branch_id", "starts_at"),
        # Bureau-wide counts of one kind in a period (cadence in 总览, the reminder engine).
        Index("ix_meeting_kind_start", "kind", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="org.id")
    group_id: int | None = Field(default=None, foreign_key="org.id")
    kind: str = Field(max_length=20)
    starts_at: datetime = UTCField()
    ends_at: datetime = UTCField()
    place: str = Field(default="", max_length=100)
    topic: str = Field(default="", max_length=500)
    first_topic: str | None = Field(default=None, max_length=500)
    """第一议题: what the meeting studied first."""
    status: str = Field(default="scheduled", max_length=12)
    """scheduled | held | cancelled."""
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = UTCField(default=_utc_now)


class Attendance(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("meeting_id", "member_id"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    status: str = Field(max_length=12)
    """signed_in | leave | absent | made_up."""
    reason: str = Field(default="", max_length=200)
    at: datetime = UTCField()


class StudyRecord(SQLModel, table=True):
    __table_args__ = (Index("ix_study_member_at", "member_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id")
    minutes: int | None = None
    topic: str = Field(default="", max_length=500)
    at: datetime = UTCField()


class Notice(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(max_length=4000)
    scope: str = Field(max_length=500)
    sender_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = UTCField()
    deadline: datetime | None = UTCField(nullable=True)


class NoticeReceipt(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("notice_id", "member_id"),)

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    confirmed_at: datetime | None = UTCField(nullable=True)
    nudges: int = 0
    last_nudged_at: datetime | None = UTCField(nullable=True)


class Task(SQLModel, table=True):
    """A task or a campaign milestone, one row per responsible branch."""

    __table_args__ = (UniqueConstraint("name", "branch_id", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    branch_id: int = Field(foreign_key="org.id", index=True)
    due_on: date
    kind: str = Field(default="task", max_length=10)
    """task | milestone."""
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = UTCField(default=_utc_now)
    done_at: datetime | None = UTCField(nullable=True)


class TaskProgress(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    note: str = Field(max_length=1000)
    done: bool = False
    at: datetime = UTCField()


class DuesRecord(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("member_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    month: str = Field(max_length=7)
    """YYYY-MM."""
    paid_at: datetime = UTCField()
    recorded_by_id: int | None = Field(default=None, foreign_key="member.id")


class Feedback(SQLModel, table=True):
    """意见 (complaints and suggestions) and 报告 (请示报告) passed to the office."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="意见", max_length=10)
    member_id: int = Field(foreign_key="member.id")
    text: str = Field(max_length=2000)
    at: datetime = UTCField()
    acknowledged_at: datetime | None = UTCField(nullable=True)


class Deed(SQLModel, table=True):
    """我为群众办实事: one deed recorded for the branch ledger."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id")
    branch_id: int = Field(foreign_key="org.id", index=True)
    text: str = Field(max_length=2000)
    at: datetime = UTCField()


class OutboxMessage(SQLModel, table=True):
    """One message to one recipient. The unique key makes enqueueing idempotent."""

    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=300)
    rule: str = Field(default="", max_length=50)
    channel: str = Field(max_length=20)
    """wecom (app message to a member), robot (branch group robot), console."""
    recipient: str = Field(max_length=100)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """{"msgtype": "text", "text": "..."} or a card / markdown / file payload."""
    due_at: datetime = UTCField()
    status: str = Field(default="pending", max_length=10)
    """pending | claimed | sent | failed."""
    attempts: int = 0
    claimed_until: datetime | None = UTCField(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = UTCField()
    sent_at: datetime | None = UTCField(nullable=True)


class InboundMessage(SQLModel, table=True):
    """Every inbound message once, by its dedupe key, with the reply it got."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=200)
    userid: str = Field(max_length=64)
    received_at: datetime = UTCField()
    reply: str | None = Field(default=None, max_length=4000)


class AppState(SQLModel, table=True):
    """Small shared values: the WeCom access token, the scheduler lease."""

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", max_length=2000)
    holder: str | None = Field(default=None, max_length=64)
    expires_at: datetime | None = UTCField(nullable=True)
