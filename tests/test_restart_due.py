"""Restart across due times (issue 8, item 5): the bot is down for 2 s, 60 s, 30 min or 8 h
across reminder times, and every reminder is sent once or dropped by the documented rule.

The rule (DESIGN §4.6, issue 5, ``schedules.base``): a reminder missed while the bot was down
still goes out at the first pass after the restart if it still makes sense (its
``relevant_until`` is ahead: the deadline has not passed, the meeting has not started), and
is dropped with a log line otherwise. Nothing goes out twice and nothing outside the send
window.

How: real downtime of 8 hours is impossible, so the engine runs in process on a
:class:`~bot.clock.FixedClock`, the same code ``mofan serve`` runs at each tick
(``bot.scheduler.plan_job`` and ``dispatch_job``: the leader election, the planning pass of
``schedules.runner``, the outbox ``Dispatcher``) into a console channel. "The bot" runs from
the window's opening to a stop time T, dies (no shutdown: the leader does not release), the
clock moves on by the downtime without anything running, and a fresh instance (its own
engine, runtime, dispatcher and leader on the same database, as a real restart) runs to the
end of the next workday. It ticks at every moment something is due, at the window's
opening and in its last second: between those nothing can become due, so this is a
minute-by-minute serve without the idle minutes.

The oracle is the same two days run without a stop (``bot.simulate``, which steps from due
moment to due moment), with every reminder's ``relevant_until`` recorded as the rules return
it. For a stop at T and a restart at R, whose first pass in the window is at P:

- due at or before the last tick that dispatched: sent before the stop;
- due after it and up to P (missed): sent at P if ``relevant_until`` > P, else not sent and a
  ``dropped`` log line names it;
- due after P: sent on time.

The parts here are shared with ``bench/restart_due.py``, which sweeps many more stop times.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlmodel import Session, col

from bot.calendar import in_send_window, local_date, next_send_slot
from bot.channels.base import Channel, OutboxRow, SendOutcome
from bot.channels.console import ConsoleChannel
from bot.clock import SHANGHAI, FixedClock, local
from bot.config import Settings
from bot.db import make_engine
from bot.leader import AdvisoryLockLeader, Leader, make_leader
from bot.models import Attendance, Meeting, Notice, NoticeReceipt, OutboxMessage, Task
from bot.runtime import Runtime
from tests.factories import member, small_bureau

DAY = date(2026, 12, 7)
"""A Monday: the weekly digest, and (with ``dues.day = 7``) 党费日."""
NEXT = date(2026, 12, 8)
DOWNTIMES = {
    "2s": timedelta(seconds=2),
    "60s": timedelta(seconds=60),
    "30min": timedelta(minutes=30),
    "8h": timedelta(hours=8),
}
DROPPED = re.compile(r"^dropped (\S+) for (\S+):")


def sh(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=SHANGHAI)


def day_settings(settings: Settings) -> Settings:
    """The test settings with 党费日 on :data:`DAY`."""
    out = settings.model_copy(deep=True)
    out.dues.day = DAY.day
    return out


# The bureau -------------------------------------------------------------------------------


def build_bureau(session: Session) -> dict[str, Any]:
    """small_bureau plus reminders due at many moments of :data:`DAY` and :data:`NEXT`:

    - 09:0x: dues (nobody paid), the weekly digest, a 政治生日 greeting, a task due
      tomorrow (T-1), an overdue task, the hour-before reminder of a 10:00 meeting (until
      10:00) and the day-before reminder of tomorrow's 10:00 meeting;
    - 11:2x: notice nudges (relevant for a week);
    - 13:3x: the hour-before reminder of a 14:30 meeting (until 14:30);
    - 15:1x: a nudge for a notice whose deadline is 16:00 (until 16:00);
    - 15:3x: the 14:30 meeting's attendance confirmation (a week);
    - 17:4x: a late nudge (a week); the next day, second nudges and the secretaries' lists.
    """
    people = small_bureau(session)
    b1, g1 = people["b1"], people["g1"]
    member(session, b1, "生日", userid="shengri", joined_on=date(2011, DAY.month, DAY.day))
    created = sh(DAY, 8, 0) - timedelta(days=7)

    def meeting(kind: str, start: datetime, minutes: int = 60, group: Any = None) -> Meeting:
        m = Meeting(
            branch_id=b1.id,
            group_id=group.id if group else None,
            kind=kind,
            starts_at=start,
            ends_at=start + timedelta(minutes=minutes),
            place="三楼会议室",
            created_at=created,
        )
        session.add(m)
        session.flush()
        return m

    morning = meeting("支委会", sh(DAY, 10, 0))
    afternoon = meeting("党小组会", sh(DAY, 14, 30), group=g1)
    tomorrow = meeting("支部党员大会", sh(NEXT, 10, 0))
    for m, who in ((morning, ("secretary", "committee")), (afternoon, ("committee", "member"))):
        for w in who:
            session.add(
                Attendance(meeting_id=m.id, member_id=people[w].id, status="invited", at=created)
            )

    def notice(text: str, at: datetime, who: tuple[str, ...], deadline: Any = None) -> Notice:
        n = Notice(text=text, scope="全体", created_at=at, deadline=deadline)
        session.add(n)
        session.flush()
        for w in who:
            session.add(NoticeReceipt(notice_id=n.id, member_id=people[w].id))
        return n

    day_before = DAY - timedelta(days=1)  # a Sunday: the nudges fall on Monday
    notice("请报送本支部学习计划", sh(day_before, 11, 20), ("member", "member2", "other"))
    notice(
        "今天16点前报送参会名单",
        sh(day_before, 15, 10),
        ("member", "committee"),
        deadline=sh(DAY, 16, 0),
    )
    notice("请核对党员信息", sh(day_before, 17, 40), ("member2", "office"))
    session.add(Task(name="报送活动总结", branch_id=b1.id, due_on=NEXT, created_at=created))
    session.add(
        Task(name="整改清单", branch_id=people["b2"].id, due_on=DAY - timedelta(days=4),
             created_at=created)
    )  # fmt: skip
    session.commit()
    people.update(morning=morning, afternoon=afternoon, tomorrow=tomorrow)
    return people


# Recording what the rules return ----------------------------------------------------------


@contextlib.contextmanager
def recording() -> Iterator[dict[str, datetime]]:
    """Every reminder the rules return while inside, by outbox row key: its relevant_until."""
    import schedules.runner as runner

    seen: dict[str, datetime] = {}
    original = runner.collect

    def collect(now: datetime, data: Any, settings: Settings) -> list[Any]:
        out = original(now, data, settings)
        for r in out:
            for uid in r.to:
                seen[runner.row_key(r, uid)] = r.relevant_until
        return out

    runner.collect = collect  # type: ignore[assignment]
    try:
        yield seen
    finally:
        runner.collect = original  # type: ignore[assignment]


@contextlib.contextmanager
def drop_log() -> Iterator[list[str]]:
    """The planner's log lines while inside."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("mofan.planner")
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# The oracle: the two days without a stop --------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    due: dict[str, datetime]
    """Every reminder delivered (outbox row key, merged ones included): its due moment."""
    until: dict[str, datetime]

    def moments(self) -> list[datetime]:
        return sorted(set(self.due.values()))


