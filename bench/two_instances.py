"""Two ``mofan serve`` processes on one PostgreSQL database for a simulated week (issue 8, item 6).

A generated bureau with a week of reminders (a year of history, plus meetings, notices with
and without deadlines and tasks on every workday) is served by two real ``mofan serve``
processes (instances a and b) on a development clock: ``MOFAN_DEV_CLOCK`` (``bot.clock``,
tests and benchmarks only) runs simulated time ``--speed`` times faster than the wall clock
from Monday 2026-12-07 08:20, with one shared anchor so that both instances, and a restarted
one, live on the same timeline. Both receive chat traffic through the encrypted callback
(帮助, 我的, 状态, 学习 …), a share of it delivered to both instances (a WeCom retry reaching
the other one). At ``--kills`` moments the instance leading the scheduler is killed with
SIGKILL and restarted a few seconds later.

Measured on the wall clock, per kill: the takeover, from the SIGKILL to the survivor's first
tick as leader ("took scheduler leadership" in its log), and as its floor the moment
PostgreSQL freed the dead session's advisory lock. The accelerated run ticks every
``DEV_MIN_TICK_SECONDS``; so a last phase runs both instances at ``x1`` (the shipped ticks:
planner 60 s, dispatcher 5 s) and kills the leader once more: that takeover is the one
production would see (target < 60 s).

Checked at the end, against ``mofan simulate`` over the same week (one process, no stop: the
baseline, with every reminder's ``relevant_until``): every outbox key sent exactly once over
both instances (their console logs); every reminder of the baseline sent, or dropped by the
documented rule (a ``dropped`` log line, and its ``relevant_until`` had passed when it was
logged); nothing sent that the baseline does not have; nothing sent outside the window;
every callback answered 200 and every 学习 recorded once however often it was delivered.

Run:  python bench/two_instances.py [--url URL] [--speed 3000] [--days 5] [--members 60]
      [--kills 2] [--traffic 4] [--no-real-takeover]
Exits non-zero on any violation, or a takeover of a minute or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from bench._serve_kit import (  # noqa: E402
    cpu_seconds,
    free_port,
    percentile,
    player,
    serve_command,
    wait_port,
    wire,
    write_config,
)
from bot.clock import DEV_CLOCK_ENV, SHANGHAI, local, to_utc  # noqa: E402

if TYPE_CHECKING:
    from sqlmodel import Session

    from bot.calendar import WorkCalendar

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/h3"
START = datetime(2026, 12, 7, 8, 20, tzinfo=SHANGHAI)
"""A Monday, shortly before the send window opens."""
QUIET = datetime(2026, 12, 12, 12, 0, tzinfo=SHANGHAI)
"""A Saturday noon: nothing is due; the x1 takeover phase runs there."""
STUDY_TOPIC = "双实例压测"
SAY = ("帮助", "我的", "状态", f"学习 30分钟 {STUDY_TOPIC}")
TOOK = "took scheduler leadership"
DROP_LINE = re.compile(
    r"^dropped (\S+) for (\S+): (?:due|queued for) \S+, no longer relevant after (\S+)"
)
TAKEOVER_TARGET = 60.0


@dataclass
class Plan:
    url: str = DEFAULT_URL
    members: int = 60
    days: int = 5
    """Workdays simulated from Monday (5: the working week)."""
    speed: float = 3000.0
    kills: int = 2
    restart_after: float = 3.0
    """Real seconds a killed instance stays down."""
    traffic: float = 4.0
    """Callback messages per real second, over both instances."""
    retry_share: float = 0.2
    """Share of the messages delivered to both instances (a WeCom retry landing elsewhere)."""
    real_takeover: bool = True
    seed: int = 7
    startup: float = 12.0
    """Real seconds allowed for both instances to start before simulated time reaches START."""
    reset: bool = True
    """Drop and re-create the schema first (False: the caller hands over an empty one)."""

    @property
    def end(self) -> datetime:
        last = START.date() + timedelta(days=self.days - 1)
        return datetime.combine(last, datetime.min.time(), tzinfo=SHANGHAI) + timedelta(
            hours=18, minutes=5
        )

    def kill_moments(self) -> list[datetime]:
        """Simulated moments of the kills, spread over the span, at odd minutes of the day."""
        span = self.end - START
        out = []
        for i in range(self.kills):
            at = START + span * (i + 1) / (self.kills + 1)
            day = local(at).date()
            hour = 10 + (i * 3) % 7  # 10:xx, 13:xx, 16:xx … inside the window
            out.append(datetime(day.year, day.month, day.day, hour, 33, tzinfo=SHANGHAI))
        return out


# The bureau --------------------------------------------------------------------------------


def build_bureau(url: str, members: int, days: int, seed: int, *, reset: bool = True) -> list[str]:
    """A generated bureau, a year of history and a week of agenda, in a fresh schema (or,
    ``reset=False``, in the empty one there is); returns the active members' userids."""
    from sqlalchemy import select
    from sqlmodel import Session, col

    from bot.config import Settings
    from bot.db import make_engine
    from bot.demo import generate_bureau
    from bot.models import Member
    from schedules.runner import calendar_for
    from tests.fakes.database import fresh_database

    engine = fresh_database(url) if reset else make_engine(url)
    with Session(engine) as session:
        generate_bureau(
            session=session,
            members=members,
            branches=max(1, members // 20),
            now=to_utc(START),
            seed=seed,
            year_of_data=True,
        )
        session.commit()
        add_week(session, days, random.Random(seed), calendar_for(Settings().calendar))
        session.commit()
        userids = list(session.scalars(select(col(Member.userid)).where(col(Member.active))))
    engine.dispose()
    return userids


def add_week(session: Session, days: int, rng: random.Random, cal: WorkCalendar) -> None:
    """On every workday: two meetings at odd times, a notice created the day before (every
    other one with a deadline six hours after its nudge), a task due two days later."""
    from sqlalchemy import select
    from sqlmodel import col

    from bot.models import Meeting, Member, Notice, NoticeReceipt, Org, Task

    branches = list(session.scalars(select(col(Org.id)).where(col(Org.kind) == "党支部")))
    people: dict[int, list[int]] = {}
    for mid, bid in session.execute(select(col(Member.id), col(Member.branch_id))):
        people.setdefault(bid, []).append(mid)
    created = to_utc(START) - timedelta(days=7)
    for d in range(days):
        day = START.date() + timedelta(days=d)
        if not cal.is_workday(day):
            continue
        for b in rng.sample(branches, k=min(2, len(branches))):
            starts = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI) + timedelta(
                hours=rng.randint(9, 16), minutes=rng.choice((0, 15, 30, 45))
            )
            session.add(
                Meeting(
                    branch_id=b,
                    kind=rng.choice(("支委会", "党课", "支部党员大会")),
                    starts_at=starts,
                    ends_at=starts + timedelta(minutes=rng.choice((60, 90))),
                    place="三楼会议室",
                    created_at=created,
                )
            )
        b = rng.choice(branches)
        at = datetime.combine(
            day - timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI
        ) + timedelta(hours=rng.randint(9, 17), minutes=rng.randint(0, 59))
        deadline = at + timedelta(hours=30) if d % 2 else None
        notice = Notice(text=f"第{d + 1}号通知：请按时报送", scope="全体", created_at=at,
                        deadline=deadline)  # fmt: skip
        session.add(notice)
        session.flush()
        for mid in rng.sample(people[b], k=min(5, len(people[b]))):
            session.add(NoticeReceipt(notice_id=notice.id, member_id=mid))
        session.add(
            Task(
                name=f"第{d + 1}项重点工作",
                branch_id=rng.choice(branches),
                due_on=day + timedelta(days=2),
                created_at=created,
            )
        )


