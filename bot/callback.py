"""``GET/POST /wecom/callback``: WeCom's messages and events in, passive replies out (DESIGN §4.3).

Order of trust: the body's size, then its XML (no DOCTYPE, no entities), then the signature,
then the decrypted receive id — and only then is anything read or written. A rejected request
writes nothing: 403 for a bad signature or someone else's corp id, 400 for everything
malformed or too large.

Quick commands (``Command.quick``: 签到, 收到, 学习, 帮助 … — a few rows of one person's)
run on the event loop itself, on a connection of its own that waits at most
``QUICK_LOCK_WAIT_MS`` for a lock: handing a 1 ms job to a thread costs about as much again
in switching. When that connection meets a lock held longer (a planning pass, another
process), the transaction is rolled back untouched and the message goes to the handler
threads, which wait for the lock without stalling anyone.

Every other handler runs off the event loop (it may take a while) in :class:`~bot.lanes.Lanes`:
one thread while handlers are quick, more only while one is stuck on a slow job; each thread
has its own event loop for the router's coroutine. The request waits at most the reply budget
(``wecom.reply_budget_seconds``, default 3 s, well inside WeCom's 5 s): a handler done by
then answers in the encrypted passive reply; one that is not answers an empty 200 at once,
and when it finishes its reply goes out through the outbox (``message/send``). A lock decides
which of the two happens, so a reply is never given both ways.

Each message is handled exactly once (bot.inbound): its record and reply are written in the
handler's own transaction, a retry is answered from the record, and a retry that arrives
while the first is still running here is answered empty.

Replies longer than a passive reply can carry (2048 bytes) are cut at line ends: the first
part is the passive reply, the rest go through the outbox right after. On a card button
click (``template_card_event``) a handler's ``ctx.extras["card_update"]`` is the answer:
``{"replace_name": "已确认"}`` becomes the passive ``update_button`` reply (or, when late,
``message/update_template_card`` with the click's ResponseCode); ``{"template_card": {...}}``
always goes through ``message/update_template_card``. With a card update the handler's text
is not sent: the changed button is the confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from bot import messages
from bot.channels.limits import split_text
from bot.channels.wecom.crypto import CallbackCrypto, CryptoError, ReceiveIdError, SignatureError
from bot.channels.wecom.protocol import (
    MAX_BODY_BYTES,
    PASSIVE_TEXT_BYTES,
    CallbackMessage,
    MalformedError,
    parse_callback,
    parse_envelope,
    text_reply_xml,
    update_button_xml,
)
from bot.clock import SystemClock
from bot.db import SQLITE_BEGIN
from bot.inbound import AlreadyHandled, Once, StoredReply, prune
from bot.lanes import Lanes
from bot.metrics import CALLBACK_HANDOVERS, CALLBACK_INFLIGHT, CALLBACKS, HANDLER_SECONDS
from bot.models import Member
from bot.outbox import Outgoing, text_body
from bot.router import Busy, Inbound, Reply

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("mofan.callback")

HANDLER_THREADS = 4
"""At most this many handler threads; one runs while handlers are quick (see bot.lanes)."""
STUCK_AFTER = 0.1
"""Seconds on one job after which a handler thread counts as stuck and another may start."""
KEEP_CLAIMS = timedelta(days=30)
PRUNE_EVERY_SECONDS = 3600.0
ROUTED_EVENTS = frozenset({"click", "template_card_event"})
WELCOME_EVENTS = frozenset({"enter_agent", "subscribe"})
XML = "application/xml; charset=utf-8"
MAX_SKEW_SECONDS = 24 * 3600
"""A signed request whose timestamp is further than this from the real clock is refused. WeCom
sends and retries within seconds; a day tolerates a badly set server clock, and is far inside
the 30 days for which handled messages are remembered, so no replay ever runs twice."""
USERID_MAX = 64
"""``Member.userid``'s column length (WeCom userids are at most 64 bytes)."""


@dataclass(frozen=True)
class Answer:
    """What goes back in the HTTP response: a text, a button update, or nothing."""

    text: str = ""
    button: str | None = None
    outcome: str = "replied"

    @classmethod
    def stored(cls, reply: StoredReply | None, outcome: str) -> Answer:
        if reply is None or reply.mode != "passive":
            return cls(outcome=outcome)
        return cls(text=reply.text, button=reply.button, outcome=outcome)


