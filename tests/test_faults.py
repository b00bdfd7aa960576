"""Faults during a broadcast (issue 8 item 2): every member gets the notice exactly once.

The office sends ``通知 全体 …`` through the encrypted callback of a real ``mofan serve``
process. While the notice goes out to every member through the fake WeCom on loopback:

- the fake answers 45009, -1, expired and unknown tokens (42001/40014) and late answers to
  calls it did carry out (timeouts) at random, from a seed (:class:`bot.fake_wecom.Chaos`);
- the server is killed with SIGKILL and restarted, twice: once while WeCom holds the answer
  to a call it carried out (the bot cannot know the members got it), once at a random moment;
- the database is unavailable for a few seconds while another such answer is on its way —
  on PostgreSQL a TCP proxy between the bot and the server drops every connection and
  refuses new ones (a PostgreSQL restart, :mod:`tests.fakes.tcp_proxy`); on SQLite another
  connection holds the write lock (``BEGIN IMMEDIATE``).

Afterwards, counted from what the fake WeCom delivered (with WeCom's own duplicate check
applied, as members would see it): every member has the notice exactly once, and the outbox
holds nothing waiting — only failures the bot recorded with their reason.
``bench/faults.py`` runs the same scenario at 1,000–5,000 members and prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlmodel import Session, col

from bot.channels.wecom import WeComChannel
from bot.clock import SystemClock, local
from bot.config import OutboxSettings
from bot.db import make_engine
from bot.fake_wecom import (
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
    TIMEOUT,
    Chaos,
    FakeWeCom,
)
from bot.models import Member, Notice, NoticeReceipt, OutboxMessage
from bot.outbox import Dispatcher, Outgoing, enqueue, text_body
from tests.conftest import PG_URL
from tests.fakes import wecom as wecom_fakes
from tests.fakes.live import LiveServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.wecom import player_for

NOTICE = "请各支部于本周五前报送组织生活会方案，收到后点「确认收到」。"
RATES: dict[int | str, float] = {45009: 0.08, -1: 0.08, TIMEOUT: 0.06, 42001: 0.04, 40014: 0.03}
"""Chance per message/send call of each fault (about three calls in ten meet one)."""

SETTLED_UNSENT = ("failed", "unknown")
"""Outbox states of a row the bot gave up on, with its reason (``unknown``: it may have
arrived, and resending it could arrive twice)."""

# The child process: ``mofan`` with the dispatcher's tick shortened when a test asks for it.
LAUNCH = (
    "import faulthandler, signal, sys\n"
    "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
    "tick = float(sys.argv.pop(1))\n"
    "if tick:\n"
    "    import bot.scheduler\n"
    "    bot.scheduler.DISPATCH_SECONDS = tick\n"
    "sys.argv[0] = 'mofan'\n"
    "from bot.cli import main\n"
    "main()\n"
)


@dataclass
class Plan:
    members: int = 200
    seed: int = 8
    faults: bool = True
    """False: the baseline — the same broadcast with no fault at all."""
    rates: dict[int | str, float] = field(default_factory=lambda: dict(RATES))
    kills: int = 2
    outage: float = 4.0
    """Seconds the database is unavailable (0: no outage)."""
    batch_size: int = 25
    """outbox.batch_size: rows per claim, i.e. per dispatcher pass."""
    lease_seconds: int = 5
    backoff: tuple[float, float] = (1.0, 8.0)
    """outbox.backoff_seconds and backoff_max_seconds."""
    api_timeout: float = 2.0
    """wecom.timeout_seconds; a chaos timeout answers 1.5 times this late."""
    latency: float = 0.02
    """Seconds the fake takes for every call (WeCom's own latency)."""
    dispatch_seconds: float = 0.0
    """The dispatcher's tick; 0: as shipped (5 s)."""
    deadline: float = 120.0
    """Seconds allowed after the last fault for the outbox to drain."""


@dataclass
class Outcome:
    backend: str
    members: int = 0
    once: int = 0
    missing: list[str] = field(default_factory=list)
    doubled: dict[str, int] = field(default_factory=dict)
    rows: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    """userid → last_error of the rows the bot gave up on."""
    seconds: float = 0.0
    """From the office's 通知 to the last member's first copy."""
    drained: float = 0.0
    """From the office's 通知 until nothing of the notice was waiting in the outbox."""
    calls: int = 0
    """message/send calls carrying the notice (any answer)."""
    suppressed: int = 0
    """Of those, calls WeCom's duplicate check swallowed (answered ok, delivered nothing)."""
    faults: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    """Outbox attempts over all the notice's rows (one each without faults)."""
    kills: int = 0
    outages: int = 0
    logged_failures: int = 0
    """Rows the bot's log says it gave up on ("outbox pass: … failed=N")."""
    logged_errors: int = 0
    """Records the bot logged at level error (an outage makes some: that is expected)."""
    bot_cpu: float = 0.0
    timeline: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the 通知, what happened)."""
    violations: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        f = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return [
            f"backend {self.backend}: {self.members} members; kills {self.kills}, "
            f"database outages {self.outages}",
            f"notice exactly once: {self.once} of {self.members}; missing {len(self.missing)}, "
            f"twice or more {len(self.doubled)}; given up (reported) {len(self.failed)}",
            f"outbox rows: {dict(self.rows)}",
            f"time to deliver: {self.seconds:.1f} s (outbox drained after {self.drained:.1f} s)",
            f"message/send calls with the notice: {self.calls}, of which swallowed by the "
            f"duplicate check {self.suppressed}; outbox attempts {self.attempts} for "
            f"{self.members} rows ({self.attempts - self.members} retries)",
            f"faults the fake injected: {f}",
            f"bot log: {self.logged_errors} errors, {self.logged_failures} "
            f"give-ups reported; bot CPU {self.bot_cpu:.1f} s",
            "timeline: " + ", ".join(f"{t:.1f} s {what}" for t, what in self.timeline),
        ]


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """``mofan serve`` as a child process: started, killed, restarted; its CPU counted."""

    def __init__(self, cfg: Path, log: Path, dispatch_seconds: float) -> None:
        self.cfg, self.log, self.tick = cfg, log, dispatch_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.cpu = 0.0

    def start(self, timeout: float = 30) -> str:
        port = free_port()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, str(self.tick), "--config", str(self.cfg)]
                + ["serve", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return self.url
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise AssertionError(f"mofan serve did not start:\n{tail}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        self._end(signal.SIGKILL, 10)

    def dump_stacks(self) -> None:
        """Every thread's stack into the log (faulthandler, registered at launch)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)

    def stop(self) -> int:
        """SIGTERM (a graceful stop); returns the exit status."""
        return self._end(signal.SIGTERM, 20)

    def _end(self, sig: int, timeout: float) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while proc.returncode is None:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu += usage.ru_utime + usage.ru_stime
            elif time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)
                deadline += 10
            else:
                time.sleep(0.05)
        return proc.returncode


