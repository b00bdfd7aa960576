"""Exactly one active scheduler, elected through the database (DESIGN §3).

- **PostgreSQL**: a session advisory lock, ``pg_try_advisory_lock``, taken on a dedicated
  connection held for as long as this process leads. When the holder dies its session ends
  and the lock is free; TCP keepalives on both ends (about 25 s) make a vanished host count
  as dead, and every instance retries at each scheduler tick, so another one takes over
  within a minute. Session locks need a real session: put PgBouncer in *session* pooling
  mode (or point the scheduler at PostgreSQL directly), never transaction pooling.
- **SQLite** (one host): a lease row in ``AppState`` (``scheduler_leader``: holder
  ``host:pid``, expires_at), renewed at every tick, taken over by compare-and-set once it
  has expired, or at once when its holder is a process of this host that no longer exists
  (a crash followed by a restart).

Two leaders can overlap for a moment (a holder that lost its connection learns it at its
next check). That is safe because the outbox's unique keys are the fence: a second planner
enqueues nothing new and a claimed row is never claimed twice.

The ``AppState`` row also tells ``/readyz`` who leads (:func:`current_leader`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import NullPool
from sqlmodel import col

from bot.models import AppState

log = logging.getLogger("mofan.leader")

LEASE_NAME = "scheduler_leader"
LEASE_SECONDS = 30
"""A holder renews at every tick (5 s); a dead one is replaced within this, well under a
minute."""
LOCK_KEY = int.from_bytes(hashlib.sha256(b"mofan:scheduler").digest()[:8], "big", signed=True)
"""The advisory lock's 64-bit key: fixed, so every instance of one deployment agrees."""
PG_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leader(Protocol):
    """Asked at every scheduler tick: may this process plan and dispatch now?"""

    holder: str

    def ensure(self, now: datetime) -> bool: ...

    def release(self, now: datetime) -> None: ...


def make_leader(
    engine: Engine, holder: str | None = None, *, lease_seconds: int = LEASE_SECONDS
) -> Leader:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine, holder, lease_seconds=lease_seconds)
    return LeaseLeader(engine, holder, lease_seconds=lease_seconds)


class LeaseLeader:
    """Leadership as a lease row, renewed and taken over by compare-and-set."""

    def __init__(
        self, engine: Engine, holder: str | None = None, lease_seconds: int = LEASE_SECONDS
    ) -> None:
        self.engine = engine
        self.holder = holder or worker_id()
        self.lease = timedelta(seconds=lease_seconds)
        self.leading = False
        self._released = False

    def ensure(self, now: datetime) -> bool:
        if self._released:
            return False
        try:
            with self.engine.begin() as conn:
                got = _take_lease(conn, self.holder, now, now + self.lease)
                if not got:
                    got = _take_from_dead(conn, self.holder, now + self.lease)
        except Exception:
            log.exception("scheduler lease check failed")
            got = False
        self._note(got)
        return got

    def release(self, now: datetime) -> None:
        """Give up leadership for good (shutdown): later checks answer no."""
        self._released = True
        if not self.leading:
            return
        with self.engine.begin() as conn:
            _give_up_lease(conn, self.holder, now)
        self.leading = False

    def _note(self, got: bool) -> None:
        if got != self.leading:
            log.info("%s scheduler leadership: %s", "took" if got else "lost", self.holder)
        self.leading = got


