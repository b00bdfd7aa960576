"""Inbound messages handled once: a durable record per WeCom retry identity, with the reply.

WeCom retries a callback it got no answer to (same MsgId, or same FromUserName + CreateTime
+ Event + EventKey for an event). The record of a handled message is written **in the
handler's own transaction**, together with its reply and whatever the handler changed, by
one insert-or-ignore at the end (:meth:`Once.seal`); the router looks for it, in the same
query as the sender, before the handler runs (:meth:`Once.seen`). So a message's effects
are committed exactly once: a retry after the first committed finds the record and gets the
same reply back without running anything; two copies running at once (two workers) collide
on the record's unique key, and the loser's whole transaction is rolled back and answered
like a retry. A retry that arrives while the first is still running in the same process is
answered empty by the callback (which keeps the keys in flight), and after the reply went out
through the outbox a retry is answered empty too: the member sees the reply once.

A handler that failed leaves nothing of its work; its apology is the stored reply. Nothing
at all is written for someone who is not an active roster member.

The statements are compiled once and run on the transaction's own DB-API connection
(bot.prepared): the callback runs them for every message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot.models import InboundMessage, OutboxMessage, UTCDateTime
from bot.outbox import PENDING, Outgoing
from bot.prepared import run

Mode = Literal["passive", "outbox"]
REPLY_COLUMN_CHARS = 4000
_JSON = json.JSONEncoder(ensure_ascii=False)
"""One encoder: json.dumps with options builds a new one per call."""


@dataclass(frozen=True)
class StoredReply:
    """What the first request answered: ``passive`` (the text / button in the HTTP answer)
    or ``outbox`` (the answer went out later through the API; retries answer empty)."""

    mode: Mode
    text: str = ""
    button: str | None = None

    def dump(self) -> str:
        data: dict[str, Any] = {"mode": self.mode, "text": self.text}
        if self.button:
            data["button"] = self.button
        raw = _JSON.encode(data)
        if len(raw) > REPLY_COLUMN_CHARS:  # the passive part is ≤2048 bytes; this is a guard
            raw = _JSON.encode({"mode": self.mode, "text": self.text[:1500]})
        return raw

    @classmethod
    def load(cls, raw: str) -> StoredReply:
        data = json.loads(raw)
        return cls(
            mode=data.get("mode", "passive"), text=data.get("text", ""), button=data.get("button")
        )


class AlreadyHandled(Exception):  # noqa: N818 (an outcome, not an error)
    """The message was handled before; ``reply`` is what it got (None: nothing to repeat)."""

    def __init__(self, reply: StoredReply | None) -> None:
        super().__init__("already handled")
        self.reply = reply


def _check_statement(dialect: str) -> Any:
    return select(col(InboundMessage.reply)).where(
        col(InboundMessage.dedupe_key) == bindparam("key")
    )


def _seal_statement(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {
        "dedupe_key": bindparam("key"),
        "userid": bindparam("userid"),
        "received_at": bindparam("now", type_=UTCDateTime()),
        "reply": bindparam("reply"),
    }
    return (
        insert(InboundMessage)
        .values(values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(col(InboundMessage.id))
    )


def _outbox_insert(dialect: str) -> Any:
    # The row bot.outbox.enqueue writes, as one prebuilt insert-or-ignore: enqueue compiles a
    # multi-row INSERT on every call (about 2 ms), which the callback path cannot spend.
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = ("key", "rule", "channel", "recipient", "body")
    values: dict[str, Any] = {c: bindparam(c) for c in columns}
    values["body"] = bindparam("body", type_=OutboxMessage.__table__.c.body.type)  # type: ignore[attr-defined]
    values["due_at"] = bindparam("due_at", type_=UTCDateTime())
    values["created_at"] = bindparam("created_at", type_=UTCDateTime())
    values["status"] = PENDING
    values["attempts"] = 0
    return insert(OutboxMessage).values(values).on_conflict_do_nothing(index_elements=["key"])


Settle = Callable[[Any], tuple[StoredReply, list[Outgoing]]]
"""From the handler's reply (bot.router.Reply): what to keep, and what goes by the outbox."""


@dataclass
class Once:
    """One inbound message's exactly-once record (the router's ``once``)."""

    key: str
    userid: str
    received_at: datetime
    settle: Settle
    stored: StoredReply | None = None
    """What was kept, once sealed."""

    def seen(self, reply: str | None) -> None:
        """The message's record was found (bot.router reads it with the sender): it was
        handled before."""
        raise AlreadyHandled(StoredReply.load(reply) if reply else None)

    def seal(self, conn: Connection, reply: Any) -> None:
        stored, outgoing = self.settle(reply)
        params = {
            "key": self.key,
            "userid": self.userid,
            "now": self.received_at,
            "reply": stored.dump(),
        }
        if run(conn, _seal_statement, [params]) is None:
            # Another copy committed first (it held us at the unique key until it did).
            row = run(conn, _check_statement, [{"key": self.key}])
            raise AlreadyHandled(StoredReply.load(row[0]) if row and row[0] else None)
        if outgoing:
            run(conn, _outbox_insert, [o.row(self.received_at) for o in outgoing])
        self.stored = stored


def prune(engine: Engine, *, before: datetime) -> int:
    """Forget claims older than ``before`` (WeCom retries within seconds; a month is plenty)."""
    with Session(engine) as session:
        result = session.execute(
            delete(InboundMessage).where(col(InboundMessage.received_at) < before)
        )
        session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
