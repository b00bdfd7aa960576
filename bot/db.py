"""Engine and sessions, built from settings (never at import time), and migrations.

SQLite runs in WAL mode with foreign keys on and a lock wait well below WeCom's 5 s budget;
PostgreSQL is reached through ``database.url`` (psycopg 3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, busy_timeout_ms: int = 1500, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a short lock wait."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _tune_sqlite(engine, busy_timeout_ms)
    return engine


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself so that our transactions are real ones.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # pysqlite's own transaction handling is off (above), so BEGIN is ours. It stays
        # DEFERRED: a reader in WAL mode never holds the write lock, and every write path
        # that races (outbox claims, inbound dedupe) is a single compare-and-set statement.
        conn.exec_driver_sql("BEGIN")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignore(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], *, keys: Sequence[str]
) -> int:
    """Insert ``rows``, skipping those that collide on the unique ``keys``; returns how many
    were new. Runs in the caller's transaction.

    One statement for any number of rows (executemany with RETURNING, which SQLAlchemy sends
    as batched multi-row INSERTs), so its compiled form is cached; a multi-row ``values()``
    would be compiled afresh on every call. The dialect's INSERT is imported on first use:
    the cold start of ``mofan chat`` counts.
    """
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = model.__table__
    stmt = insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c.id)
    return len(session.execute(stmt, list(rows)).all())


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None for an empty database.

    Read with plain SQL rather than through Alembic, whose import alone costs a tenth of a
    second on every ``mofan chat``.
    """
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest revision the code knows (``bot.migrations.HEAD``, checked against Alembic by a test)."""
    from bot.migrations import HEAD

    return HEAD


def alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

    cfg = alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(cfg).get_current_head()


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