_BASELINES: dict[str, Baseline] = {}


def baseline(settings: Settings) -> Baseline:
    """The uninterrupted run (``mofan simulate`` over :data:`DAY` and :data:`NEXT`), once per
    process and backend: the bureau is built the same way each time, ids included."""
    cached = _BASELINES.get(settings.database.url.split(":")[0])
    if cached is not None:
        return cached
    from bot.simulate import simulate

    with recording() as until:
        messages = simulate(settings, DAY, NEXT)
    due = {f"{part['key']}:{uid}": m.at for m in messages for part in m.parts for uid in m.to}
    out = Baseline(due=due, until={k: until[k] for k in due})
    _BASELINES[settings.database.url.split(":")[0]] = out
    return out


# One bot process --------------------------------------------------------------------------

_DEAD_PIDS = count(2_000_000_000)
"""Pids no process can have (above Linux's largest pid_max, 2**22, and still a C int): a
holder named after one is a process that is gone."""


@dataclass
class Instance:
    """One ``mofan serve`` process: its own engine, runtime, dispatcher, leader, console."""

    url: str
    settings: Settings
    clock: FixedClock
    down: tuple[datetime, datetime] | None = None
    """WeCom fails every send (errcode -1, worth a retry) from the first to the second."""
    engine: Engine = field(init=False)
    runtime: Runtime = field(init=False)
    leader: Leader = field(init=False)
    console: ConsoleChannel = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)
        if self.engine.dialect.name == "sqlite":
            # A test database: no need to wait for the disk at every commit.
            event.listen(self.engine, "connect", _no_sync)
        self.console = ConsoleChannel(out=io.StringIO())
        channel: Channel = self.console
        if self.down is not None:
            channel = Flaky(self.console, self.clock, self.down)
        channels = {"console": channel, "wecom": channel, "robot": channel}
        self.runtime = Runtime(
            settings=self.settings,
            clock=self.clock,
            engine_override=self.engine,
            channels_override=channels,
        )
        self.leader = make_leader(self.engine, f"{socket.gethostname()}:{next(_DEAD_PIDS)}")

    async def tick(self, *, dispatch: bool = True) -> None:
        """What serve's jobs do at one moment: plan (and send), then a dispatch tick.
        ``dispatch=False``: killed right after the planner committed, before any send."""
        from bot.scheduler import dispatch_job, plan_job

        if not dispatch:
            from schedules.runner import plan_and_enqueue

            if self.leader.ensure(self.clock.now()):
                await asyncio.to_thread(plan_and_enqueue, self.runtime)
            return
        await plan_job(self.runtime, self.leader)
        await dispatch_job(self.runtime, self.leader)

    def kill(self) -> None:
        """Die without a shutdown: the PostgreSQL lock goes with its connection; the SQLite
        lease stays, held by a process that no longer exists."""
        if isinstance(self.leader, AdvisoryLockLeader):
            self.leader._drop()
            self.leader.lock_engine.dispose()
        self.engine.dispose()


