"""Liveness and readiness (DESIGN §4.3): what ``/healthz`` and ``/readyz`` answer.

``/healthz`` is liveness: 200 ``{"status": "ok"}`` while the process serves; it touches
nothing, so a slow database never gets a live process restarted.

``/readyz`` is readiness, 200 when every check passes, else 503, always JSON::

    {"ready": true,
     "database": "ok",                    # or "error: OperationalError"
     "migrations": "head",                # or "behind (0001 < 0002)", "empty"
     "schema_revision": "0001",
     "scheduler": "leading",              # this process's scheduler: leading | standby | off
     "leader": {"known": true, "holder": "host:pid", "this_process": true},
     "outbox_pending": 3,
     "outbox_oldest_age_seconds": 12.5,   # null when nothing waits
     "outbox_max_age_seconds": 600,       # [health] max_outbox_age_seconds
     "failing": []}                       # names of the failed checks

It is not ready when the database cannot be reached, the schema is not at head, no
scheduler leader is known (nothing would send the reminders), or a due message has waited
longer than ``[health] max_outbox_age_seconds`` (sending is stuck: WeCom refuses, the
network is down, or no dispatcher runs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("mofan.health")


@dataclass
class Readiness:
    checks: dict[str, Any] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.failing

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, **self.checks, "failing": self.failing}


def liveness() -> dict[str, str]:
    return {"status": "ok"}


def readiness(runtime: Runtime, scheduler: Any = None) -> Readiness:
    """Run every readiness check; never raises (this is what ops look at when it breaks)."""
    from bot.db import current_revision, head_revision
    from bot.outbox import outbox_depth

    result = Readiness()
    checks = result.checks
    limit = runtime.settings.health.max_outbox_age_seconds
    try:
        with Session(runtime.engine) as session:
            session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            current = current_revision(runtime.engine)
            head = head_revision()
            depth, age = outbox_depth(session, now=runtime.clock.now())
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = f"error: {type(exc).__name__}"
        result.failing.append("database")
        return result
    if current == head:
        checks["migrations"] = "head"
    elif current is None:
        checks["migrations"] = "empty"
    else:
        checks["migrations"] = f"behind ({current} < {head})"
    checks["schema_revision"] = current
    if current != head:
        result.failing.append("migrations")

    try:
        checks["scheduler"], checks["leader"] = scheduler_status(runtime, scheduler)
    except Exception as exc:
        log.warning("readiness: cannot read the scheduler leader: %s", type(exc).__name__)
        checks["scheduler"], checks["leader"] = "unknown", {"known": False, "holder": None}
    if not checks["leader"]["known"]:
        result.failing.append("leader")

    checks["outbox_pending"] = depth
    checks["outbox_oldest_age_seconds"] = None if age is None else round(age, 1)
    checks["outbox_max_age_seconds"] = limit
    if age is not None and age > limit:
        result.failing.append("outbox_age")
    return result


def scheduler_status(runtime: Runtime, scheduler: Any) -> tuple[str, dict[str, Any]]:
    """(this process's scheduler: leading | standby | off, what is known of the leader).

    The leader is read from the lease row that :mod:`bot.leader` keeps (on PostgreSQL the
    advisory lock decides and the row advertises it), so every instance, scheduler or not,
    can tell whether someone is sending the reminders.
    """
    from bot.leader import current_leader, worker_id

    holder = current_leader(runtime.engine, runtime.clock.now())
    me = getattr(getattr(scheduler, "leader", None), "holder", None) or worker_id()
    mine = holder is not None and holder == me
    running = scheduler is not None and bool(getattr(scheduler, "running", False))
    state = "off" if not running else "leading" if mine else "standby"
    return state, {"known": holder is not None, "holder": holder, "this_process": mine}
