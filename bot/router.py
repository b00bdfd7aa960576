"""The router: who is speaking, what they asked, which handler answers.

Handlers live in ``handlers/`` and each exposes ``COMMANDS``: a tuple of :class:`Command`
(keywords, roles, usage line, ``async handle(msg, ctx)``). ``handlers.HANDLERS`` orders the
modules; order is priority, help is last. Matching is a pure function of the text.

The router gives every handler a :class:`Context`: the message's one transaction (its
connection, and an ORM session on it made on first use), the clock, the settings, the sender
as a ``Member`` with roles and scope, and ``reply`` / ``send`` (which goes through the
outbox).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import ModuleType
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy import text as sql
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import Session, col

from bot import messages
from bot.clock import Clock
from bot.config import Settings
from bot.inbound import AlreadyHandled
from bot.models import InboundMessage, Member, Org
from bot.outbox import Outgoing, enqueue, text_body
from bot.prepared import adopt, columns_of, read
from bot.roles import ROLE_LABELS, Role, roles_of
from bot.text import normalize

log = logging.getLogger("mofan.router")


@dataclass(frozen=True)
class Inbound:
    """One message from a person, whatever channel it came by."""

    userid: str
    text: str
    channel: str = "console"
    msg_id: str | None = None
    event_key: str | None = None
    """A menu click or a card button's key (签到:12, 收到:5 …)."""
    task_id: str | None = None
    response_code: str | None = None

    @property
    def normalized(self) -> str:
        return normalize(self.text)


@dataclass(frozen=True)
class Request:
    """What a handler receives: the inbound message and the words after the keyword."""

    inbound: Inbound
    keyword: str
    args: str
    """Normalised text after the keyword, stripped."""


Handle = Callable[[Request, "Context"], Awaitable[None]]


@dataclass(frozen=True, eq=False)
class Command:
    """One command of the table. Compared and hashed by identity: each is defined once, and
    tables of them are cache keys (help is cached per role set and table)."""

    name: str
    keywords: tuple[str, ...]
    roles: frozenset[Role]
    usage: str
    handle: Handle
    exact: bool = False
    """Match only the keyword alone (收到 vs 收到通知…)."""
    quick: bool = False
    """Bounded work on one person's or one item's rows (a few ms): the callback may run it on
    its event loop instead of handing it to a handler thread (see bot.callback)."""

    def match(self, text: str) -> str | None:
        """The keyword that ``text`` starts with, or None. Longest keyword wins."""
        if self.exact:
            return text if text in self.keywords else None
        if not text.startswith(_initials(self.keywords)):
            return None
        for kw in _longest_first(self.keywords):
            if text.startswith(kw):
                return kw
        return None


@cache
def _longest_first(keywords: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(keywords, key=len, reverse=True))


@cache
def _initials(keywords: tuple[str, ...]) -> tuple[str, ...]:
    """First characters of the keywords: most texts are ruled out by one ``startswith``."""
    return tuple({kw[:1] for kw in keywords})