@dataclass
class _Deadline:
    """Shared by the request and its handler thread: who delivers the reply."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    passed: bool = False
    """The request answered empty: the handler's reply goes through the outbox."""
    committing: bool = False
    """The handler is storing a passive reply: the request waits for it."""


class CallbackService:
    """The callback's state: crypto, the handler threads and their event loops."""

    def __init__(self, runtime: Runtime, *, budget_seconds: float | None = None) -> None:
        self.runtime = runtime
        w = runtime.settings.wecom
        self.corp_id = w.corp_id
        self.crypto: CallbackCrypto | None = None
        if w.token and w.encoding_aes_key and w.corp_id:
            self.crypto = CallbackCrypto(w.token, w.encoding_aes_key, w.corp_id)
        self.budget = budget_seconds if budget_seconds is not None else w.reply_budget_seconds
        self.lanes = Lanes(
            max_threads=HANDLER_THREADS, stuck_after=STUCK_AFTER, name="mofan-callback"
        )
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._loops_lock = threading.Lock()
        self._pruned_at = 0.0
        self._in_flight: set[str] = set()
        """Dedupe keys being handled in this process (added on the event loop only)."""
        self._inline_active = False
        self._loop_conn: Connection | None = None
        """The event loop's own connection for quick handlers (see _inline)."""
        self._checkpointing: threading.Event | None = (
            threading.Event() if runtime.engine.dialect.name == "sqlite" else None
        )
        self._since_checkpoint = 0
        weakref.finalize(self, _close_loops, self.lanes, self._loops)

    def close(self) -> None:
        _close_loops(self.lanes, self._loops)
        self._drop_loop_connection()

    # --- HTTP -----------------------------------------------------------------------------

    async def verify(self, request: Request) -> Response:
        """URL verification: the decrypted ``echostr``, bare (no quotes, BOM or newline)."""
        if self.crypto is None:
            return _reject("not_configured", 503, "wecom callback is not configured")
        q = request.query_params
        sig, ts, nonce, echo = (
            q.get(k) for k in ("msg_signature", "timestamp", "nonce", "echostr")
        )
        if not (sig and ts and nonce and echo):
            return _reject("malformed", 400)
        try:
            plain = self.crypto.verify_and_decrypt(sig, ts, nonce, echo)
        except SignatureError:
            return _reject("bad_signature", 403)
        except ReceiveIdError:
            return _reject("wrong_corp", 403)
        except CryptoError:
            return _reject("malformed", 400)
        CALLBACKS.labels(outcome="verified").inc()
        return Response(plain, media_type="text/plain; charset=utf-8")

    async def receive(self, request: Request) -> Response:
        if self.crypto is None:
            return _reject("not_configured", 503, "wecom callback is not configured")
        q = request.query_params
        sig, ts, nonce = (q.get(k) for k in ("msg_signature", "timestamp", "nonce"))
        if not (sig and ts and nonce):
            return _reject("malformed", 400)
        body = await _read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return _reject("too_large", 400)
        try:
            envelope = parse_envelope(body)
            plain = self.crypto.verify_and_decrypt(sig, ts, nonce, envelope.encrypt)
            msg = parse_callback(plain)
        except SignatureError:
            return _reject("bad_signature", 403)
        except ReceiveIdError:
            return _reject("wrong_corp", 403)
        except (MalformedError, CryptoError) as exc:
            log.info("callback rejected: %s", exc)
            return _reject("malformed", 400)
        skew = _skew_seconds(ts)
        if skew is None or abs(skew) > MAX_SKEW_SECONDS:
            # Signed, but not sent now: a replay of a captured request (its record may have been
            # pruned), or a clock far off on one side. Either way nothing is run or written.
            log.warning(
                "callback rejected: timestamp %r is %s from this server's clock",
                ts[:20],
                "unreadable" if skew is None else f"{skew:+.0f} s",
            )
            return _reject("stale", 400)
        CALLBACK_INFLIGHT.inc()
        try:
            answer = await self._answer(msg)
        except Exception:
            log.exception("callback failed for %s", msg.from_user)
            CALLBACKS.labels(outcome="error").inc()
            return Response("", status_code=500)  # WeCom retries; nothing was committed
        finally:
            CALLBACK_INFLIGHT.dec()
        CALLBACKS.labels(outcome=answer.outcome).inc()
        return self._render(answer, msg, nonce)

    async def _answer(self, msg: CallbackMessage) -> Answer:
        self._maybe_prune()
        routed = msg.msg_type == "text" or (msg.msg_type == "event" and msg.event in ROUTED_EVENTS)
        if not routed:
            return await asyncio.wrap_future(
                self.lanes.submit(contextvars.copy_context().run, self._other, msg)
            )
        if len(msg.from_user) > USERID_MAX:
            # No member has such a userid, and PostgreSQL refuses it in the record (a 500).
            return Answer(text=messages.NOT_ON_ROSTER, outcome="stranger")
        key = msg.dedupe_key
        if key in self._in_flight:
            # WeCom's retry of a message still being handled here: one answer per message.
            return Answer(outcome="duplicate")
        self._in_flight.add(key)
        handed_over = False
        try:
            if not self._inline_active and self.runtime.router.is_quick(_route_text(msg)):
                try:
                    return await self._inline(msg)
                except Busy:
                    # Another writer holds a lock: a handler thread waits for it instead.
                    CALLBACK_HANDOVERS.inc()
            handed_over = True
            return await self._threaded(msg)
        finally:
            if not handed_over:
                self._in_flight.discard(key)

    async def _inline(self, msg: CallbackMessage) -> Answer:
        """A quick command, run on the event loop itself on its own connection (handing a
        1 ms job to a thread costs about as much again in switching). That connection waits
        only briefly for locks; a lock held longer raises Busy, with nothing written."""
        self._inline_active = True
        try:
            conn = self._loop_connection()
            answer = await self._handle(msg, bind=conn, late=lambda: False)
            self._after_quick_write()
            return answer
        except DBAPIError as exc:
            # The connection may be broken (a database restart): drop it, and let a handler
            # thread try with a pooled one.
            log.warning("quick handling failed (%s); handing over to a thread", exc.orig)
            self._drop_loop_connection()
            raise Busy(str(exc.orig)) from exc
        finally:
            self._inline_active = False

    async def _threaded(self, msg: CallbackMessage) -> Answer:
        deadline = _Deadline()
        # copy_context: the request id (a contextvar) follows the work into the thread.
        future = asyncio.wrap_future(
            self.lanes.submit(contextvars.copy_context().run, self._work, msg, deadline)
        )
        try:
            return await self._wait(future)
        except TimeoutError:
            with deadline.lock:
                if not deadline.committing:
                    deadline.passed = True
            if deadline.passed:
                log.info(
                    "%s: handler past the %.1f s budget, reply goes by the outbox",
                    msg.from_user,
                    self.budget,
                )
                future.add_done_callback(_log_late_failure)
                return Answer(outcome="deferred")
            return await future

    async def _wait(self, future: asyncio.Future[Answer]) -> Answer:
        """The handler's answer within the budget; while waiting, a stuck handler thread gets
        help (work queued behind it would otherwise wait for it). TimeoutError past the budget."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.budget
        while True:
            left = ends - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                return await asyncio.wait_for(asyncio.shield(future), min(left, STUCK_AFTER))
            except TimeoutError:
                self.lanes.relieve()

    def _render(self, answer: Answer, msg: CallbackMessage, nonce: str) -> Response:
        assert self.crypto is not None
        now = int(self.runtime.clock.now().timestamp())
        if answer.button:
            xml = update_button_xml(
                to_user=msg.from_user,
                corp_id=self.corp_id,
                create_time=now,
                replace_name=answer.button,
            )
        elif answer.text:
            xml = text_reply_xml(
                to_user=msg.from_user, corp_id=self.corp_id, create_time=now, content=answer.text
            )
        else:
            return Response("", media_type="text/plain")
        return Response(self.crypto.envelope(xml, timestamp=str(now), nonce=nonce), media_type=XML)

    # --- handler threads ------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Answer]) -> Answer:
        loop = getattr(self._local, "loop", None)
        if loop is None:
            loop = asyncio.new_event_loop()
            self._local.loop = loop
            with self._loops_lock:
                self._loops.append(loop)
        return loop.run_until_complete(coro)

    def _work(self, msg: CallbackMessage, deadline: _Deadline) -> Answer:
        def late() -> bool:
            # Decided once, as the reply is sealed: the request answers empty from then on
            # only if it had already given up waiting.
            with deadline.lock:
                deadline.committing = not deadline.passed
                return deadline.passed

        try:
            return self._run(self._handle(msg, bind=None, late=late))
        finally:
            self._in_flight.discard(msg.dedupe_key)

    def _other(self, msg: CallbackMessage) -> Answer:
        """Events other than clicks, and messages that are not text: nothing is recorded."""
        if msg.msg_type == "event":
            if msg.event in WELCOME_EVENTS:
                name = self._member_name(msg.from_user)
                if name is not None:
                    return Answer(text=messages.WELCOME.format(name=name), outcome="welcome")
            return Answer(outcome="ignored")
        # image, voice, location …: nothing to record; say what works.
        name = self._member_name(msg.from_user)
        text = messages.EMPTY_MESSAGE if name is not None else messages.NOT_ON_ROSTER
        return Answer(text=text, outcome="not_text" if name is not None else "stranger")

    def _member_name(self, userid: str) -> str | None:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(col(Member.name)).where(col(Member.userid) == userid, col(Member.active))
            ).first()
        return str(row[0]) if row else None

    async def _handle(
        self, msg: CallbackMessage, *, bind: Connection | None, late: Callable[[], bool]
    ) -> Answer:
        """The router runs the handler; its reply is sealed with the message's record in the
        handler's own transaction (bot.inbound.Once)."""
        rt = self.runtime
        is_event = msg.msg_type == "event"
        inbound = Inbound(
            userid=msg.from_user,
            text=msg.content if not is_event else (msg.event_key or ""),
            channel="wecom",
            msg_id=msg.msg_id,
            event_key=msg.event_key if is_event else None,
            task_id=msg.task_id,
            response_code=msg.response_code,
        )
        now = rt.clock.now()
        once = Once(
            key=msg.dedupe_key,
            userid=msg.from_user,
            received_at=now,
            settle=lambda reply: plan_reply(reply, msg, late=late(), now=rt.clock.now()),
        )
        started = time.perf_counter()
        try:
            reply = await rt.router.handle(inbound, once=once, bind=bind, retry=bind is None)
        except AlreadyHandled as done:
            return Answer.stored(done.reply, "duplicate")
        HANDLER_SECONDS.observe(time.perf_counter() - started)
        if not reply.known:
            return Answer(text=reply.text, outcome="stranger")
        return Answer.stored(once.stored, "replied")

    def _after_quick_write(self) -> None:
        """On SQLite the event loop's connection never checkpoints the WAL itself (copying
        pages into the database file, and an fsync, would stall every request behind it):
        every CHECKPOINT_EVERY messages a handler thread does it, with the GIL released for
        the copying, and a page written many times in between is copied once."""
        if self._checkpointing is None:
            return
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and not self._checkpointing.is_set():
            self._since_checkpoint = 0
            self._checkpointing.set()
            self.lanes.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        assert self._checkpointing is not None
        try:
            raw = self.runtime.engine.raw_connection()
            try:
                # PASSIVE: copies what no reader still needs, waits for nobody.
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
            finally:
                raw.close()
        except Exception:  # the next one catches up; other connections still checkpoint too
            log.exception("WAL checkpoint failed")
        finally:
            self._checkpointing.clear()

    def _loop_connection(self) -> Connection:
        if self._loop_conn is None:
            self._loop_conn = open_quick_connection(self.runtime.engine)
        return self._loop_conn

    def _drop_loop_connection(self) -> None:
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                # Discarded, not pooled: its lock waits are the event loop's, not for others
                # (and after an error it may be broken).
                conn.invalidate()
                conn.close()

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        self.lanes.submit(self._prune)

    def _prune(self) -> None:
        try:
            prune(self.runtime.engine, before=self.runtime.clock.now() - KEEP_CLAIMS)
        except Exception:  # housekeeping must never cost a reply
            log.exception("could not prune old inbound records")


