"""Talking to the bot in tests: one call per message through the real router, and the
outbox rows it queued."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from bot.clock import SHANGHAI, FixedClock
from bot.config import Settings
from bot.models import Meeting, Member, Org, OutboxMessage
from bot.router import Inbound, Reply, Router
from bot.store import schedule_meeting


class Chat:
    """``chat(member, "签到")`` → the reply text; ``chat.reply`` keeps the last :class:`Reply`."""

    def __init__(self, engine: Engine, clock: FixedClock, settings: Settings) -> None:
        self.router = Router(engine=engine, clock=clock, settings=settings)
        self.clock = clock
        self.reply: Reply | None = None

    def send(self, who: Member | str, text: str = "", *, key: str | None = None) -> Reply:
        userid = who if isinstance(who, str) else who.userid
        inbound = Inbound(userid=userid, text=text, channel="wecom", event_key=key)
        self.reply = asyncio.run(self.router.handle(inbound))
        return self.reply

    def __call__(self, who: Member | str, text: str = "", *, key: str | None = None) -> str:
        return self.send(who, text, key=key).text

    def click(self, who: Member | str, key: str) -> Reply:
        """A card button: the EventKey is routed as text."""
        return self.send(who, "", key=key)


def shanghai(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def fresh(session: Session) -> Session:
    """End the test session's read snapshot (WAL) and forget loaded rows, to see what the
    bot's own transactions wrote."""
    session.rollback()
    session.expire_all()
    return session


def outbox(session: Session, prefix: str = "") -> list[OutboxMessage]:
    """Outbox rows whose key starts with ``prefix``, in insertion order (fresh snapshot)."""
    fresh(session)
    stmt = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if prefix:
        stmt = stmt.where(col(OutboxMessage.key).startswith(prefix))
    return list(session.scalars(stmt))


def recipients(rows: list[OutboxMessage]) -> set[str]:
    return {r.recipient for r in rows}


def body_text(row: OutboxMessage) -> str:
    body: dict[str, Any] = row.body
    return str(body.get("text") or "")


def add_meeting(
    session: Session,
    branch: Org,
    kind: str,
    starts: datetime,
    *,
    minutes: int = 120,
    group: Org | None = None,
    now: datetime,
    creator: Member | None = None,
    **kw: Any,
) -> Meeting:
    """A meeting with its attendees invited, committed, as 安排 would make it."""
    meeting, _ = schedule_meeting(
        session=session,
        branch_id=branch.id or 0,
        kind=kind,
        group_id=group.id if group else None,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
        place=kw.get("place", "三楼会议室"),
        topic=kw.get("topic", ""),
        created_by=creator,
        now=now,
    )
    session.commit()
    return meeting


def mofan(cfg: Path, *args: str, input: str | None = None) -> Any:
    """Run ``mofan --config CFG ARGS…`` in-process and return typer's result."""
    from typer.testing import CliRunner

    from bot.cli import app

    return CliRunner().invoke(app, ["--config", str(cfg), *args], input=input)
