"""The outbox as a state machine (issue 8 item 4): enqueue, claim, crash, lease expiry, send
ok or failing, restart and clock jumps in any order, against a fake WeCom that counts what
it actually delivered.

The fake channel models WeCom's own duplicate check the way the real channel uses it: a row
on its second or later attempt is sent with ``enable_duplicate_check``, so an identical
body to the same recipient within the window is swallowed (answered ok, not delivered
again). Invariants, checked after every step:

- a row already marked sent or failed is never handed to the channel again;
- at most one real delivery per key per duplicate window;
- a failed row says why.

At quiescence (everything due, leases and backoffs run out, channel healthy): every key has
exactly one row, no row is waiting, and every sent row was delivered exactly once (once per
window if a crash and a clock jump longer than the window came between).

``bench/outbox_machine.py`` runs the same machine for 10,000+ steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session, col

from bot.channels.base import SendOutcome
from bot.clock import SHANGHAI, FixedClock
from bot.config import OutboxSettings
from bot.models import OutboxMessage
from bot.outbox import (
    CLAIMED,
    FAILED,
    PENDING,
    SENT,
    Dispatcher,
    DispatchReport,
    Outgoing,
    text_body,
)
from bot.outbox import enqueue as outbox_enqueue

START = datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI)
WINDOW = timedelta(seconds=1800)
"""WeCom's default ``duplicate_check_interval``."""
RECIPIENTS = ("u1", "u2", "u3", "u4")
MODES = ("ok", "retry", "timeout", "reject")
"""ok: delivered; retry: refused, try later (45009, -1); timeout: delivered but the answer
was lost, so retried; reject: refused for good (invaliduser)."""


@dataclass
class FakeWeCom:
    """A channel that delivers, fails or times out, and applies WeCom's duplicate check."""

    engine: Engine
    clock: FixedClock
    name: str = "wecom"
    max_batch: int = 3
    mode: str = "ok"
    deliveries: dict[str, list[datetime]] = field(default_factory=dict)
    """Real deliveries per outbox key (what a member's phone showed)."""
    last_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    async def send(self, batch: list[OutboxMessage]) -> SendOutcome:
        now = self.clock.now()
        ids = [r.id for r in batch]
        with Session(self.engine) as s:
            final = s.execute(
                select(col(OutboxMessage.key)).where(
                    col(OutboxMessage.id).in_(ids), col(OutboxMessage.status).in_((SENT, FAILED))
                )
            ).all()
        self.violations += [f"{k} handed to the channel after it was final" for (k,) in final]
        out = SendOutcome()
        for row in batch:
            assert row.id is not None
            if self.mode in ("retry", "reject"):
                target = out.retry if self.mode == "retry" else out.rejected
                target[row.id] = f"fake {self.mode}"
                continue
            self.deliver(row, now)
            if self.mode == "timeout":
                out.retry[row.id] = "ReadTimeout"
            else:
                out.delivered.add(row.id)
        return out

    def deliver(self, row: OutboxMessage, now: datetime) -> None:
        """What reaches the member: a retry identical to a recent send is swallowed."""
        ident = (row.recipient, repr(sorted(row.body.items())))
        seen = self.last_seen.get(ident)
        if row.attempts > 1 and seen is not None and now - seen < WINDOW:
            return
        self.last_seen[ident] = now
        self.deliveries.setdefault(row.key, []).append(now)

    async def aclose(self) -> None:
        return None


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


