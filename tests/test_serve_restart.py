"""Restarts and several instances: nothing sent twice, nothing still relevant missed.

- In process, on a frozen clock: the scheduler runs, stops mid-day, the clock moves on, a
  new scheduler starts; the catch-up pass sends what came due meanwhile and is still
  relevant, drops what is not, and repeats nothing.
- Real ``mofan serve`` processes on the wall clock (a 00:00–23:59 window and today made a
  workday, so that the test runs at any hour): one killed and restarted on SQLite; two side
  by side on PostgreSQL, the leader killed and the other taking over.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from bot.channels.console import ConsoleChannel
from bot.clock import SHANGHAI, FixedClock, SystemClock, local
from bot.config import Settings
from bot.models import Meeting, Member, Notice, NoticeReceipt, OutboxMessage
from bot.runtime import Runtime
from tests.conftest import PG_URL
from tests.factories import member, small_bureau

# In process -----------------------------------------------------------------------------


def _runtime(settings: Settings, engine, clock: FixedClock) -> tuple[Runtime, ConsoleChannel]:  # type: ignore[no-untyped-def]
    console = ConsoleChannel(out=io.StringIO())
    rt = Runtime(
        settings=settings,
        clock=clock,
        engine_override=engine,
        channels_override={"console": console, "wecom": console, "robot": console},
    )
    return rt, console


async def _serve_until(rt: Runtime, done: Callable[[], bool], seconds: float = 8) -> None:
    from bot.scheduler import start_scheduler

    sched = start_scheduler(rt)
    try:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # One more tick: a second pass over the same minute must add nothing.
        await asyncio.sleep(1.2)
    finally:
        sched.shutdown(wait=False)


def _sent(engine) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.scalars(select(OutboxMessage).where(col(OutboxMessage.status) == "sent")))


def test_restart_mid_day_in_process(engine, session, settings, monkeypatch):
    import bot.scheduler

    monkeypatch.setattr(bot.scheduler, "DISPATCH_SECONDS", 1)
    fast = settings.model_copy(
        update={"bot": settings.bot.model_copy(update={"scheduler_interval_seconds": 1})}
    )
    people = small_bureau(session)
    member(session, people["b1"], "寿星", userid="shouxing", joined_on=date(2010, 11, 25))
    notice = Notice(
        text="请报送推进情况",
        scope="全体",
        created_at=datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI),
    )
    session.add(notice)
    session.flush()
    for who in ("member", "member2", "other"):
        session.add(NoticeReceipt(notice_id=notice.id, member_id=people[who].id))
    soon, later = (
        Meeting(
            branch_id=people["b1"].id,
            kind="支委会",
            starts_at=datetime(2026, 11, 25, h, 0, tzinfo=SHANGHAI),
            ends_at=datetime(2026, 11, 25, h + 1, 0, tzinfo=SHANGHAI),
            created_at=datetime(2026, 11, 20, tzinfo=SHANGHAI),
        )
        for h in (15, 16)
    )
    session.add_all([soon, later])
    session.commit()

    clock = FixedClock(datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI))
    rt, first = _runtime(fast, engine, clock)
    morning = {
        f"notice:{notice.id}:nudge:member-{people[w].id}:{people[w].userid}"
        for w in ("member", "member2", "other")
    }
    asyncio.run(_serve_until(rt, lambda: morning <= {m.key for m in first.sent}))
    assert morning <= {m.key for m in first.sent}
    assert any(m.key.startswith("birthday:2026:") for m in first.sent)

    # Down from 10:07 to 15:30: the 15:00 meeting's hour-before reminder (14:0x) is no
    # longer relevant; the 16:00 meeting's (15:0x) still is.
    clock.set(datetime(2026, 11, 25, 15, 30, tzinfo=SHANGHAI))
    rt2, second = _runtime(fast, engine, clock)
    wanted = f"meeting:{later.id}:hour-before:wangshuji"
    asyncio.run(_serve_until(rt2, lambda: wanted in {m.key for m in second.sent}))
    keys2 = {m.key for m in second.sent}
    assert wanted in keys2
    assert not any(k.startswith(f"meeting:{soon.id}:hour-before") for k in keys2)
    assert not ({m.key for m in first.sent} & keys2), "something was sent twice"
    sent = _sent(engine)
    assert len({m.key for m in sent}) == len(sent) == len(first.sent) + len(second.sent)


# Real processes -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path, name: str, db_url: str) -> tuple[Path, Path]:
    today = local(SystemClock().now()).date()
    log = tmp / f"{name}.jsonl"
    cfg = tmp / f"{name}.toml"
    days = ", ".join(f'"{today + timedelta(days=d)}"' for d in (-1, 0))
    cfg.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[bot]\nsend_window = ["00:00", "23:59"]\nscheduler_interval_seconds = 5\n'
        f'console_log = "{log}"\n'
        f"[calendar]\nextra_workdays = [{days}]\n",
        encoding="utf-8",
    )
    return cfg, log


def _start(cfg: Path, out: Path) -> subprocess.Popen[bytes]:
    port = _free_port()
    with out.open("ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(out.read_text(errors="replace")) from None
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _keys(*logs: Path) -> list[str]:
    keys = []
    for log in logs:
        if log.exists():
            keys += [json.loads(line)["key"] for line in log.read_text().splitlines() if line]
    return keys


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _unconfirmed_notice(engine, who: list[Member]) -> set[str]:  # type: ignore[no-untyped-def]
    """A notice sent a little over 24 hours ago that ``who`` have not confirmed: their nudges
    are due now. Due earlier today, whatever the hour: a nudge that fell due yesterday is not
    today's (so "25 hours ago" fails between midnight and one in the morning)."""
    now = SystemClock().now()
    since_midnight = now - local(now).replace(hour=0, minute=0, second=0, microsecond=0)
    overdue = min(timedelta(hours=1), since_midnight / 2)
    with Session(engine) as s:
        n = Notice(text="请确认收到", scope="全体", created_at=now - timedelta(hours=24) - overdue)
        s.add(n)
        s.flush()
        for p in who:
            s.add(NoticeReceipt(notice_id=n.id, member_id=p.id))
        s.commit()
        return {f"notice:{n.id}:nudge:member-{p.id}:{p.userid}" for p in who}


