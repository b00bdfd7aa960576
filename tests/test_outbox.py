"""The outbox: same key twice is one message; claims are exclusive; retry, give-up, lease expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from bot.channels.base import SendOutcome
from bot.clock import FixedClock
from bot.config import OutboxSettings
from bot.models import OutboxMessage
from bot.outbox import Dispatcher, Outgoing, enqueue, outbox_depth, text_body


class FlakyChannel:
    """Fails the first ``failures`` sends (retryable), then delivers; records every send."""

    name = "wecom"
    max_batch = 1000

    def __init__(self, failures: int = 0, reject: set[str] | None = None) -> None:
        self.failures = failures
        self.reject = reject or set()
        self.calls: list[list[str]] = []

    async def send(self, batch: list[OutboxMessage]) -> SendOutcome:
        self.calls.append([m.recipient for m in batch])
        if self.failures > 0:
            self.failures -= 1
            return SendOutcome(retry={m.id: "errcode 45009: api freq out of limit" for m in batch})
        out = SendOutcome()
        for m in batch:
            if m.recipient in self.reject:
                out.rejected[m.id] = "invaliduser"
            else:
                out.delivered.add(m.id)
        return out

    async def aclose(self) -> None:
        return None


class CrashingChannel(FlakyChannel):
    async def send(self, batch: list[OutboxMessage]) -> SendOutcome:
        raise RuntimeError("boom")


def _put(session: Session, clock: FixedClock, key: str, to: str = "u1", text: str = "hi") -> int:
    n = enqueue(
        session,
        [Outgoing(key=key, recipient=to, body=text_body(text), due_at=clock.now())],
        now=clock.now(),
    )
    session.commit()
    return n


def _rows(session: Session) -> list[OutboxMessage]:
    session.rollback()  # end the read snapshot (WAL) so we see other connections' writes
    return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_same_key_twice_is_one_message(session, engine, clock):
    assert _put(session, clock, "notice:1:u1") == 1
    assert _put(session, clock, "notice:1:u1", text="changed") == 0
    channel = FlakyChannel()
    d = Dispatcher(
        engine=engine, channels={"wecom": channel}, clock=clock, settings=OutboxSettings()
    )
    asyncio.run(d.drain())
    assert channel.calls == [["u1"]]
    [row] = _rows(session)
    assert row.status == "sent" and row.body["text"] == "hi"


def test_identical_bodies_go_in_one_batch(session, engine, clock):
    items = [
        Outgoing(key=f"n:{i}", recipient=f"u{i}", body=text_body("通知"), due_at=clock.now())
        for i in range(2500)
    ]
    assert enqueue(session, items, now=clock.now()) == 2500
    session.commit()
    channel = FlakyChannel()
    d = Dispatcher(
        engine=engine,
        channels={"wecom": channel},
        clock=clock,
        settings=OutboxSettings(batch_size=5000),
    )
    asyncio.run(d.drain())
    assert [len(c) for c in channel.calls] == [1000, 1000, 500]
    assert {r.status for r in _rows(session)} == {"sent"}


def test_not_due_yet_is_not_sent(session, engine, clock):
    enqueue(
        session,
        [
            Outgoing(
                key="k",
                recipient="u1",
                body=text_body("x"),
                due_at=clock.now() + timedelta(hours=1),
            )
        ],
        now=clock.now(),
    )
    session.commit()
    channel = FlakyChannel()
    d = Dispatcher(
        engine=engine, channels={"wecom": channel}, clock=clock, settings=OutboxSettings()
    )
    assert asyncio.run(d.run_once()).claimed == 0
    clock.advance(hours=1)
    assert asyncio.run(d.run_once()).sent == 1


def test_retry_with_backoff_then_success(session, engine, clock):
    _put(session, clock, "k1")
    channel = FlakyChannel(failures=2)
    d = Dispatcher(
        engine=engine,
        channels={"wecom": channel},
        clock=clock,
        settings=OutboxSettings(backoff_seconds=30),
    )
    assert asyncio.run(d.run_once()).retried == 1
    [row] = _rows(session)
    assert row.status == "pending" and row.due_at == clock.now() + timedelta(seconds=30)
    assert "45009" in (row.last_error or "")
    assert asyncio.run(d.run_once()).claimed == 0  # backoff holds it
    clock.advance(seconds=30)
    assert asyncio.run(d.run_once()).retried == 1
    [row] = _rows(session)
    assert row.due_at == clock.now() + timedelta(seconds=60)  # doubled
    clock.advance(seconds=60)
    assert asyncio.run(d.run_once()).sent == 1
    [row] = _rows(session)
    assert row.status == "sent" and row.attempts == 3 and len(channel.calls) == 3


def test_gives_up_after_max_attempts_and_records_why(session, engine, clock):
    _put(session, clock, "k1")
    channel = FlakyChannel(failures=100)
    d = Dispatcher(
        engine=engine,
        channels={"wecom": channel},
        clock=clock,
        settings=OutboxSettings(max_attempts=3, backoff_seconds=1),
    )
    for _ in range(10):
        asyncio.run(d.run_once())
        clock.advance(seconds=10)
    [row] = _rows(session)
    assert row.status == "failed" and row.attempts == 3
    assert "gave up after 3 tries" in (row.last_error or "") and "45009" in (row.last_error or "")
    assert len(channel.calls) == 3


def test_permanent_rejection_is_failed_at_once(session, engine, clock):
    _put(session, clock, "k1", to="ghost")
    _put(session, clock, "k2", to="u2")
    channel = FlakyChannel(reject={"ghost"})
    d = Dispatcher(
        engine=engine, channels={"wecom": channel}, clock=clock, settings=OutboxSettings()
    )
    asyncio.run(d.drain())
    rows = {r.recipient: r for r in _rows(session)}
    assert rows["ghost"].status == "failed" and rows["ghost"].last_error == "invaliduser"
    assert rows["u2"].status == "sent"


def test_channel_exception_is_retried_not_lost(session, engine, clock):
    _put(session, clock, "k1")
    d = Dispatcher(
        engine=engine, channels={"wecom": CrashingChannel()}, clock=clock, settings=OutboxSettings()
    )
    assert asyncio.run(d.run_once()).retried == 1
    [row] = _rows(session)
    assert row.status == "pending" and "boom" in (row.last_error or "")


def test_claims_are_exclusive_and_expired_lease_is_taken_again(session, engine, clock):
    _put(session, clock, "k1")
    settings = OutboxSettings(lease_seconds=60)
    a = Dispatcher(engine=engine, channels={}, clock=clock, settings=settings, worker_id="a")
    b = Dispatcher(engine=engine, channels={}, clock=clock, settings=settings, worker_id="b")
    assert len(a.claim()) == 1
    assert b.claim() == []  # a holds the lease
    clock.advance(seconds=61)  # a died without marking
    [row] = b.claim()
    assert row.claimed_by == "b" and row.attempts == 2
    # a comes back late: its mark must not overwrite b's claim
    a._mark(
        [row],
        SendOutcome(delivered={row.id}),
        __import__("bot.outbox", fromlist=["x"]).DispatchReport(),
    )  # type: ignore[arg-type]
    [row] = _rows(session)
    assert row.status == "claimed" and row.claimed_by == "b"


def test_a_claim_takes_at_most_its_limit(session, engine, clock):
    """On PostgreSQL the limited, SKIP LOCKED subquery must be read once: rescanned per row it
    skipped the rows the claim had just updated and took every due row."""
    for i in range(5):
        _put(session, clock, f"k{i}", to=f"u{i}")
    d = Dispatcher(engine=engine, channels={}, clock=clock, settings=OutboxSettings(batch_size=3))
    assert [len(d.claim()) for _ in range(3)] == [3, 2, 0]


def test_unknown_channel_fails_with_reason(session, engine, clock):
    enqueue(
        session,
        [Outgoing(key="k", recipient="x", body=text_body("x"), due_at=clock.now(), channel="fax")],
        now=clock.now(),
    )
    session.commit()
    d = Dispatcher(engine=engine, channels={}, clock=clock, settings=OutboxSettings())
    asyncio.run(d.run_once())
    [row] = _rows(session)
    assert row.status == "failed" and "fax" in (row.last_error or "")


def test_depth_and_oldest_age(session, clock):
    assert outbox_depth(session, now=clock.now()) == (0, None)
    _put(session, clock, "k1")
    clock.advance(seconds=90)
    assert outbox_depth(session, now=clock.now()) == (1, 90.0)


class _Slow:
    """A channel whose calls take a while: records what was in flight together, and order."""

    name = "console"
    max_batch = 2

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.calls: list[tuple[str, list[str]]] = []

    async def send(self, batch):  # type: ignore[no-untyped-def]
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.calls.append((batch[0].body["text"], [r.recipient for r in batch]))
        await asyncio.sleep(0.02)
        self.in_flight -= 1
        return SendOutcome(delivered={r.id for r in batch})

    async def aclose(self) -> None:
        pass


def test_one_message_to_many_goes_out_in_parallel_calls_and_messages_keep_their_order(
    session, engine, clock
):
    people = [f"u{i}" for i in range(6)]
    for part, text in enumerate(["第一段", "第二段"]):  # a long reply cut in two
        enqueue(
            session,
            [
                Outgoing(f"r{part}:{p}", p, text_body(text), clock.now(), channel="console")
                for p in people
            ],
            now=clock.now(),
        )
        session.commit()
        clock.advance(seconds=1)
    slow = _Slow()
    d = Dispatcher(
        engine=engine,
        channels={"console": slow},
        clock=clock,
        settings=OutboxSettings(concurrency=2),
    )
    report = asyncio.run(d.run_once())
    assert report.sent == 12
    texts = [t for t, _ in slow.calls]
    assert texts == ["第一段"] * 3 + ["第二段"] * 3, "each person gets the parts in order"
    assert slow.most == 2, "a message's calls go out side by side, no more than configured"
    assert sorted(p for t, who in slow.calls if t == "第一段" for p in who) == people