@dataclass
class Flaky:
    """A channel that answers "try again" while WeCom is down, then delivers."""

    inner: ConsoleChannel
    clock: FixedClock
    down: tuple[datetime, datetime]
    name: str = "wecom"
    max_batch: int = 1000
    failed: list[tuple[datetime, str]] = field(default_factory=list)

    async def send(self, batch: list[OutboxRow]) -> SendOutcome:
        now = self.clock.now()
        if self.down[0] <= now < self.down[1]:
            self.failed += [(now, m.key) for m in batch]
            return SendOutcome(retry={m.id: "errcode -1: system busy" for m in batch if m.id})
        return await self.inner.send(batch)

    async def aclose(self) -> None:
        return None


def _no_sync(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


# A scenario -------------------------------------------------------------------------------


@dataclass
class Outcome:
    stop: datetime
    restart: datetime
    first_pass: datetime
    missed: int = 0
    """Reminders due while down (or enqueued and not sent before the stop)."""
    caught_up: int = 0
    dropped: int = 0
    sent: int = 0
    duplicated: int = 0
    delays: list[float] = field(default_factory=list)
    """Seconds from a caught-up reminder's due moment to its delivery."""
    violations: list[str] = field(default_factory=list)


def scenario_moments(base: Baseline, settings: Settings, *extra: datetime) -> list[datetime]:
    window = settings.bot.send_window
    moments = set(base.moments()) | set(extra)
    for day in (DAY, NEXT):
        moments.add(datetime.combine(day, window[0], tzinfo=SHANGHAI))
        moments.add(datetime.combine(day, window[1], tzinfo=SHANGHAI) - timedelta(seconds=1))
    return sorted(moments)


async def run_scenario(
    url: str, settings: Settings, base: Baseline, stop: datetime, down: timedelta,
    *, mid_tick: bool = False,
) -> Outcome:  # fmt: skip
    """Run to ``stop``, die, stay down ``down``, restart, run to the end of :data:`NEXT`.

    ``mid_tick``: the tick at ``stop`` is cut between the planner's commit and the send.
    """
    from schedules.runner import calendar_for

    cal = calendar_for(settings.calendar)
    window = settings.bot.send_window
    restart = stop + down
    first = next_send_slot(restart, window, cal)
    out = Outcome(stop=stop, restart=restart, first_pass=first)
    clock = FixedClock(stop)
    moments = scenario_moments(base, settings, stop, restart, first)
    with drop_log() as log:
        a = Instance(url, settings, clock)
        dispatched = None
        for at in (m for m in moments if m <= stop):
            clock.set(at)
            last_tick = at == stop and mid_tick
            await a.tick(dispatch=not last_tick)
            if not last_tick:
                dispatched = at
        a.kill()
        b = Instance(url, settings, clock)
        for at in (m for m in moments if m >= restart):
            clock.set(at)
            await b.tick()
        b.kill()
    judge(out, base, url, dispatched, log, [a.console, b.console], settings)
    return out


def delivered(url: str) -> dict[str, datetime]:
    """Outbox row key -> when it went out: sent rows, and merged rows by their message."""
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            rows = list(s.scalars(select(OutboxMessage)))
    finally:
        engine.dispose()
    sent = {r.key: r.sent_at for r in rows if r.status == "sent" and r.sent_at is not None}
    out = dict(sent)
    for r in rows:
        if r.status == "merged" and r.body.get("into") in sent:
            out[r.key] = sent[r.body["into"]]
    return out


def judge(
    out: Outcome,
    base: Baseline,
    url: str,
    dispatched: datetime | None,
    log: list[str],
    consoles: list[ConsoleChannel],
    settings: Settings,
) -> None:
    from schedules.runner import calendar_for

    cal = calendar_for(settings.calendar)
    got = delivered(url)
    sends = Counter(m.key for c in consoles for m in c.sent)
    out.duplicated = sum(n - 1 for n in sends.values() if n > 1)
    out.violations += [f"sent {n} times: {k}" for k, n in sends.items() if n > 1]
    dropped = {f"{m.group(1)}:{m.group(2)}" for line in log if (m := DROPPED.match(line))}
    out.sent = len(got)
    out.dropped = len(dropped)
    for key, at in got.items():
        if key not in base.due:
            out.violations.append(f"sent but not in the uninterrupted run: {key}")
        if not in_send_window(at, settings.bot.send_window, cal):
            out.violations.append(f"sent outside the window: {key} at {local(at):%a %H:%M:%S}")
    for key, due in base.due.items():
        until = base.until[key]
        if dispatched is not None and due <= dispatched:
            if key not in got:
                out.violations.append(f"due before the stop, never sent: {key}")
            continue
        if due > out.first_pass:
            if key not in got:
                out.violations.append(f"due after the restart, never sent: {key}")
            continue
        out.missed += 1
        if until > out.first_pass:
            if key not in got:
                out.violations.append(f"still relevant ({local(until):%a %H:%M}), not sent: {key}")
            else:
                out.caught_up += 1
                out.delays.append((got[key] - due).total_seconds())
        else:
            if key in got:
                out.violations.append(
                    f"no longer relevant ({local(until):%a %H:%M}), sent anyway at "
                    f"{local(got[key]):%a %H:%M}: {key}"
                )
            if key not in dropped:
                out.violations.append(f"not sent and no drop log line: {key}")
    for key in dropped - {k for k in base.due if k not in got}:
        out.violations.append(f"a drop log line for a reminder that was sent or never due: {key}")


def anchor(base: Baseline, at: datetime) -> datetime:
    """The first due moment at or after ``at``: a stop a second before it misses it."""
    return min(m for m in base.moments() if m >= at)


# The tests --------------------------------------------------------------------------------

STOPS = {
    # A second before a due moment (the first at or after the time given): a downtime of
    # any length misses it.
    "morning": sh(DAY, 9, 0),
    "meeting": sh(DAY, 13, 25),
    "deadline": sh(DAY, 15, 5),
    "late": sh(DAY, 17, 40),
}


@pytest.fixture
def restart_setup(engine, session, settings):  # type: ignore[no-untyped-def]
    build_bureau(session)
    s = day_settings(settings)
    return s, baseline(s)


@pytest.mark.parametrize("down", list(DOWNTIMES))
@pytest.mark.parametrize("where", list(STOPS))
def test_restart_sends_each_reminder_once_or_drops_it_by_the_rule(
    restart_setup, db_url, where, down
):
    settings, base = restart_setup
    stop = anchor(base, STOPS[where]) - timedelta(seconds=1)
    out = asyncio.run(run_scenario(db_url, settings, base, stop, DOWNTIMES[down]))
    assert not out.violations, "\n".join(out.violations)
    assert out.missed and out.duplicated == 0
    if down == "8h" and where != "late":
        assert out.dropped, "eight hours make a meeting reminder or a deadline nudge moot"


@pytest.mark.parametrize("down", ["30min", "8h"])
@pytest.mark.parametrize("where", ["morning", "meeting", "deadline"])
def test_killed_between_planning_and_sending(restart_setup, db_url, where, down):
    """Killed after the planner committed its messages and before the dispatcher sent them:
    they wait in the outbox, and a restart sends them only if they still make sense, inside
    the window."""
    settings, base = restart_setup
    stop = anchor(base, STOPS[where])
    out = asyncio.run(run_scenario(db_url, settings, base, stop, DOWNTIMES[down], mid_tick=True))
    assert not out.violations, "\n".join(out.violations)
    assert out.missed and out.duplicated == 0


def test_the_uninterrupted_run_has_reminders_all_day(restart_setup):
    """The oracle covers what the scenarios need: moments across the day, short-lived ones."""
    _, base = restart_setup
    today = {local(m).time() for m in base.moments() if local_date(m) == DAY}
    assert any(t < time(9, 30) for t in today) and any(t > time(17, 0) for t in today)
    assert any(local(u).time() == time(14, 30) for u in base.until.values())
    assert any(local(u) == sh(DAY, 16, 0) for u in base.until.values())
    assert len(base.due) >= 40


# Retries and the send window ----------------------------------------------------------------


async def run_span(
    inst: Instance, start: datetime, end: datetime, *, plan_every: int = 300,
    dispatch_every: int = 30,
) -> None:  # fmt: skip
    """Serve's two jobs on ``inst``'s clock from ``start`` to ``end``: the planner every
    ``plan_every`` seconds, the dispatcher every ``dispatch_every``."""
    from bot.scheduler import dispatch_job, plan_job

    at, step = start, 0
    while at <= end:
        inst.clock.set(at)
        if step % (plan_every // dispatch_every) == 0:
            await plan_job(inst.runtime, inst.leader)
        await dispatch_job(inst.runtime, inst.leader)
        at += timedelta(seconds=dispatch_every)
        step += 1


def test_a_retry_pushed_past_the_window_waits_for_its_next_opening(restart_setup, db_url, session):
    """WeCom fails from 17:40 to 18:10: the late nudges (17:4x) back off past 18:00 and go
    out at the next opening, not in the evening."""
    settings, base = restart_setup
    late = {k for k, at in base.due.items() if local(at).time() >= time(17, 40)
            and local_date(at) == DAY}  # fmt: skip
    assert late
    clock = FixedClock(sh(DAY, 17, 30))
    bot = Instance(db_url, settings, clock, down=(sh(DAY, 17, 40), sh(DAY, 18, 10)))
    asyncio.run(run_span(bot, sh(DAY, 17, 30), sh(DAY, 19, 0), dispatch_every=60))
    assert {k for _, k in bot.runtime.channels["wecom"].failed} >= late  # type: ignore[attr-defined]
    assert not late & set(delivered(db_url)), "nothing goes out after 18:00"
    asyncio.run(run_span(bot, sh(NEXT, 8, 30), sh(NEXT, 8, 50), dispatch_every=60))
    got = delivered(db_url)
    assert late <= set(got)
    assert all(local(got[k]).time() < time(8, 40) for k in late), "at the opening"
    bot.kill()


def test_a_reminder_retried_until_it_is_moot_is_dropped_with_a_log_line(restart_setup, db_url):
    """WeCom fails from 13:30 to 14:40: the 14:30 meeting's hour-before reminder (13:3x)
    keeps failing; once the meeting has started it is dropped, not sent at 14:4x."""
    settings, base = restart_setup
    moot = {k for k, u in base.until.items() if local(u) == sh(DAY, 14, 30)}
    assert moot
    clock = FixedClock(sh(DAY, 13, 30))
    bot = Instance(db_url, settings, clock, down=(sh(DAY, 13, 30), sh(DAY, 14, 40)))
    with drop_log() as log:
        asyncio.run(run_span(bot, sh(DAY, 13, 30), sh(DAY, 15, 0), dispatch_every=60))
    bot.kill()
    dropped = {f"{m.group(1)}:{m.group(2)}" for line in log if (m := DROPPED.match(line))}
    assert not moot & set(delivered(db_url))
    assert moot <= dropped


def test_a_waiting_nudge_is_not_sent_once_its_notice_is_confirmed(restart_setup, db_url, session):
    """WeCom fails from 11:20 to 12:00: the 11:2x nudges wait in the outbox. One member
    confirms the notice at 11:40 (收到); when WeCom is back, the others get their nudge and
    that member does not."""
    settings, base = restart_setup
    nudges = {k for k in base.due if k.startswith("notice:1:nudge:")}
    assert len(nudges) == 3
    bot = Instance(db_url, settings, FixedClock(sh(DAY, 11, 0)),
                   down=(sh(DAY, 11, 20), sh(DAY, 12, 0)))  # fmt: skip
    asyncio.run(run_span(bot, sh(DAY, 11, 0), sh(DAY, 11, 40), dispatch_every=60))
    assert not nudges & set(delivered(db_url))
    receipt = session.scalars(
        select(NoticeReceipt).where(
            col(NoticeReceipt.notice_id) == 1, col(NoticeReceipt.member_id) == 3
        )
    ).one()
    receipt.confirmed_at = sh(DAY, 11, 40)
    session.commit()
    with drop_log() as log:
        asyncio.run(run_span(bot, sh(DAY, 11, 41), sh(DAY, 12, 30), dispatch_every=60))
    bot.kill()
    got = set(delivered(db_url))
    confirmed = "notice:1:nudge:member-3:zhangsan"
    assert confirmed in nudges and confirmed not in got
    assert nudges - {confirmed} <= got
    assert any(line.startswith("dropped notice:1:nudge:member-3 for zhangsan") for line in log)