def _members(session: Session, count: int, prefix: str) -> list[Member]:
    people = small_bureau(session)
    out = [member(session, people["b1"], userid=f"{prefix}{i:03d}") for i in range(count)]
    session.commit()
    return out


def test_serve_killed_and_restarted_sends_nothing_twice(engine, session, db_url, tmp_path):
    staff = _members(session, 20, "m")
    cfg, log = _config(tmp_path, "one", db_url)
    first_batch = _unconfirmed_notice(engine, staff[:10])
    proc = _start(cfg, tmp_path / "one.out")
    try:
        _wait(lambda: first_batch <= set(_keys(log)), 30, "the first nudges")
        proc.send_signal(signal.SIGKILL)  # a crash, not a shutdown
        proc.wait(timeout=10)
        # While it is down, more becomes due.
        second_batch = _unconfirmed_notice(engine, staff[10:])
        proc = _start(cfg, tmp_path / "one.out")
        _wait(lambda: second_batch <= set(_keys(log)), 30, "the nudges due while down")
        time.sleep(5.5)  # one more planning tick
    finally:
        _stop(proc)
    keys = _keys(log)
    twice = [k for k, n in Counter(keys).items() if n > 1]
    assert not twice, f"sent twice: {twice}"
    assert first_batch | second_batch <= set(keys)


@pytest.mark.skipif(
    not PG_URL, reason="several instances need PostgreSQL (MOFAN_TEST_DATABASE_URL)"
)
def test_two_serve_processes_on_postgresql_send_each_message_once(
    engine, session, db_url, tmp_path
):
    staff = _members(session, 40, "p")
    cfg_a, log_a = _config(tmp_path, "a", db_url)
    cfg_b, log_b = _config(tmp_path, "b", db_url)
    first_batch = _unconfirmed_notice(engine, staff[:20])
    procs = {"a": _start(cfg_a, tmp_path / "a.out"), "b": _start(cfg_b, tmp_path / "b.out")}
    try:
        _wait(lambda: first_batch <= set(_keys(log_a, log_b)), 40, "the first nudges")
        time.sleep(5.5)
        assert bool(_keys(log_a)) != bool(_keys(log_b)), "exactly one instance sends"
        leader, survivor, survivor_log = ("a", "b", log_b) if _keys(log_a) else ("b", "a", log_a)
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=10)
        second_batch = _unconfirmed_notice(engine, staff[20:])
        # The survivor takes over at its next tick (the lock frees with the dead session).
        _wait(lambda: second_batch <= set(_keys(survivor_log)), 40, f"{survivor} to take over")
        time.sleep(5.5)
    finally:
        for proc in procs.values():
            _stop(proc)
    keys = _keys(log_a, log_b)
    twice = [k for k, n in Counter(keys).items() if n > 1]
    assert not twice, f"sent twice: {twice}"
    assert first_batch | second_batch <= set(keys)
