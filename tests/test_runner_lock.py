"""A planning pass on SQLite completes while members are chatting: a write committed by a
callback between the pass's reads and its writes must not cost the pass (found by
bench/load_serve.py: under steady chat most passes failed with "database is locked")."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

import schedules.runner as runner
from bot.models import InboundMessage, OutboxMessage
from schedules.runner import run_pass
from tests.chatkit import shanghai
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    bool(PG_URL), reason="the stale-snapshot race is SQLite's (PostgreSQL writers just wait)"
)

DUES_DAY = shanghai(2026, 12, 4, 9, 20)  # a Friday, December's 党费日: reminders to everyone


def _chat_write(engine, key: str, userid: str) -> None:  # type: ignore[no-untyped-def]
    """What a member's message commits: the record of the handled message."""
    with Session(engine) as s:
        s.add(InboundMessage(dedupe_key=key, userid=userid, received_at=DUES_DAY, reply="{}"))
        s.commit()


def _keys(engine) -> list[str]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.scalars(select(col(OutboxMessage.key))))


def test_a_write_between_the_pass_reads_and_writes_does_not_lose_the_pass(
    engine, settings, bureau, monkeypatch
):
    member = bureau["member"]
    real_load = runner.load_plan_data
    raced: list[datetime] = []

    def load_then_a_member_writes(*args, **kwargs):  # type: ignore[no-untyped-def]
        data = real_load(*args, **kwargs)
        if not raced:  # a callback commits once, after the pass has read
            raced.append(DUES_DAY)
            _chat_write(engine, "race:1", member.userid)
        return data

    monkeypatch.setattr(runner, "load_plan_data", load_then_a_member_writes)
    result = run_pass(engine, settings, DUES_DAY)
    assert raced, "the race was staged"
    assert result.enqueued > 0
    assert any(k.startswith("dues:2026-12:") for k in _keys(engine))
    # And once only: a later pass over the same minute adds nothing.
    assert run_pass(engine, settings, DUES_DAY).enqueued == 0


def test_passes_complete_under_steady_chat(engine, settings, bureau):
    member = bureau["member"]
    stop = threading.Event()
    writes = 0

    def chatting() -> None:
        nonlocal writes
        while not stop.is_set():
            _chat_write(engine, f"chat:{writes}", member.userid)
            writes += 1
            time.sleep(0.002)

    talker = threading.Thread(target=chatting)
    talker.start()
    try:
        while writes < 3:
            time.sleep(0.001)
        before = writes
        results = [run_pass(engine, settings, DUES_DAY + timedelta(minutes=i)) for i in range(3)]
        during = writes - before
    finally:
        stop.set()
        talker.join()
    assert during > 0, "the members were chatting during the passes"
    assert results[0].enqueued > 0
    keys = _keys(engine)
    assert len(keys) == len(set(keys))