class AdvisoryLockLeader:
    """Leadership as a PostgreSQL session advisory lock on a dedicated connection."""

    def __init__(
        self, engine: Engine, holder: str | None = None, *, lease_seconds: int = LEASE_SECONDS
    ) -> None:
        self.holder = holder or worker_id()
        # Its own engine without a pool: the lock lives exactly as long as this connection.
        self.lock_engine = create_engine(
            engine.url, poolclass=NullPool, connect_args=dict(PG_KEEPALIVE)
        )
        self.engine = engine
        self.conn: Connection | None = None
        self.lease = timedelta(seconds=lease_seconds)
        """How long the row advertising this holder stays valid without a renewal."""
        self._renewed: datetime | None = None
        # The plan and dispatch jobs ask from worker threads, possibly at once.
        self._lock = threading.Lock()
        self._released = False

    @property
    def leading(self) -> bool:
        return self.conn is not None

    def ensure(self, now: datetime) -> bool:
        with self._lock:
            return self._ensure(now)

    def _ensure(self, now: datetime) -> bool:
        if self._released:
            return False
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT 1"))
            except Exception:
                log.warning("lost the scheduler lock: its connection failed (%s)", self.holder)
                self._drop()
        if self.conn is None:
            self._try_lock()
        if self.conn is not None:
            self._advertise(now)
        return self.conn is not None

    def _try_lock(self) -> None:
        try:
            conn = self.lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:
            log.exception("cannot open the scheduler lock connection")
            return
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        except Exception:
            log.exception("scheduler lock attempt failed")
            conn.close()
            return
        if got:
            self.conn = conn
            log.info("took scheduler leadership: %s", self.holder)
        else:
            conn.close()

    def _advertise(self, now: datetime) -> None:
        # The lock decides; the row only tells /readyz who holds it. Renewed at half-lease.
        if self._renewed is not None and now - self._renewed < self.lease / 2:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    pg_insert(AppState)
                    .values(name=LEASE_NAME, holder=self.holder, expires_at=now + self.lease)
                    .on_conflict_do_update(
                        index_elements=["name"],
                        set_={"holder": self.holder, "expires_at": now + self.lease},
                    )
                )
            self._renewed = now
        except Exception:
            log.exception("cannot record the scheduler leader")

    def _drop(self) -> None:
        conn, self.conn, self._renewed = self.conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing a failed lock connection", exc_info=True)

    def release(self, now: datetime) -> None:
        with self._lock:
            self._released = True
            self._release(now)

    def _release(self, now: datetime) -> None:
        if self.conn is None:
            self.lock_engine.dispose()
            return
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            with self.engine.begin() as conn:
                _give_up_lease(conn, self.holder, now)
        except Exception:
            log.warning("releasing the scheduler lock failed; closing its connection frees it")
        finally:
            self._drop()
            self.lock_engine.dispose()
        log.info("released scheduler leadership: %s", self.holder)


def _take_lease(conn: Connection, holder: str, now: datetime, expires: datetime) -> bool:
    """Renew our lease or take an expired one, atomically; create the row if missing."""
    taken = conn.execute(
        update(AppState)
        .where(
            col(AppState.name) == LEASE_NAME,
            or_(
                col(AppState.holder) == holder,
                col(AppState.holder).is_(None),
                col(AppState.expires_at).is_(None),
                col(AppState.expires_at) <= now,
            ),
        )
        .values(holder=holder, expires_at=expires)
    )
    if taken.rowcount == 1:
        return True
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    created = conn.execute(
        insert(AppState)
        .values(name=LEASE_NAME, holder=holder, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return created.rowcount == 1


def _take_from_dead(conn: Connection, holder: str, expires: datetime) -> bool:
    """Take the lease at once from a holder on this host whose process is gone (a crash and
    a restart: no need to wait for the lease to run out). A pid that exists, even recycled
    by another program, means waiting for the lease as usual."""
    current = conn.execute(
        select(col(AppState.holder)).where(col(AppState.name) == LEASE_NAME)
    ).scalar()
    host, _, pid = (current or "").rpartition(":")
    if host != holder.rpartition(":")[0] or not pid.isdigit() or _alive(int(pid)):
        return False
    taken = conn.execute(
        update(AppState)
        .where(col(AppState.name) == LEASE_NAME, col(AppState.holder) == current)
        .values(holder=holder, expires_at=expires)
    )
    if taken.rowcount == 1:
        log.info("took over the scheduler lease from %s (process gone)", current)
    return taken.rowcount == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _give_up_lease(conn: Connection, holder: str, now: datetime) -> None:
    conn.execute(
        update(AppState)
        .where(col(AppState.name) == LEASE_NAME, col(AppState.holder) == holder)
        .values(expires_at=now)
    )


def current_leader(engine: Engine, now: datetime) -> str | None:
    """Who leads the scheduler right now, as far as the lease row tells (``/readyz``)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(col(AppState.holder), col(AppState.expires_at)).where(
                col(AppState.name) == LEASE_NAME
            )
        ).first()
    if row is None or row.holder is None or row.expires_at is None:
        return None
    expires = row.expires_at
    return row.holder if expires > now else None