@contextmanager
def sqlite_write_lock(path: str, seconds: float) -> Iterator[threading.Thread]:
    """Another connection holds SQLite's write lock for ``seconds`` (in a thread)."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    t = threading.Thread(target=hold, name="sqlite-writer", daemon=True)
    t.start()
    taken.wait(10)
    try:
        yield t
    finally:
        t.join(seconds + 30)


def is_notice(body: Any) -> bool:
    """A message/send request (or a delivered message) carrying a notice card."""
    card = body.get("template_card") if isinstance(body, dict) else None
    return isinstance(card, dict) and str(card.get("task_id", "")).startswith("notice-")


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the scenario ----------------------------------------------------------------------------


def prepare(engine: Engine, members: int, seed: int) -> None:
    """A synthetic bureau of ``members`` (the first one, ``office``, is 党委办)."""
    from bot.demo import generate_bureau

    with Session(engine) as session:
        generate_bureau(
            session=session,
            members=members,
            branches=max(1, min(50, members // 40)),
            now=SystemClock().now(),
            seed=seed,
        )
        session.commit()


def write_config(path: Path, plan: Plan, db_url: str, api_base: str) -> None:
    today = local(SystemClock().now()).date()
    days = ", ".join(f'"{today + timedelta(days=d)}"' for d in (-1, 0, 1))
    path.write_text(
        "\n".join(
            [
                "[database]",
                f'url = "{db_url}"',
                "[bot]",
                'channel = "wecom"',
                'send_window = ["00:00", "23:59"]',
                "[calendar]",
                f"extra_workdays = [{days}]",
                "[wecom]",
                f'corp_id = "{DEFAULT_CORP_ID}"',
                f"agent_id = {DEFAULT_AGENT_ID}",
                f'secret = "{DEFAULT_SECRET}"',
                f'token = "{DEFAULT_TOKEN}"',
                f'encoding_aes_key = "{DEFAULT_AES_KEY}"',
                f'api_base = "{api_base}"',
                f"timeout_seconds = {plan.api_timeout}",
                "[outbox]",
                f"batch_size = {plan.batch_size}",
                f"lease_seconds = {plan.lease_seconds}",
                f"backoff_seconds = {plan.backoff[0]}",
                f"backoff_max_seconds = {plan.backoff[1]}",
                "",
            ]
        ),
        encoding="utf-8",
    )


class Scenario:
    """One run: the fake WeCom, the bot process, the proxy (PostgreSQL), the faults, the count."""

    def __init__(self, plan: Plan, db_url: str, workdir: Path) -> None:
        self.plan = plan
        self.db_url = db_url
        self.workdir = workdir
        self.pg = db_url.startswith("postgresql")
        self.engine = make_engine(db_url)
        self.rng = random.Random(plan.seed)
        self.fake = FakeWeCom(latency=plan.latency)
        self.outcome = Outcome(backend="postgresql" if self.pg else "sqlite")
        self.notice_id: int | None = None
        self.sent_at = 0.0
        self.sent_wall = datetime.now(UTC)

    def run(self) -> Outcome:
        plan = self.plan
        prepare(self.engine, plan.members, plan.seed)
        proxy: TcpProxy | None = None
        bot_db = self.db_url
        if self.pg:
            url = make_url(self.db_url)
            proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
            proxy.start()
            bot_db = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        server = LiveServer(self.fake.app)
        api_base = server.start()
        cfg = self.workdir / "faults.toml"
        write_config(cfg, plan, bot_db, api_base)
        bot = BotProcess(cfg, self.workdir / "bot.log", plan.dispatch_seconds)
        try:
            bot.start()
            self._broadcast_and_fault(bot, proxy)
            if not self._settle():
                bot.dump_stacks()
        finally:
            status = bot.stop()
            server.stop()
            if proxy is not None:
                proxy.close()
        if status not in (0, -signal.SIGTERM):
            self.outcome.violations.append(f"mofan serve exited with {status} on SIGTERM")
        self.outcome.bot_cpu = bot.cpu
        self._count()
        self.engine.dispose()
        return self.outcome

    # what happens

    def _note(self, what: str) -> None:
        self.outcome.timeline.append((time.monotonic() - self.sent_at, what))

    def _broadcast_and_fault(self, bot: BotProcess, proxy: TcpProxy | None) -> None:
        plan, fake = self.plan, self.fake
        tick = plan.dispatch_seconds or 5.0
        if plan.faults:
            fake.set_chaos(Chaos(rates=plan.rates, seed=plan.seed, stall=plan.api_timeout * 1.5))
            if plan.kills:
                # The first call of the broadcast is carried out, its answer held back.
                fake.stall("message/send", plan.api_timeout * 1.5, match=is_notice)
        with player_for(bot.url) as player:
            self.sent_at, self.sent_wall = time.monotonic(), datetime.now(UTC)
            reply = player.say("office", f"通知 全体 {NOTICE}")
        assert reply.status == 200, reply
        with Session(self.engine) as s:
            self.notice_id = s.scalar(select(func.max(Notice.id)))
        assert self.notice_id is not None, f"no notice was recorded; the bot said {reply}"
        if not plan.faults:
            return
        for k in range(plan.kills):
            if k == 0:
                # Killed while WeCom holds the answer to a call it carried out.
                when = "an answer held" if wait_for(self._holding(1), 4 * tick + 10) else "late"
            else:
                # Killed at a random moment once more of the notice has gone out.
                wait_for(self._more_than(self._delivered()), 4 * tick + 10)
                time.sleep(self.rng.uniform(0, tick))
                when = "at random"
            bot.kill()
            self.outcome.kills += 1
            self._note(f"killed, {when} ({self._delivered()} delivered)")
            bot.start()
            self._note("restarted")
        if plan.outage:
            # The database goes away while the answer to a call is on its way to the bot:
            # it cannot mark what it sent.
            fake.stall("message/send", min(1.0, plan.api_timeout / 2), match=is_notice)
            held = wait_for(self._holding(fake.faults["held"] + 1), 3 * tick + 5)
            self.outcome.outages += 1
            self._note(
                f"database away, {'an answer held' if held else 'no call going'} "
                f"({self._delivered()} delivered)"
            )
            if proxy is not None:
                proxy.outage(plan.outage, wait=True)
            else:
                path = make_url(self.db_url).database or ""
                with sqlite_write_lock(path, plan.outage):
                    pass
            self._note("database back")

    def _settle(self) -> bool:
        """Wait until nothing of the notice waits in the outbox and WeCom holds no answer,
        then two more ticks: nothing may go out after that. False if it never drained."""
        plan = self.plan
        tick = plan.dispatch_seconds or 5.0
        if not wait_for(lambda: not self._waiting() and self.fake.held == 0, plan.deadline):
            self.outcome.violations.append(
                f"the outbox did not drain within {plan.deadline:.0f} s of the last fault "
                f"(thread stacks at the end of {self.workdir / 'bot.log'})"
            )
            return False
        self.outcome.drained = time.monotonic() - self.sent_at
        self._note("outbox drained")
        before = self._delivered()
        time.sleep(2 * tick + 0.5)
        if self._delivered() != before:
            self.outcome.violations.append(
                "the notice was still going out after the outbox drained"
            )
        return True

    # counting

    def _is_notice(self, message: dict[str, Any]) -> bool:
        card = message.get("template_card") if message.get("msgtype") == "template_card" else None
        return isinstance(card, dict) and str(card.get("task_id", "")).startswith(
            f"notice-{self.notice_id}_"
        )

    def _holding(self, stalls: int) -> Callable[[], bool]:
        """The ``stalls``-th call told to stall (a notice's) was carried out, and its answer
        is held back now (not only some chaos timeout's)."""
        fake = self.fake
        return lambda: fake.faults["held"] >= stalls and fake.held > 0 and self._delivered() > 0

    def _more_than(self, seen: int) -> Callable[[], bool]:
        return lambda: self._delivered() > seen

    def _delivered(self) -> int:
        return self.fake.copies(self._is_notice).total()

    def _waiting(self) -> int:
        with Session(self.engine) as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(
                        col(OutboxMessage.key).startswith(f"notice:{self.notice_id}:"),
                        col(OutboxMessage.status).in_(("pending", "claimed")),
                    )
                )
                or 0
            )

    def _count(self) -> None:
        out, fake = self.outcome, self.fake
        with Session(self.engine) as s:
            userids = [
                u.lower()
                for u in s.scalars(
                    select(col(Member.userid))
                    .join(NoticeReceipt, col(NoticeReceipt.member_id) == col(Member.id))
                    .where(col(NoticeReceipt.notice_id) == self.notice_id)
                )
            ]
            rows = list(
                s.scalars(
                    select(OutboxMessage).where(
                        col(OutboxMessage.key).startswith(f"notice:{self.notice_id}:")
                    )
                )
            )
        out.members = len(userids)
        out.rows = Counter(r.status for r in rows)
        out.attempts = sum(r.attempts for r in rows)
        out.failed = {
            r.recipient.lower(): r.last_error or "" for r in rows if r.status in SETTLED_UNSENT
        }
        got = fake.copies(self._is_notice)
        copies = {u: got[u] for u in userids}
        strangers = set(got) - set(userids)
        if strangers:
            out.violations.append(f"the notice reached non-recipients: {sorted(strangers)[:5]}")
        out.once = sum(1 for n in copies.values() if n == 1)
        out.missing = sorted(u for u, n in copies.items() if n == 0 and u not in out.failed)
        out.doubled = {u: n for u, n in copies.items() if n > 1}
        if len(rows) != len(userids):
            out.violations.append(f"{len(rows)} outbox rows for {len(userids)} recipients")
        if out.missing:
            out.violations.append(
                f"{len(out.missing)} members never got the notice: {out.missing[:5]}"
            )
        if out.doubled:
            out.violations.append(
                f"{len(out.doubled)} members got it more than once: {dict(list(out.doubled.items())[:5])}"
            )
        waiting = out.rows["pending"] + out.rows["claimed"]
        if waiting:
            out.violations.append(f"{waiting} rows still waiting in the outbox")
        silent = [u for u, why in out.failed.items() if not why]
        if silent:
            out.violations.append(f"{len(silent)} rows failed without a reason: {silent[:5]}")
        first: dict[str, datetime] = {}
        for c in fake.calls_to("message/send"):
            body = c["body"] if isinstance(c["body"], dict) else {}
            if not self._is_notice(body):
                continue
            out.calls += 1
            if c["errcode"] == 0 and c["answer"].get("duplicate"):
                out.suppressed += 1
            elif c["errcode"] == 0:
                at = datetime.fromisoformat(c["at"])
                for u in str(body.get("touser", "")).lower().split("|"):
                    first.setdefault(u, at)
        out.faults = Counter(fake.faults)
        log = self.workdir / "bot.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            try:
                record = json.loads(line)  # the bot logs JSON lines
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            message = str(record.get("msg", ""))
            if record.get("level") == "error":
                out.logged_errors += 1
            if message.startswith("outbox pass:") and "failed=" in message:
                out.logged_failures += int(message.rsplit("failed=", 1)[1].split()[0])
        if first:
            out.seconds = (max(first.values()) - self.sent_wall).total_seconds()


