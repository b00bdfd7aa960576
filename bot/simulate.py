"""``mofan simulate``: the scheduler on a virtual clock, over a copy of the data.

The database is copied first, so nothing real is touched and nothing is really sent:

- SQLite: the backup API (a consistent copy of a WAL database, even while ``mofan serve``
  writes to it);
- PostgreSQL: the rows are read and written into a temporary SQLite database built from
  the same migrations. The planners run on the copy exactly as they would on PostgreSQL (they
  use no backend-specific SQL), and nothing is created on the server.

The copy's outbox and ``AppState`` are emptied: the run shows everything the engine would
send over the span, whatever went out before.

Then the virtual clock jumps from event to event rather than minute by minute: on every
workday it starts at the send window's opening, runs the same planning pass as
``mofan serve`` (``schedules.runner.run_pass``), runs the same outbox dispatcher into the
console channel, and moves to the next moment at which the pass said something is due
(``PassResult.next_at``), until nothing is left that day. Nothing can be due on a day off
or outside the window (every reminder is placed inside it), so no moment is skipped. Within
a simulated day only the planner changes the data, so the day's snapshot is loaded once.

Messages come back one per moment, reminder and body with their recipients together (what
the dispatcher sends as one batch), and one per merged message with its parts.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, insert, select
from sqlmodel import Session, SQLModel, col

from bot.channels.console import ConsoleChannel, render_body
from bot.clock import FixedClock, local
from bot.config import Settings
from bot.db import make_engine, upgrade
from bot.models import AppState, InboundMessage, OutboxMessage
from bot.outbox import SENT, Dispatcher

Progress = Callable[[date], None]
"""Called after each simulated day."""

_NOT_COPIED = {OutboxMessage.__tablename__, AppState.__tablename__, InboundMessage.__tablename__}


@dataclass
class Message:
    """One message as it went out: one body, at one moment, to everyone in ``to``."""

    at: datetime
    rule: str
    key: str
    to: list[str]
    text: str
    parts: list[dict[str, str]] = field(default_factory=list)
    """Every reminder in it (rule and key); more than one when merged."""

    def as_json(self) -> dict[str, Any]:
        return {
            "at": local(self.at).isoformat(),
            "rule": self.rule,
            "key": self.key,
            "to": self.to,
            "text": self.text,
            "parts": self.parts,
        }


def copy_database(url: str, target: Path) -> str:
    """Copy the database at ``url`` into a SQLite file ``target``; returns its URL."""
    target_url = f"sqlite:///{target}"
    if url.startswith("sqlite"):
        source = url.split(":///", 1)[1] if ":///" in url else ""
        if source in ("", ":memory:"):
            raise ValueError("cannot simulate on an in-memory database: use a database file")
        with sqlite3.connect(source) as src_db, sqlite3.connect(target) as dst_db:
            src_db.backup(dst_db)
        src_engine = None
    else:
        src_engine = make_engine(url)
    dst = make_engine(target_url)
    try:
        upgrade(dst)
    finally:
        dst.dispose()
    # A plain engine: no foreign-key enforcement while tables fill in any order.
    plain = create_engine(target_url)
    try:
        with plain.begin() as conn:
            for table in SQLModel.metadata.sorted_tables:
                if table.name in _NOT_COPIED:
                    conn.execute(delete(table))
        if src_engine is not None:
            _copy_rows(src_engine, plain)
    finally:
        plain.dispose()
        if src_engine is not None:
            src_engine.dispose()
    return target_url


def _copy_rows(src: Engine, dst: Engine) -> None:
    with src.connect() as s, dst.begin() as d:
        for table in SQLModel.metadata.sorted_tables:
            if table.name in _NOT_COPIED:
                continue
            d.execute(delete(table))
            result = s.execution_options(yield_per=5000).execute(select(table))
            for chunk in result.partitions():
                d.execute(insert(table), [dict(row._mapping) for row in chunk])


async def run_simulation(
    settings: Settings,
    start: date,
    end: date,
    *,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> list[Message]:
    """Simulate ``start`` to ``end`` (inclusive) on a copy of ``settings.database.url``."""
    from schedules.base import at_time
    from schedules.runner import calendar_for, run_pass

    with tempfile.TemporaryDirectory(dir=workdir, prefix="mofan-sim-") as tmp:
        url = copy_database(settings.database.url, Path(tmp) / "simulate.db")
        sim_settings = settings.model_copy(deep=True)
        sim_settings.database.url = url
        engine = make_engine(url, busy_timeout_ms=settings.database.sqlite_busy_timeout_ms)
        event.listen(engine, "connect", _throwaway)
        console = ConsoleChannel(out=io.StringIO())
        clock = FixedClock(at_time(start, sim_settings.bot.send_window[0]))
        dispatcher = Dispatcher(
            engine=engine,
            channels={"wecom": console, "console": console, "robot": console},
            clock=clock,
            settings=sim_settings.outbox,
        )
        cal = calendar_for(sim_settings.calendar)
        try:
            day = start
            while day <= end:
                if cal.is_workday(day):
                    moment: datetime | None = at_time(day, sim_settings.bot.send_window[0])
                    data = None
                    while moment is not None:
                        clock.set(moment)
                        result = run_pass(engine, sim_settings, moment, reuse=data)
                        data = result.data
                        if result.enqueued:
                            # The console never fails, so one pass sends all that is due
                            # unless it hit the batch size.
                            report = await dispatcher.run_once()
                            while report.claimed >= sim_settings.outbox.batch_size:
                                report = await dispatcher.run_once()
                        # The console keeps what it sent; the outbox already has it.
                        console.sent.clear()
                        console.out = io.StringIO()
                        moment = result.next_at
                if progress is not None:
                    progress(day)
                day += timedelta(days=1)
            return list(sent_messages(engine))
        finally:
            await console.aclose()
            engine.dispose()


def _throwaway(dbapi_conn: Any, _record: Any) -> None:
    # The copy is deleted afterwards: no need to wait for the disk at every commit.
    dbapi_conn.execute("PRAGMA synchronous=OFF")


def sent_messages(engine: Engine) -> Iterator[Message]:
    """What the outbox sent, in order: one :class:`Message` per moment, reminder and body
    (its recipients together), and one per merged message."""
    with Session(engine) as session:
        merged: dict[str, list[dict[str, str]]] = defaultdict(list)
        for key, rule, recipient, body in session.execute(
            select(
                col(OutboxMessage.key),
                col(OutboxMessage.rule),
                col(OutboxMessage.recipient),
                col(OutboxMessage.body),
            ).where(col(OutboxMessage.status) == "merged")
        ):
            merged[body["into"]].append({"rule": rule, "key": _logical(key, recipient)})
        rows = session.execute(
            select(
                col(OutboxMessage.key),
                col(OutboxMessage.rule),
                col(OutboxMessage.recipient),
                col(OutboxMessage.body),
                col(OutboxMessage.sent_at),
            )
            .where(col(OutboxMessage.status) == SENT)
            .order_by(col(OutboxMessage.sent_at), col(OutboxMessage.id))
        )
        moment: datetime | None = None
        bucket: dict[tuple[str, str], Message] = {}
        for key, rule, recipient, body, sent_at in rows:
            if sent_at != moment:
                yield from bucket.values()
                bucket, moment = {}, sent_at
            logical = _logical(key, recipient)
            parts = [{"rule": rule, "key": logical}, *merged.get(key, [])]
            if len(parts) > 1:
                bucket[(key, "")] = Message(
                    sent_at, "merged", logical, [recipient], render_body(body), parts
                )
                continue
            group = (logical, json.dumps(body, sort_keys=True, ensure_ascii=False))
            if group in bucket:
                bucket[group].to.append(recipient)
            else:
                bucket[group] = Message(
                    sent_at, rule, logical, [recipient], render_body(body), parts
                )
        yield from bucket.values()


def _logical(row_key: str, recipient: str) -> str:
    """The reminder's key from its outbox row key (``f"{key}:{userid}"``)."""
    suffix = f":{recipient}"
    return row_key[: -len(suffix)] if row_key.endswith(suffix) else row_key


def simulate(
    settings: Settings, start: date, end: date, *, progress: Progress | None = None
) -> list[Message]:
    return asyncio.run(run_simulation(settings, start, end, progress=progress))