def plan_reply(
    reply: Reply, msg: CallbackMessage, *, late: bool, now: Any
) -> tuple[StoredReply, list[Outgoing]]:
    """What the passive reply carries and what goes through the outbox instead."""
    key = msg.dedupe_key
    card = reply.extras.get("card_update") if msg.response_code else None
    if isinstance(card, dict) and card:
        body: dict[str, Any] = {
            "msgtype": "update_template_card",
            "response_code": msg.response_code,
            "text": reply.text,
        }
        if card.get("replace_name") and not card.get("template_card"):
            if not late:
                # The button changes at once; what the handler said (请假's "已告知书记", a
                # sign-in's time) follows as a message, since a button reply carries no text.
                said = (
                    [
                        Outgoing(
                            f"reply:{key}:1",
                            msg.from_user,
                            text_body(reply.text),
                            now,
                            channel="wecom",
                            rule="reply",
                        )
                    ]
                    if reply.text
                    else []
                )
                return StoredReply("passive", button=str(card["replace_name"])), said
            body["button"] = {"replace_name": str(card["replace_name"])}
        else:
            body["template_card"] = card.get("template_card") or {}
        row = Outgoing(f"card:{key}", msg.from_user, body, now, channel="wecom", rule="reply")
        return StoredReply("outbox"), [row]
    parts = split_text(reply.text, PASSIVE_TEXT_BYTES) if reply.text else []
    passive = "" if late or not parts else parts.pop(0)
    outgoing = [
        Outgoing(
            f"reply:{key}:{i}", msg.from_user, text_body(p), now, channel="wecom", rule="reply"
        )
        for i, p in enumerate(parts, start=1)
    ]
    return StoredReply("outbox" if late else "passive", text=passive), outgoing


