"""Exactly one active scheduler: the SQLite lease row and the PostgreSQL advisory lock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from bot.clock import SHANGHAI
from bot.db import make_engine
from bot.leader import (
    LEASE_SECONDS,
    AdvisoryLockLeader,
    LeaseLeader,
    current_leader,
    make_leader,
)
from tests.conftest import PG_URL

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI)


def test_one_lease_holder_renewal_and_takeover(engine):
    if PG_URL:
        pytest.skip("the lease row is the SQLite election (PostgreSQL uses the advisory lock)")
    a, b = LeaseLeader(engine, "host:1"), LeaseLeader(engine, "host:2")
    assert a.ensure(NOW) and not b.ensure(NOW)
    assert current_leader(engine, NOW) == "host:1"
    # a renews at every tick: b never gets in while a lives.
    for tick in range(1, 20):
        t = NOW + timedelta(seconds=5 * tick)
        assert a.ensure(t) and not b.ensure(t)
    # a dies (stops renewing): once the lease runs out, b takes over, well within a minute.
    last = NOW + timedelta(seconds=5 * 19)
    assert not b.ensure(last + timedelta(seconds=LEASE_SECONDS - 1))
    assert b.ensure(last + timedelta(seconds=LEASE_SECONDS))
    assert current_leader(engine, last + timedelta(seconds=LEASE_SECONDS)) == "host:2"
    # a comes back: it is not the leader any more.
    assert not a.ensure(last + timedelta(seconds=LEASE_SECONDS + 1))


def test_release_hands_over_at_once(engine):
    if PG_URL:
        pytest.skip("SQLite election")
    a, b = LeaseLeader(engine, "host:1"), LeaseLeader(engine, "host:2")
    assert a.ensure(NOW)
    a.release(NOW)
    assert current_leader(engine, NOW) is None
    assert b.ensure(NOW)
    assert not a.ensure(NOW + timedelta(minutes=5)), "a released leader stays down"


def test_make_leader_picks_the_backend(engine):
    leader = make_leader(engine, "x")
    expected = AdvisoryLockLeader if engine.dialect.name == "postgresql" else LeaseLeader
    assert isinstance(leader, expected)
    if isinstance(leader, AdvisoryLockLeader):
        leader.release(NOW)
        leader.lock_engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (MOFAN_TEST_DATABASE_URL)")
def test_advisory_lock_one_holder_and_takeover_when_the_holder_dies(engine):
    a = AdvisoryLockLeader(engine, "host:1")
    b = AdvisoryLockLeader(engine, "host:2")
    try:
        assert a.ensure(NOW) and not b.ensure(NOW)
        assert a.ensure(NOW + timedelta(seconds=5)) and not b.ensure(NOW + timedelta(seconds=5))
        assert current_leader(engine, NOW) == "host:1"
        # The holder's session dies (a crashed process, a cut connection).
        assert a.conn is not None
        pid = a.conn.execute(text("SELECT pg_backend_pid()")).scalar()
        admin = make_engine(str(PG_URL))
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.commit()
        admin.dispose()
        later = NOW + timedelta(seconds=10)
        assert b.ensure(later), "the lock is free as soon as the holder's session ends"
        assert not a.ensure(later), "the old holder learns it lost at its next check"
        assert current_leader(engine, later) == "host:2"
        b.release(later)
        c = AdvisoryLockLeader(engine, "host:3")
        assert c.ensure(later + timedelta(seconds=1))
        c.release(later)
    finally:
        a.release(NOW)
        b.release(NOW)
        a.lock_engine.dispose()
        b.lock_engine.dispose()


def test_a_restart_takes_over_at_once_from_a_dead_process_on_this_host(engine):
    if PG_URL:
        pytest.skip("SQLite election")
    import os
    import subprocess
    import sys

    from bot.leader import worker_id

    host = worker_id().rpartition(":")[0]
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = LeaseLeader(engine, f"{host}:{child.pid}")
    assert dead.ensure(NOW)
    me = LeaseLeader(engine, f"{host}:{os.getpid()}")
    assert me.ensure(NOW + timedelta(seconds=1)), "the holder's process is gone"
    # A live holder, or one on another host, is waited for.
    other_host = LeaseLeader(engine, f"elsewhere:{child.pid}")
    assert not other_host.ensure(NOW + timedelta(seconds=2))
    alive = LeaseLeader(engine, f"{host}:1")  # pid 1 always exists
    assert not alive.ensure(NOW + timedelta(seconds=2))
