"""Two ``mofan serve`` processes on PostgreSQL over a simulated day (issue 8, item 6), and the
development clock that makes it possible (``MOFAN_DEV_CLOCK``, ``bot.clock.ScaledClock``).

The scenario is ``bench/two_instances.py`` at test size: one workday at 3,600× (ten seconds
of wall clock), both instances answering callbacks, the scheduler's leader killed with
SIGKILL mid-morning and restarted. Every reminder of the uninterrupted run (``mofan
simulate``) goes out exactly once, or is dropped by the documented rule; the survivor takes
over well within a minute. The bench adds a working week, more kills and the takeover at the
shipped tick intervals.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import (
    DEV_CLOCK_ENV,
    SHANGHAI,
    FixedClock,
    ScaledClock,
    SystemClock,
    dev_clock_from_env,
    parse_dev_clock,
)
from bot.runtime import Runtime
from tests.conftest import PG_URL

MONDAY = datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)


# The development clock ------------------------------------------------------------------


class Wall:
    """A wall clock the test moves."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_a_scaled_clock_starts_at_its_instant_and_runs_n_times_faster():
    wall = Wall(1_000.0)
    clock = ScaledClock(MONDAY, 600, anchor=1_000.0, wall=wall)
    assert clock.now() == MONDAY.astimezone(UTC)
    wall.at += 6  # six real seconds: an hour
    assert clock.now() == (MONDAY + timedelta(hours=1)).astimezone(UTC)
    assert clock.real_seconds(3600) == 6
    wall.at -= 12  # before its anchor it reads earlier than its start
    assert clock.now() == (MONDAY - timedelta(hours=1)).astimezone(UTC)


def test_the_environment_variable_picks_the_clock(monkeypatch):
    monkeypatch.delenv(DEV_CLOCK_ENV, raising=False)
    assert dev_clock_from_env() is None, "no variable, no development clock"
    monkeypatch.setenv(DEV_CLOCK_ENV, "2026-12-07T08:00+08:00 x600 @1796601600")
    clock = dev_clock_from_env()
    assert clock is not None and clock.factor == 600 and clock.anchor == 1796601600
    assert clock.start == MONDAY.astimezone(UTC)
    # Without an offset the instant is Shanghai wall time; without an anchor, "now".
    clock = parse_dev_clock("2026-12-07T08:00 x2.5")
    assert clock.start == MONDAY.astimezone(UTC) and clock.factor == 2.5
    assert abs(clock.now() - clock.start) < timedelta(seconds=5)
    for bad in ("2026-12-07T08:00", "tomorrow x600", "2026-12-07T08:00 600", "2026-12-07 x0"):
        with pytest.raises(ValueError):
            parse_dev_clock(bad)


def test_serve_runs_on_the_development_clock_only_when_asked(monkeypatch, settings, engine):
    from bot.serve import ServeError, use_dev_clock

    monkeypatch.delenv(DEV_CLOCK_ENV, raising=False)
    rt = Runtime(settings=settings, engine_override=engine)
    assert use_dev_clock(rt) is None
    assert isinstance(rt.clock, SystemClock) and rt.settings is settings

    monkeypatch.setenv(DEV_CLOCK_ENV, "2026-12-07T08:00+08:00 x600")
    rt = Runtime(settings=settings, engine_override=engine)
    stale = rt.router  # built on the real clock
    clock = use_dev_clock(rt)
    assert isinstance(rt.clock, ScaledClock) and rt.clock is clock
    assert rt.router is not stale and rt.router.clock is clock
    assert rt.dispatcher.clock is clock
    # The claim lease guards against a dead process: still its length in real seconds.
    assert rt.dispatcher.settings.lease_seconds == settings.outbox.lease_seconds * 600
    assert settings.outbox.lease_seconds == 60, "the settings given are left alone"

    monkeypatch.setenv(DEV_CLOCK_ENV, "next monday, fast")
    with pytest.raises(ServeError, match=DEV_CLOCK_ENV):
        use_dev_clock(Runtime(settings=settings, engine_override=engine))


def test_the_scheduler_ticks_and_leases_follow_the_development_clock(settings, engine):
    from bot.leader import LEASE_SECONDS
    from bot.scheduler import DEV_MIN_TICK_SECONDS, DISPATCH_SECONDS, start_scheduler, tick_seconds

    fixed = Runtime(settings=settings, clock=FixedClock(MONDAY), engine_override=engine)
    assert tick_seconds(fixed, 60) == 60 and tick_seconds(fixed, DISPATCH_SECONDS) == 5
    fast = Runtime(settings=settings, clock=ScaledClock(MONDAY, 600), engine_override=engine)
    assert tick_seconds(fast, 600) == 1.0, "ten simulated minutes: one real second"
    assert tick_seconds(fast, DISPATCH_SECONDS) == DEV_MIN_TICK_SECONDS

    async def started() -> tuple[timedelta, dict[str, float]]:
        sched = start_scheduler(fast)
        try:
            jobs = {j.id: j.trigger.interval.total_seconds() for j in sched.get_jobs()
                    if hasattr(j.trigger, "interval")}  # fmt: skip
            return sched.leader.lease, jobs  # type: ignore[attr-defined]
        finally:
            sched.shutdown(wait=False)

    lease, jobs = asyncio.run(started())
    assert lease == timedelta(seconds=LEASE_SECONDS * 600), "thirty real seconds"
    assert jobs == {"plan": 0.25, "dispatch": 0.25}


# Two real instances ---------------------------------------------------------------------


@pytest.mark.skipif(
    not PG_URL, reason="two instances need PostgreSQL (MOFAN_TEST_DATABASE_URL); on SQLite "
    "one process serves"
)  # fmt: skip
def test_two_instances_a_killed_leader_and_every_reminder_once(db_url, tmp_path):
    from bench.two_instances import Plan, run

    plan = Plan(
        url=db_url,
        members=40,
        days=1,
        speed=3600,
        kills=1,
        restart_after=1.0,
        traffic=3.0,
        real_takeover=False,
        startup=10.0,
        reset=False,
    )
    res = run(plan, tmp_path, log=False)
    assert not res.violations, "\n".join(res.violations)
    assert res.expected > 20 and res.sent + res.dropped == res.expected
    assert res.duplicated == 0 and res.missing == 0 and res.outside == 0
    (takeover,) = res.takeovers
    assert takeover.took is not None and takeover.took < 60
    assert res.by_instance[takeover.victim] and res.by_instance[takeover.survivor], (
        "the victim sent before it died, the survivor after"
    )
    t = res.traffic
    assert t.sent > 10 and t.answers[200] >= t.sent - 2