def baseline(url: str, days: int) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """``mofan simulate`` over the span: (row key -> due moment, row key -> relevant_until)."""
    from bot.config import Settings
    from bot.simulate import simulate
    from tests.test_restart_due import recording

    settings = Settings()
    settings.database.url = url
    with recording() as until:
        messages = simulate(settings, START.date(), START.date() + timedelta(days=days - 1))
    due = {f"{p['key']}:{uid}": m.at for m in messages for p in m.parts for uid in m.to}
    return due, {k: until[k] for k in due}


# The instances -----------------------------------------------------------------------------


@dataclass
class Instance:
    name: str
    config: Path
    console: Path
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    ready: bool = False
    cpu: float = 0.0

    def spawn(self) -> None:
        self.port = free_port()
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                serve_command(self.config, self.port),
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
            )

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_port(self.port, self.proc)
        self.ready = True

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def _account(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cpu += cpu_seconds(self.proc.pid)
            except OSError:
                pass

    def kill(self) -> float:
        """SIGKILL; returns the wall-clock moment it was sent."""
        assert self.proc is not None
        self.ready = False
        self._account()
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        return at

    def stop(self) -> None:
        self.ready = False
        if self.proc is None or self.proc.poll() is not None:
            return
        self._account()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def took_after(self, moment: float) -> float | None:
        """Wall-clock time of this instance's first "took scheduler leadership" after
        ``moment``, from its JSON log lines."""
        for line in self.log.read_text(errors="replace").splitlines():
            if TOOK not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ts = datetime.fromisoformat(event["ts"]).timestamp()
            if ts >= moment:
                return ts
        return None


def make_instances(tmp: Path, url: str, clock: str) -> list[Instance]:
    out = []
    for name in ("a", "b"):
        cfg = tmp / f"{name}.toml"
        console = tmp / f"{name}.jsonl"
        write_config(cfg, url)
        with cfg.open("a", encoding="utf-8") as fh:
            fh.write(f'[bot]\nconsole_log = "{console}"\n')
        env = {**os.environ, DEV_CLOCK_ENV: clock, "PYTHONUNBUFFERED": "1"}
        out.append(Instance(name, cfg, console, tmp / f"{name}.log", env))
    return out


def both_up(instances: list[Instance]) -> None:
    """Start the instances side by side (each takes seconds to import and warm up)."""
    for inst in instances:
        inst.spawn()
    for inst in instances:
        inst.wait_ready()


def leader_of(url: str, instances: list[Instance]) -> Instance | None:
    """The instance whose process the advertised leader row names."""
    from bot.db import make_engine
    from bot.leader import LEASE_NAME
    from bot.models import AppState

    engine = make_engine(url)
    try:
        from sqlmodel import Session

        with Session(engine) as s:
            row = s.get(AppState, LEASE_NAME)
            holder = row.holder if row is not None else None
    finally:
        engine.dispose()
    pid = int(holder.rpartition(":")[2]) if holder else -1
    for inst in instances:
        if inst.ready and inst.proc is not None and inst.proc.pid == pid:
            return inst
    return None


def lock_holders(url: str) -> set[int]:
    """Backend pids holding an advisory lock in this database."""
    from sqlalchemy import text

    from bot.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            return {int(r[0]) for r in rows}
    finally:
        engine.dispose()


@dataclass
class Takeover:
    label: str
    victim: str
    survivor: str
    freed: float | None
    """Seconds from the SIGKILL until PostgreSQL had freed the dead session's lock."""
    took: float | None
    """Seconds from the SIGKILL to the survivor's first tick as leader."""


def kill_leader(url: str, instances: list[Instance], label: str, wait: float = 90) -> Takeover:
    deadline = time.monotonic() + 30
    leader = leader_of(url, instances)
    while leader is None and time.monotonic() < deadline:
        time.sleep(0.2)
        leader = leader_of(url, instances)
    if leader is None:
        raise SystemExit("no instance leads the scheduler")
    survivor = next(i for i in instances if i is not leader)
    before = lock_holders(url)
    at = leader.kill()
    freed = None
    limit = time.monotonic() + 30
    while before and time.monotonic() < limit:
        if not before & lock_holders(url):
            freed = time.time() - at
            break
        time.sleep(0.002)
    took = None
    limit = time.monotonic() + wait
    while took is None and time.monotonic() < limit:
        t = survivor.took_after(at)
        took = None if t is None else t - at
        if took is None:
            time.sleep(0.05)
    return Takeover(label, leader.name, survivor.name, freed, took)


# Traffic -----------------------------------------------------------------------------------


@dataclass
class Traffic:
    sent: int = 0
    both: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    """HTTP status -> count (0: the connection failed, e.g. the instance was being killed)."""
    latencies: list[float] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    """Message ids answered 200 by at least one instance."""
    study: set[int] = field(default_factory=set)
    """Message ids of 学习 messages sent."""
    study_answered: set[int] = field(default_factory=set)


async def _post(port: int, request: bytes) -> tuple[int, float]:
    t = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        await reader.read()
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return 0, time.perf_counter() - t
    return status, time.perf_counter() - t


async def _traffic(plan: Plan, instances: list[Instance], userids: list[str], stop: threading.Event,
                   out: Traffic) -> None:  # fmt: skip
    p = player()
    rng = random.Random(plan.seed)
    pending: set[asyncio.Task[None]] = set()
    msg_id = plan.seed * 10_000_000

    async def one(mid: int, targets: list[Instance], request: bytes, study: bool) -> None:
        results = await asyncio.gather(*(_post(i.port, request) for i in targets))
        for status, latency in results:
            out.answers[status] += 1
            if status:
                out.latencies.append(latency)
            if status == 200:
                out.answered.add(mid)
                if study:
                    out.study_answered.add(mid)

    try:
        turn = 0
        while not stop.is_set():
            live = [i for i in instances if i.ready]
            if live:
                msg_id += 1
                text = rng.choice(SAY)
                request = wire(p, rng.choice(userids), text, msg_id, close=True)
                first = live[turn % len(live)]
                turn += 1
                targets = [first]
                if len(live) > 1 and rng.random() < plan.retry_share:
                    targets.append(next(i for i in live if i is not first))
                    out.both += 1
                out.sent += 1
                study = text.startswith("学习")
                if study:
                    out.study.add(msg_id)
                task = asyncio.create_task(one(msg_id, targets, request, study))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(1 / plan.traffic)
        if pending:
            await asyncio.gather(*pending)
    finally:
        p.close()


def start_traffic(plan: Plan, instances: list[Instance], userids: list[str]
                  ) -> tuple[threading.Thread, threading.Event, Traffic]:  # fmt: skip
    stop, out = threading.Event(), Traffic()
    thread = threading.Thread(
        target=lambda: asyncio.run(_traffic(plan, instances, userids, stop, out)), daemon=True
    )
    thread.start()
    return thread, stop, out


# The run -----------------------------------------------------------------------------------


@dataclass
class Result:
    expected: int = 0
    sent: int = 0
    duplicated: int = 0
    dropped: int = 0
    missing: int = 0
    extra: int = 0
    outside: int = 0
    by_instance: Counter[str] = field(default_factory=Counter)
    at_next_opening: int = 0
    """Sent by the in-process tick at the next opening after the run (:func:`next_opening`)."""
    next_opening: datetime = START
    takeovers: list[Takeover] = field(default_factory=list)
    traffic: Traffic = field(default_factory=Traffic)
    study_rows: int = 0
    real_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def sim_at(anchor: float, speed: float, wall: float) -> datetime:
    return to_utc(START) + timedelta(seconds=(wall - anchor) * speed)


def wall_at(anchor: float, speed: float, sim: datetime) -> float:
    return anchor + (to_utc(sim) - to_utc(START)).total_seconds() / speed


def run(plan: Plan, tmp: Path, *, log: bool = True) -> Result:
    say = print if log else (lambda *a, **k: None)
    res = Result()
    userids = build_bureau(plan.url, plan.members, plan.days, plan.seed, reset=plan.reset)
    due, until = baseline(plan.url, plan.days)
    res.expected = len(due)
    say(f"baseline (mofan simulate, one process, no stop): {len(due)} reminder deliveries")

    # Simulated time reaches START once both instances are up (before it, nothing is due).
    anchor = time.time() + plan.startup
    clock = f"{START.isoformat()} x{plan.speed:g} @{anchor:.3f}"
    instances = make_instances(tmp, plan.url, clock)
    started = time.perf_counter()
    both_up(instances)
    late = time.time() - anchor
    if late > 0:
        say(f"warning: the instances were up {late:.1f} s after simulated time began")
    time.sleep(max(0.0, anchor - time.time()))
    thread, stop, traffic = start_traffic(plan, instances, userids)
    try:
        for i, moment in enumerate(plan.kill_moments()):
            time.sleep(max(0.0, wall_at(anchor, plan.speed, moment) - time.time()))
            label = f"#{i + 1} {local(moment):%a %H:%M}"
            t = kill_leader(plan.url, instances, label)
            res.takeovers.append(t)
            victim = next(x for x in instances if x.name == t.victim)
            time.sleep(plan.restart_after)
            victim.start()
        time.sleep(max(0.0, wall_at(anchor, plan.speed, plan.end) - time.time()) + 1.0)
    finally:
        stop.set()
        thread.join(timeout=30)
        for inst in instances:
            inst.stop()
    res.real_seconds = time.perf_counter() - started - plan.startup
    res.traffic = traffic
    res.cpu = {i.name: i.cpu for i in instances}
    res.next_opening, extra_sends = next_opening(plan)
    judge(plan, res, due, until, instances, anchor, extra_sends)

    if plan.real_takeover:
        # The shipped ticks (x1): planner every 60 s, dispatcher every 5 s.
        (tmp / "x1").mkdir()
        real = make_instances(tmp / "x1", plan.url, f"{QUIET.isoformat()} x1")
        try:
            both_up(real)
            res.takeovers.append(kill_leader(plan.url, real, "x1 (shipped ticks)"))
        finally:
            for inst in real:
                inst.stop()
    for t in res.takeovers:
        if t.took is None:
            res.violations.append(f"takeover {t.label}: {t.survivor} never took over")
        elif t.took >= TAKEOVER_TARGET:
            res.violations.append(f"takeover {t.label}: {t.took:.1f} s")
    return res


def next_opening(plan: Plan) -> tuple[datetime, list[str]]:
    """One more tick, in process, at the window's next opening after the run: the catch-up
    of what came due after the last tick of the last day. Ticks of the accelerated run are
    ``DEV_MIN_TICK_SECONDS`` apart, minutes of simulated time, so the last one before 18:00
    can come before the window's last minute. Returns the moment and the keys it sent."""
    from bot.calendar import next_send_slot
    from bot.clock import FixedClock
    from bot.config import Settings
    from schedules.runner import calendar_for
    from tests.test_restart_due import Instance as InProcess

    settings = Settings()
    settings.database.url = plan.url
    window = settings.bot.send_window
    at = next_send_slot(plan.end + timedelta(minutes=1), window, calendar_for(settings.calendar))
    bot = InProcess(plan.url, settings, FixedClock(at))
    asyncio.run(bot.tick())
    bot.kill()
    return at, [m.key for m in bot.console.sent]


def judge(plan: Plan, res: Result, due: dict[str, datetime], until: dict[str, datetime],
          instances: list[Instance], anchor: float, extra_sends: list[str]) -> None:  # fmt: skip
    from sqlalchemy import func, select
    from sqlmodel import Session, col

    from bot.calendar import in_send_window
    from bot.config import Settings
    from bot.db import make_engine
    from bot.models import StudyRecord
    from schedules.runner import calendar_for, planner_rules
    from tests.test_restart_due import delivered

    settings = Settings()
    cal = calendar_for(settings.calendar)
    window = settings.bot.send_window
    sends: Counter[str] = Counter()
    rules: dict[str, str] = {}
    for inst in instances:
        if not inst.console.exists():
            continue
        for line in inst.console.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            sends[row["key"]] += 1
            rules[row["key"]] = row["rule"]
            res.by_instance[inst.name] += 1
    for key in extra_sends:
        sends[key] += 1
        res.by_instance["next opening"] += 1
    res.duplicated = sum(n - 1 for n in sends.values() if n > 1)
    res.violations += [f"sent {n} times: {k}" for k, n in sends.items() if n > 1][:20]

    dropped: dict[str, tuple[datetime, datetime]] = {}
    for inst in instances:
        for line in inst.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            m = DROP_LINE.match(str(event.get("msg", "")))
            if m:
                when = sim_at(anchor, plan.speed, datetime.fromisoformat(event["ts"]).timestamp())
                dropped[f"{m.group(1)}:{m.group(2)}"] = (datetime.fromisoformat(m.group(3)), when)

    got = delivered(plan.url)
    planner = planner_rules()
    engine = make_engine(plan.url)
    try:
        with Session(engine) as s:
            res.study_rows = int(
                s.scalar(
                    select(func.count())
                    .select_from(StudyRecord)
                    .where(col(StudyRecord.topic) == STUDY_TOPIC)
                )
                or 0
            )
            from bot.models import OutboxMessage

            row_rules = {
                k: r for k, r in s.execute(select(col(OutboxMessage.key), col(OutboxMessage.rule)))
            }
    finally:
        engine.dispose()
    for key, at in got.items():
        if row_rules.get(key) not in planner:
            continue
        if key not in due:
            res.extra += 1
            res.violations.append(f"sent, not in the baseline: {key}")
        if not in_send_window(at, window, cal):
            res.outside += 1
            res.violations.append(f"sent outside the window: {key} at {local(at):%a %H:%M}")
    for key in due:
        if key in got:
            res.sent += 1
            if got[key] == to_utc(res.next_opening):
                res.at_next_opening += 1
        elif key in dropped:
            res.dropped += 1
            logged_until, when = dropped[key]
            if until[key] > when + timedelta(minutes=1) or logged_until != until[key]:
                res.violations.append(
                    f"dropped while still relevant (until {local(until[key]):%a %H:%M}, "
                    f"dropped {local(when):%a %H:%M}): {key}"
                )
        else:
            res.missing += 1
            res.violations.append(f"never sent, no drop line: {key}")
    t = res.traffic
    bad = {s: n for s, n in t.answers.items() if s not in (0, 200)}
    if bad:
        res.violations.append(f"callback answers other than 200: {bad}")
    unanswered = t.sent - len(t.answered)
    if unanswered > 2 * plan.kills + 2:
        res.violations.append(f"{unanswered} callback messages never answered")
    if not len(t.study_answered) <= res.study_rows <= len(t.study):
        res.violations.append(
            f"学习 recorded {res.study_rows} times for {len(t.study_answered)} answered "
            f"({len(t.study)} sent) messages"
        )


def report(plan: Plan, res: Result) -> None:
    span = f"{local(START):%a %Y-%m-%d %H:%M} → {local(plan.end):%a %Y-%m-%d %H:%M}"
    print(
        f"two instances on PostgreSQL, {plan.members} members, {span} at x{plan.speed:g} "
        f"({res.real_seconds:.0f} s real)"
    )
    print(
        f"reminders: {res.expected} expected, {res.sent} sent exactly once, duplicated "
        f"{res.duplicated}, dropped by the rule {res.dropped}, missing {res.missing}, extra "
        f"{res.extra}, outside the window {res.outside}; sent by a {res.by_instance['a']}, "
        f"b {res.by_instance['b']}"
    )
    print(
        f"  of which {res.at_next_opening} due after the last day's last tick went at the next "
        f"opening ({local(res.next_opening):%a %H:%M}, one in-process tick after the run)"
    )
    for t in res.takeovers:
        freed = "?" if t.freed is None else f"{t.freed * 1000:.0f} ms"
        took = "never" if t.took is None else f"{t.took:.2f} s"
        print(
            f"takeover {t.label}: {t.victim} killed; PostgreSQL freed its lock after {freed} "
            f"(baseline); {t.survivor} led after {took}; target < {TAKEOVER_TARGET:.0f} s: "
            f"{'OK' if t.took is not None and t.took < TAKEOVER_TARGET else 'MISSED'}"
        )
    t = res.traffic
    lat = sorted(t.latencies)
    print(
        f"traffic: {t.sent} messages ({t.both} to both instances), answers "
        f"{dict(sorted(t.answers.items()))} (0 = connection cut by a kill), p50 "
        f"{percentile(lat, 0.5) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms; "
        f"学习 recorded {res.study_rows} times for {len(t.study_answered)} answered"
    )
    print(
        "CPU: "
        + ", ".join(f"instance {k} {v:.1f} s" for k, v in res.cpu.items())
        + f"; this process {time.process_time():.1f} s"
    )
    if res.violations:
        print(f"VIOLATIONS ({len(res.violations)}):")
        for v in res.violations[:40]:
            print("  " + v)
    else:
        print("no violation")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL database (emptied first)")
    ap.add_argument("--members", type=int, default=Plan.members)
    ap.add_argument("--days", type=int, default=Plan.days, help="workdays from Monday")
    ap.add_argument("--speed", type=float, default=Plan.speed, help="simulated seconds per second")
    ap.add_argument("--kills", type=int, default=Plan.kills)
    ap.add_argument("--traffic", type=float, default=Plan.traffic, help="messages per second")
    ap.add_argument("--no-real-takeover", action="store_true", help="skip the x1 phase")
    ap.add_argument("--seed", type=int, default=Plan.seed)
    args = ap.parse_args()
    if not args.url.startswith("postgresql"):
        raise SystemExit("two instances need PostgreSQL (--url postgresql+psycopg://…)")
    plan = Plan(
        url=args.url,
        members=args.members,
        days=args.days,
        speed=args.speed,
        kills=args.kills,
        traffic=args.traffic,
        real_takeover=not args.no_real_takeover,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="mofan-two-") as tmp:
        res = run(plan, Path(tmp))
        report(plan, res)
    sys.exit(1 if res.violations else 0)


if __name__ == "__main__":
    main()