def _log_late_failure(future: asyncio.Future[Answer]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a deferred handler failed", exc_info=future.exception())


def _route_text(msg: CallbackMessage) -> str:
    """The text the router matches: a click's key, else the message."""
    return (msg.event_key or "") if msg.msg_type == "event" else msg.content


CHECKPOINT_EVERY = 500
"""Quick messages between two WAL checkpoints on SQLite: under a second's worth at full
load, about 1,300 WAL frames (5 MB) at the 2.5 frames a message the WAL test measured."""
QUICK_LOCK_WAIT_MS = 20
"""How long the event loop's own connection waits for a lock before handing the message to
a handler thread (which waits the database's full busy timeout)."""


def open_quick_connection(engine: Engine) -> Connection:
    """A connection for handlers run on the event loop: it gives up on a held lock after
    QUICK_LOCK_WAIT_MS (SQLite's busy timeout, PostgreSQL's lock_timeout) instead of
    stalling every request behind it."""
    conn = engine.connect()
    raw = conn.connection
    cursor = raw.cursor()
    try:
        if engine.dialect.name == "sqlite":
            cursor.execute(f"PRAGMA busy_timeout={QUICK_LOCK_WAIT_MS}")
            # Every quick message writes (its record), so take the write lock at BEGIN: a
            # deferred transaction that read before another connection committed would be
            # refused at its first write at once ("database is locked", a stale snapshot),
            # and hand its message over; this one waits the few ms for the lock instead.
            raw.info[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # see CallbackService._checkpoint
        elif engine.dialect.name == "postgresql":
            cursor.execute(f"SET lock_timeout = {QUICK_LOCK_WAIT_MS}")
            raw.commit()
    finally:
        cursor.close()
    return conn


def _close_loops(lanes: Lanes, loops: list[asyncio.AbstractEventLoop]) -> None:
    lanes.shutdown(wait=True)
    for loop in loops:
        if not loop.is_closed() and not loop.is_running():
            loop.close()
    loops.clear()


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _skew_seconds(timestamp: str) -> float | None:
    """How far the request's signed timestamp is from the real clock (not the business clock,
    which tests and ``mofan simulate`` move), or None if it is not a number."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        return None
    return int(timestamp) - SystemClock().now().timestamp()


def _reject(outcome: str, status: int, text: str = "") -> Response:
    CALLBACKS.labels(outcome=outcome).inc()
    return Response(text, status_code=status, media_type="text/plain")


def mount_callback(app: FastAPI, runtime: Runtime, *, budget_seconds: float | None = None) -> None:
    """Add the two routes to ``app``; the handler threads stop with the app's lifespan."""
    service = CallbackService(runtime, budget_seconds=budget_seconds)
    app.state.callback = service
    app.add_api_route("/wecom/callback", service.verify, methods=["GET"], include_in_schema=False)
    app.add_api_route("/wecom/callback", service.receive, methods=["POST"], include_in_schema=False)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            yield state
        service.close()

    app.router.lifespan_context = lifespan
