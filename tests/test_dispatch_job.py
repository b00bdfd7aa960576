"""The serving process's dispatch tick: a notice to the whole bureau goes out in one tick, not
one batch per tick (found by bench/faults.py: 5,000 members took 25 s at 1,000 a tick)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.leader import make_leader
from bot.models import OutboxMessage
from bot.outbox import SENT, Outgoing, enqueue, text_body
from bot.scheduler import dispatch_job


def test_one_tick_sends_every_full_batch_waiting(engine, settings, clock, runtime):
    settings.outbox.batch_size = 3  # the runtime's dispatcher reads these same settings
    with Session(engine) as s:
        enqueue(
            s,
            [
                Outgoing(f"n:{i}", f"u{i}", text_body("通知"), clock.now(), channel="console")
                for i in range(10)
            ],
            now=clock.now(),
        )
        s.commit()
    leader = make_leader(engine, "host:1")

    async def tick() -> None:
        from bot.scheduler import _PLANNED

        _PLANNED[leader] = True  # the catch-up pass is not what this is about
        await dispatch_job(runtime, leader)

    try:
        asyncio.run(tick())
    finally:
        # On PostgreSQL the leader holds the scheduler's advisory lock on its own connection:
        # let go of it, or every later test's `mofan serve` waits forever to lead.
        leader.release(clock.now())
        lock_engine = getattr(leader, "lock_engine", None)
        if lock_engine is not None:
            lock_engine.dispose()
    with Session(engine) as s:
        sent = s.scalar(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.status) == SENT)
        )
    assert sent == 10