@dataclass
class Context:
    conn: Connection
    """The message's transaction: prepared statements (bot.prepared) run on it."""
    clock: Clock
    settings: Settings
    sender: Member
    roles: frozenset[Role]
    branch: Org
    channel: str = "console"
    replies: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    """Channel-specific reply parts (a card update) that handlers may set."""
    commands: Sequence[Command] = ()
    """The router's command table (what 帮助 lists)."""
    _session: Session | None = field(default=None, init=False, repr=False)

    @property
    def session(self) -> Session:
        """The ORM session on the message's transaction, made on first use (a handler that
        needs none, like 帮助, is spared its cost); the sender and branch are its rows."""
        if self._session is None:
            self._session = Session(
                self.conn, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
            adopt(self._session, (self.sender, self.branch))
        return self._session

    def flush(self) -> None:
        """Write what the handler changed through the ORM (the sender's row included) into
        the transaction."""
        if self._session is None and (
            instance_state(self.sender).modified or instance_state(self.branch).modified
        ):
            self.session  # noqa: B018 (adopts the changed rows)
        if self._session is not None:
            self._session.flush()

    def connection(self) -> Connection:
        """The transaction's connection for prepared statements (bot.prepared), with what the
        handler changed through the session written first."""
        self.flush()
        return self.conn

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def reply(self, text: str) -> None:
        self.replies.append(text)

    def has(self, role: Role) -> bool:
        return role in self.roles

    def send(
        self,
        recipients: Sequence[Member],
        text: str | None = None,
        *,
        key: str,
        body: dict[str, Any] | None = None,
        rule: str = "chat",
        due_at: datetime | None = None,
    ) -> int:
        """Queue a message to each recipient through the outbox (``key`` is suffixed per person)."""
        payload = body or text_body(text or "")
        items = [
            Outgoing(
                key=f"{key}:{m.userid}",
                recipient=m.userid,
                body=payload,
                due_at=due_at or self.now,
                channel="wecom",
                rule=rule,
            )
            for m in recipients
        ]
        return enqueue(self.session, items, now=self.now)


@dataclass(frozen=True)
class Reply:
    text: str
    extras: dict[str, Any] = field(default_factory=dict)
    known: bool = True
    """False when the sender is not an active roster member (nothing was run or written)."""


class Once(Protocol):
    """Exactly-once for one inbound message, inside the handler's own transaction (the
    callback's dedupe, bot.inbound.Once). The message's record under ``key`` is read with
    the sender (one query) and, if there is one, given to ``seen`` before the handler runs;
    ``seal`` runs after the handler, before the commit. Either raises
    :class:`bot.inbound.AlreadyHandled` when the message was handled before, and the router
    then rolls everything back."""

    key: str

    def seen(self, reply: str | None) -> None: ...

    def seal(self, conn: Connection, reply: Reply) -> None: ...


class Busy(Exception):
    """A run with ``retry=False`` met a lock held by another writer; nothing was written."""


def commands(modules: Sequence[ModuleType] | None = None) -> list[Command]:
    if modules is None:
        from handlers import HANDLERS

        modules = HANDLERS
    return [c for mod in modules for c in mod.COMMANDS]


def find_command(
    text: str, roles: frozenset[Role], table: Sequence[Command]
) -> tuple[Command | None, str | None, Command | None]:
    """(command the sender may use, its keyword, a matching command they may not use)."""
    forbidden = None
    for cmd in table:
        kw = cmd.match(text)
        if kw is None:
            continue
        if cmd.roles & roles:
            return cmd, kw, None
        forbidden = forbidden or cmd
    return None, None, forbidden


def is_quick(text: str, table: Sequence[Command]) -> bool:
    """Whether every command ``text`` could reach (for any role) is quick; text that reaches
    none gets the help text, which is quick too."""
    return all(cmd.quick for cmd in table if cmd.match(text) is not None)


def who_may(cmd: Command) -> str:
    return "、".join(ROLE_LABELS[r] for r in Role if r in cmd.roles)


def usage_for(roles: frozenset[Role], table: Sequence[Command] | None = None) -> list[str]:
    """The usage lines of the commands a person with ``roles`` may use, in priority order."""
    seen: list[str] = []
    for cmd in table if table is not None else commands():
        if cmd.roles & roles and cmd.usage and cmd.usage not in seen:
            seen.append(cmd.usage)
    return seen


def _sender_statement(dialect: str) -> Any:
    return (
        select(*columns_of(Member, Org), col(InboundMessage.id), col(InboundMessage.reply))
        .join(Org, col(Org.id) == col(Member.branch_id))
        .outerjoin(InboundMessage, col(InboundMessage.dedupe_key) == bindparam("key"))
        .where(col(Member.userid) == bindparam("userid"))
    )


@dataclass(frozen=True)
class Sender:
    member: Member
    branch: Org
    handled: bool
    """The message under the given dedupe key was handled before (its record exists)."""
    reply: str | None
    """That record's stored reply."""


def read_sender(conn: Connection, userid: str, key: str | None = None) -> Sender | None:
    """The member, their branch and the record of the message under ``key`` (if any) in one
    prepared query: this runs for every message, and the prepared statement costs a fifth of
    the ORM select's Python (on PostgreSQL each round trip saved counts as much). The rows
    belong to no session yet: the message's session, if a handler uses one, adopts them
    (:attr:`Context.session`)."""
    found = read(conn, _sender_statement, (Member, Org), {"userid": userid, "key": key})
    if found is None:
        return None
    member, branch, record_id, reply = found
    return Sender(member, branch, record_id is not None, reply)


ATTEMPTS = 5
"""Runs of one message's transaction before a lost write race is reported as an error."""
RETRY_DELAY = 0.01
"""Seconds before the second run (growing after that; a few tenths at most in all)."""


class _LostRace(Exception):
    pass


def lost_race(exc: BaseException) -> bool:
    """The transaction lost a race with another writer and is safe to run again: SQLite's
    "database is locked" (in WAL mode a reader whose snapshot went stale cannot become a
    writer and is refused at once, busy timeout or not), PostgreSQL's serialization failure
    or deadlock."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_timeout (the callback's own)
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


class Router:
    """Routes one inbound message to one handler inside one transaction."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        settings: Settings,
        table: Sequence[Command] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.table = list(table) if table is not None else commands()
        initials = {kw[:1] for cmd in self.table for kw in cmd.keywords}
        self._by_initial: dict[str, list[Command]] = {
            initial: [c for c in self.table if any(kw[:1] in ("", initial) for kw in c.keywords)]
            for initial in initials
        }
        """The commands a text starting with this character could reach, in table order."""
        self._catch_all = self._by_initial.get("", [])

    def candidates(self, text: str) -> Sequence[Command]:
        """The part of the table that ``text`` could match: matching then looks at two or
        three commands instead of thirty."""
        return self._by_initial.get(text[:1], self._catch_all)

    def is_quick(self, text: str) -> bool:
        text = normalize(text)
        return is_quick(text, self.candidates(text))

    async def handle(
        self,
        msg: Inbound,
        *,
        once: Once | None = None,
        bind: Connection | None = None,
        retry: bool = True,
    ) -> Reply:
        """Run ``msg``'s handler in one transaction (on ``bind`` if given, else a pooled
        connection), with ``once``'s check and seal in it. With ``retry=False`` a lost write
        race raises :class:`Busy` instead of running again."""
        # A transaction that lost a write race (two taps at once) is run again from the start:
        # it rolled back whole, outbox rows included, so a second run is as if it came later.
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._handle_once(
                    msg,
                    once=once,
                    bind=bind,
                    rerun=attempt > 1,
                    races=not retry or attempt < ATTEMPTS,
                )
            except _LostRace as exc:
                if not retry:
                    raise Busy(str(exc.__cause__)) from exc
                # The winner still holds the write lock for a moment: back off, with jitter
                # so that two losers do not collide again.
                await asyncio.sleep(RETRY_DELAY * attempt * (1 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _handle_once(
        self, msg: Inbound, *, once: Once | None, bind: Connection | None, rerun: bool, races: bool
    ) -> Reply:
        """One run. ``rerun``: an earlier run lost a race; ``races``: raise _LostRace for a
        lost race (else it is an error like any other)."""
        with nullcontext(bind) if bind is not None else self.engine.connect() as conn:
            return await self._transaction(msg, conn, once=once, rerun=rerun, races=races)

    async def _transaction(
        self, msg: Inbound, conn: Connection, *, once: Once | None, rerun: bool, races: bool
    ) -> Reply:
        # The transaction is the connection's; the ORM session, for handlers that use one,
        # joins it (Context.session). This runs for every message: the sender is read with a
        # prepared statement, and a handler that needs no session (帮助) costs no session.
        trans = conn.begin()
        try:
            if rerun and self.engine.dialect.name == "sqlite":
                # Take the write lock before reading (a write that matches no row still takes
                # it, and waits busy_timeout for it): this run's snapshot cannot go stale.
                conn.execute(sql("UPDATE appstate SET name = name WHERE 0"))
            found = read_sender(conn, msg.userid, once.key if once is not None else None)
            if found is not None and found.member.active and once is not None and found.handled:
                once.seen(found.reply)
        except Exception as exc:
            trans.rollback()
            if races and lost_race(exc):
                raise _LostRace from exc
            raise
        if found is None or not found.member.active:
            # Nothing is recorded for strangers: one polite refusal.
            trans.rollback()
            return Reply(messages.NOT_ON_ROSTER, known=False)
        member, branch = found.member, found.branch
        ctx = Context(
            conn=conn,
            clock=self.clock,
            settings=self.settings,
            sender=member,
            roles=roles_of(member),
            branch=branch,
            channel=msg.channel,
            commands=self.table,
        )
        text = msg.event_key or msg.normalized
        try:
            await self._dispatch(text, msg, ctx)
            reply = Reply("\n".join(ctx.replies), dict(ctx.extras))
            ctx.flush()
            if once is not None:
                once.seal(conn, reply)
            trans.commit()
            return reply
        except Exception as exc:
            if trans.is_active:  # a failed flush has rolled it back already (the session)
                trans.rollback()
            if isinstance(exc, AlreadyHandled):
                raise
            if races and lost_race(exc):
                raise _LostRace from exc
            log.exception("handler failed for %s", msg.userid)
        finally:
            ctx.close()
        # The handler's work is rolled back; the apology is the message's answer.
        reply = Reply(messages.INTERNAL_ERROR)
        if once is not None:
            with conn.begin():
                once.seal(conn, reply)
        return reply

    async def _dispatch(self, text: str, msg: Inbound, ctx: Context) -> None:
        if not text:
            ctx.reply(messages.EMPTY_MESSAGE)
            return
        cmd, kw, forbidden = find_command(text, ctx.roles, self.candidates(text))
        if cmd is None or kw is None:
            if forbidden is not None:
                ctx.reply(
                    messages.FORBIDDEN.format(command=forbidden.keywords[0], who=who_may(forbidden))
                )
                return
            from handlers.help import help_text

            ctx.reply(messages.UNKNOWN_COMMAND.format(text=text[:20]))
            ctx.reply(help_text(ctx.sender, ctx.roles, self.table))
            return
        await cmd.handle(Request(inbound=msg, keyword=kw, args=text[len(kw) :].strip()), ctx)