class OutboxMachine(RuleBasedStateMachine):
    """``db_url`` is set by the test (or the bench) before the machine runs."""

    engine: Engine
    total_steps = 0
    """Steps run by every instance so far (the bench prints it)."""
    outbox_settings = OutboxSettings(
        max_attempts=4, lease_seconds=60, backoff_seconds=30, backoff_max_seconds=600, batch_size=4
    )

    def __init__(self) -> None:
        super().__init__()
        with Session(self.engine) as s:
            s.execute(delete(OutboxMessage))
            s.commit()
        self.clock = FixedClock(START)
        self.channel = FakeWeCom(self.engine, self.clock)
        self.workers = [self._dispatcher(0), self._dispatcher(1)]
        self.restarts = 2
        self.keys: set[str] = set()
        self.stalled: list[tuple[Dispatcher, list[OutboxMessage], SendOutcome]] = []
        self.steps = 0

    def _dispatcher(self, n: int) -> Dispatcher:
        return Dispatcher(
            engine=self.engine,
            channels={"wecom": self.channel},
            clock=self.clock,
            settings=self.outbox_settings,
            worker_id=f"worker-{n}",
        )

    # --- rules ------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.steps += 1

    @rule(
        msg=st.integers(0, 5),
        recipients=st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=4),
        delay=st.sampled_from([0, 0, 30, 600]),
    )
    def enqueue(self, msg: int, recipients: list[str], delay: int) -> None:
        """A broadcast (bodies shared by recipients); the same message again is a no-op."""
        items = [
            Outgoing(
                key=f"m{msg}:{r}",
                recipient=r,
                body=text_body(f"通知 {msg}"),
                due_at=self.clock.now() + timedelta(seconds=delay),
            )
            for r in dict.fromkeys(recipients)
        ]
        with Session(self.engine) as s:
            new = outbox_enqueue(s, items, now=self.clock.now())
            s.commit()
        fresh = {o.key for o in items} - self.keys
        assert new == len(fresh), "an existing key must not be enqueued twice"
        self.keys |= fresh
        self.steps += 1

    @rule(mode=st.sampled_from(MODES))
    def channel_mode(self, mode: str) -> None:
        self.channel.mode = mode
        self.steps += 1

    @rule(worker=st.integers(0, 1))
    def full_pass(self, worker: int) -> None:
        _run(self.workers[worker].run_once())
        self.steps += 1

    @rule(worker=st.integers(0, 1), delivered_first=st.booleans())
    def stall(self, worker: int, delivered_first: bool) -> None:
        """A pass that claimed (and maybe sent) but has not marked yet."""
        d = self.workers[worker]
        rows = d.claim()
        outcome = _run(self.channel.send(rows)) if delivered_first and rows else SendOutcome()
        if rows:
            self.stalled.append((d, rows, outcome))
        self.steps += 1

    @precondition(lambda self: bool(self.stalled))
    @rule()
    def finish_stalled(self) -> None:
        """The slow pass wakes up and marks what it got back (possibly long after its lease)."""
        d, rows, outcome = self.stalled.pop(0)
        d._mark(rows, outcome, DispatchReport())
        self.steps += 1

    @precondition(lambda self: bool(self.stalled))
    @rule()
    def crash(self) -> None:
        """The worker dies between send and mark: its rows stay claimed until the lease ends."""
        d, _, _ = self.stalled.pop(0)
        self.stalled = [s for s in self.stalled if s[0] is not d]
        self.workers[self.workers.index(d)] = self._restart()
        self.steps += 1

    @rule(worker=st.integers(0, 1))
    def restart(self, worker: int) -> None:
        old = self.workers[worker]
        self.stalled = [s for s in self.stalled if s[0] is not old]
        self.workers[worker] = self._restart()
        self.steps += 1

    def _restart(self) -> Dispatcher:
        self.restarts += 1
        return self._dispatcher(self.restarts)

    @rule(seconds=st.sampled_from([1, 20, 59, 61, 120, 700, 1900, 4 * 3600]))
    def advance(self, seconds: int) -> None:
        """Time passes: under a lease, past it, past a backoff, past the duplicate window."""
        self.clock.advance(timedelta(seconds=seconds))
        self.steps += 1

    @rule(seconds=st.sampled_from([-30, -3600]))
    def clock_back(self, seconds: int) -> None:
        """NTP steps the clock back: nothing may be sent twice because of it."""
        self.clock.advance(timedelta(seconds=seconds))
        self.steps += 1

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def never_sent_after_final(self) -> None:
        assert not self.channel.violations, self.channel.violations

    @invariant()
    def at_most_one_delivery_per_window(self) -> None:
        for key, times in self.channel.deliveries.items():
            ordered = sorted(times)
            for a, b in zip(ordered, ordered[1:], strict=False):
                assert b - a >= WINDOW, f"{key} delivered twice within the window: {times}"

    @invariant()
    def failures_say_why(self) -> None:
        with Session(self.engine) as s:
            silent = s.execute(
                select(col(OutboxMessage.key)).where(
                    col(OutboxMessage.status) == FAILED, col(OutboxMessage.last_error).is_(None)
                )
            ).all()
        assert not silent, f"failed without a reason: {silent}"

    def teardown(self) -> None:
        OutboxMachine.total_steps += self.steps
        self.quiesce()

    def quiesce(self) -> None:
        """Stalled passes die, the channel heals, time runs on until nothing is due."""
        self.stalled.clear()
        self.channel.mode = "ok"
        d = self._restart()
        for _ in range(100):
            with Session(self.engine) as s:
                latest = s.execute(
                    select(
                        func.max(OutboxMessage.due_at), func.max(OutboxMessage.claimed_until)
                    ).where(col(OutboxMessage.status).in_((PENDING, CLAIMED)))
                ).one()
            times = [t for t in latest if t is not None]
            if not times:
                break
            # Past every due time and lease (the clock may have been stepped back far).
            self.clock.set(max([self.clock.now(), *times]) + timedelta(seconds=1))
            _run(d.drain())
        with Session(self.engine) as s:
            rows = list(s.execute(select(OutboxMessage)).scalars())
        assert sorted(r.key for r in rows) == sorted(self.keys), "one row per key"
        assert all(r.status in (SENT, FAILED) for r in rows), "nothing left waiting"
        self.never_sent_after_final()
        self.at_most_one_delivery_per_window()
        self.failures_say_why()
        for r in rows:
            got = self.channel.deliveries.get(r.key, [])
            if r.status == SENT:
                assert got, f"{r.key} marked sent but never delivered"
            # A timed-out send may have arrived; beyond the window WeCom no longer holds it
            # back, so each attempt may deliver once, never more.
            assert len(got) <= r.attempts, f"{r.key}: {len(got)} deliveries in {r.attempts} tries"


def run_machine(engine: Engine, *, examples: int, steps: int) -> None:
    OutboxMachine.engine = engine
    run_state_machine_as_test(
        OutboxMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_outbox_survives_crashes_restarts_failures_and_clock_jumps(engine: Engine) -> None:
    run_machine(engine, examples=50, steps=50)


def test_a_crash_after_delivery_is_not_delivered_twice(engine: Engine) -> None:
    """The scenario the machine exists for, spelled out: send, die before marking, retry."""
    OutboxMachine.engine = engine
    m = OutboxMachine()
    m.enqueue(0, ["u1", "u2"], 0)
    m.stall(0, delivered_first=True)
    m.crash()
    m.advance(61)  # the lease runs out; the other worker takes the rows again
    m.full_pass(1)
    assert {k: len(v) for k, v in m.channel.deliveries.items()} == {"m0:u1": 1, "m0:u2": 1}
    m.quiesce()