def run_scenario(plan: Plan, db_url: str, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    return Scenario(plan, db_url, workdir).run()


# --- the tests -------------------------------------------------------------------------------


def test_a_broadcast_survives_kills_faults_and_a_database_outage(db_url, tmp_path):
    plan = Plan(
        members=100,
        batch_size=20,
        dispatch_seconds=1.0,
        api_timeout=1.0,
        backoff=(0.5, 2.0),
        outage=3.0,
        deadline=30,
    )
    outcome = run_scenario(plan, db_url, tmp_path)
    report = "\n".join(outcome.lines() + outcome.violations)
    print(report)  # shown with -s, and on failure
    assert not outcome.violations, report
    assert outcome.kills == 2 and outcome.outages == 1
    # The faults did happen: a call carried out while the bot was killed, and WeCom's
    # duplicate check swallowed at least its retry.
    assert outcome.faults["held"] >= 2 and sum(outcome.faults.values()) > 2, report
    assert outcome.suppressed >= 1, report


# --- the defects it found, in process ---------------------------------------------------------

fake_wecom = wecom_fakes.fake_wecom  # the fixtures, used by name
wecom_settings = wecom_fakes.wecom_settings


def _put(engine: Engine, now: datetime, users: list[str], body: dict[str, Any]) -> None:
    with Session(engine) as s:
        enqueue(s, [Outgoing(f"n1:{u}", u, body, now) for u in users], now=now)
        s.commit()


def test_a_send_whose_answer_was_lost_is_retried_as_the_very_same_request(
    wecom_settings, engine, clock, fake_wecom
):
    """WeCom carried out a call whose answer never came (a timeout): the rows are retried
    later, mixed with other rows — yet WeCom's duplicate check only drops an *identical*
    request, so every later try of those rows must be that request again."""
    wecom_settings.wecom.timeout_seconds = 0.3
    users = [f"u{i}" for i in range(1, 6)]
    _put(engine, clock.now(), users, text_body("请于周五前报送方案"))

    async def scenario() -> None:
        ch = WeComChannel(settings=wecom_settings, engine=engine, clock=clock)
        d = Dispatcher(
            engine=engine,
            channels={"wecom": ch},
            clock=clock,
            settings=OutboxSettings(batch_size=3, backoff_seconds=1),
        )
        try:
            await ch.api.token()
            fake_wecom.stall("message/send", 1.0)
            await d.run_once()  # u1–u3 delivered, the answer lost
            assert fake_wecom.faults["held"] == 1
            clock.advance(seconds=5)
            fake_wecom.fail("message/send", -1)  # and the next try is refused outright
            for _ in range(6):
                await d.run_once()
                clock.advance(seconds=60)
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert {u: len(fake_wecom.received(u)) for u in users} == {u: 1 for u in users}
    with Session(engine) as s:
        assert set(s.scalars(select(col(OutboxMessage.status)))) == {"sent"}


class _FlakyLeader:
    """Leads, except while ``down`` (its database check failing, as in an outage)."""

    holder = "flaky:1"

    def __init__(self) -> None:
        self.down = False

    def ensure(self, now: datetime) -> bool:
        return not self.down

    def release(self, now: datetime) -> None:
        return None


def test_the_dispatcher_goes_on_at_once_after_the_database_comes_back(
    runtime, engine, clock, monkeypatch
):
    """A leadership check that fails for a moment (the database away) must not stop the
    sending until the next planning interval (a minute by default)."""
    import bot.scheduler
    from bot.scheduler import start_scheduler

    monkeypatch.setattr(bot.scheduler, "DISPATCH_SECONDS", 0.2)
    leader = _FlakyLeader()

    def status(key: str) -> str | None:
        with Session(engine) as s:
            return s.scalar(select(col(OutboxMessage.status)).where(col(OutboxMessage.key) == key))

    async def scenario() -> None:
        sched = start_scheduler(runtime, leader)  # type: ignore[arg-type]
        try:
            _put(engine, clock.now(), ["before"], text_body("一"))
            for _ in range(100):
                if status("n1:before") == "sent":
                    break
                await asyncio.sleep(0.05)
            assert status("n1:before") == "sent"
            leader.down = True
            await asyncio.sleep(0.6)  # some ticks find the database away
            leader.down = False
            _put(engine, clock.now(), ["after"], text_body("二"))
            for _ in range(60):  # 3 s: fifteen dispatch ticks
                if status("n1:after") == "sent":
                    break
                await asyncio.sleep(0.05)
        finally:
            sched.shutdown(wait=False)

    asyncio.run(scenario())
    assert status("n1:after") == "sent"


# --- the TCP proxy that plays a PostgreSQL restart --------------------------------------------


@contextmanager
def _echo_server() -> Iterator[int]:
    """A loopback server that echoes every line back, one thread per connection."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: _echo(c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        srv.close()


def _echo(conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):  # the proxy resets it
        while data := conn.recv(1024):
            conn.sendall(data)


def test_the_tcp_proxy_drops_every_connection_and_refuses_new_ones_until_back():
    with _echo_server() as port, TcpProxy(("127.0.0.1", port)) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        client.sendall(b"ping")
        assert client.recv(16) == b"ping"
        proxy.outage(0.5)
        with pytest.raises(ConnectionError):  # reset, or closed under our feet
            client.sendall(b"again")
            if not client.recv(16):
                raise ConnectionResetError("closed")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        assert wait_for(lambda: proxy.listening, 3)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as again:
            again.sendall(b"pong")
            assert again.recv(16) == b"pong"
        assert (proxy.stats.accepted, proxy.stats.dropped, proxy.stats.outages) == (2, 1, 1)
        client.close()


@pytest.mark.skipif(
    not PG_URL,
    reason="a PostgreSQL restart is played by a TCP proxy in front of PostgreSQL "
    "(MOFAN_TEST_DATABASE_URL); on SQLite the outage is another writer's lock (above)",
)
def test_a_postgresql_restart_ends_the_leaders_session_and_the_pool_recovers(engine):
    from sqlalchemy import text

    from bot.leader import AdvisoryLockLeader

    url = make_url(PG_URL or "")
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = make_engine(
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        leader, other = AdvisoryLockLeader(proxied, "a:1"), AdvisoryLockLeader(engine, "b:2")
        now = SystemClock().now()
        try:
            assert leader.ensure(now) and not other.ensure(now)
            proxy.cut()
            # The server saw the session end: its advisory lock is free for another instance.
            assert wait_for(lambda: other.ensure(SystemClock().now()), 5)
            assert not leader.ensure(now)  # refused: and it knows it no longer leads
            other.release(now)
            proxy.restore()
            assert leader.ensure(SystemClock().now())  # back, and leading again
            with proxied.connect() as conn:  # the pool's dead connections were replaced
                assert conn.execute(text("SELECT 1")).scalar() == 1
        finally:
            leader.release(now)
            proxied.dispose()
