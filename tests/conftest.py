"""Shared fixtures: a migrated database (SQLite, or PostgreSQL via MOFAN_TEST_DATABASE_URL),
a fixed clock, settings and an assembled runtime."""

from __future__ import annotations

import io
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

from bot.clock import SHANGHAI, FixedClock
from bot.config import Settings, load_settings
from bot.db import make_engine
from bot.runtime import Runtime
from tests.fakes.database import fresh_database

PG_URL = os.environ.get("MOFAN_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | Path]:
    """Migrate once per run: a SQLite file to copy, or the PostgreSQL database itself."""
    if PG_URL:
        fresh_database(PG_URL).dispose()
        yield PG_URL
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    fresh_database(f"sqlite:///{path}").dispose()
    yield path


def _advisory_locks_held(url: str) -> int:
    """Advisory locks held in ``url``'s database by anyone but this check's own connection."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                        " AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _no_leaked_advisory_lock() -> Iterator[None]:
    """On PostgreSQL, a test must not leave the scheduler's advisory lock held (by a
    connection it forgot, or a process it did not stop): every later test's scheduler would
    wait for it, and fail far from the cause. Set up before and torn down after every other
    fixture of the test, so their own clean-up has run."""
    yield
    if not PG_URL:
        return
    deadline = time.monotonic() + 5  # a killed process's backend may take a moment to go
    while (held := _advisory_locks_held(PG_URL)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not held, f"the test left {held} advisory lock(s) held in the test database"


@pytest.fixture
def db_url(_template_db: str | Path, tmp_path: Path) -> Iterator[str]:
    if PG_URL:
        engine = make_engine(PG_URL)
        tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        yield PG_URL
        return
    target = tmp_path / "mofan.db"
    # The backup API copies a WAL database consistently (a file copy could miss the WAL).
    with sqlite3.connect(_template_db) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    yield f"sqlite:///{target}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def clock() -> FixedClock:
    # A Wednesday morning, inside the send window, on a workday.
    return FixedClock(datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI))


@pytest.fixture
def settings(db_url: str) -> Settings:
    s = load_settings(None, env=False) if not os.environ.get("MOFAN_CONFIG") else load_settings()
    s.database.url = db_url
    return s


@pytest.fixture
def runtime(settings: Settings, engine: Engine, clock: FixedClock) -> Runtime:
    from bot.channels.console import ConsoleChannel

    console = ConsoleChannel(out=io.StringIO())
    return Runtime(
        settings=settings,
        clock=clock,
        engine_override=engine,
        channels_override={"console": console, "wecom": console, "robot": console},
    )


@pytest.fixture
def bureau(session: Session) -> dict[str, object]:
    """small_bureau's people, committed (see tests/factories.py)."""
    from tests.factories import small_bureau

    return small_bureau(session)


@pytest.fixture
def chat(engine: Engine, clock: FixedClock, settings: Settings) -> object:
    """Talk to the bot through the router: ``chat(member, "签到")`` → the reply text."""
    from tests.chatkit import Chat

    return Chat(engine, clock, settings)
