"""Engine and sessions, built from settings (never at import time), and migrations.

SQLite runs in WAL mode with foreign keys on and a lock wait well below WeCom's 5 s budget;
PostgreSQL is reached through ``database.url`` (psycopg 3).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    Dialect,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError
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


SQLITE_BEGIN = "mofan.sqlite_begin"
"""Key in a connection's ``info``: the statement that begins its transactions on SQLite."""


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
        # Sent on the driver's connection: every transaction starts here, and SQLAlchemy's
        # execution layer would cost ten times the statement. A connection may ask for
        # BEGIN IMMEDIATE instead (the callback's own, see bot.callback).
        dbapi = conn.connection
        begin = dbapi.info.get(SQLITE_BEGIN, "BEGIN")
        try:
            dbapi.dbapi_connection.execute(begin)
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it ("database is locked" …)
            raise DBAPIError.instance(begin, None, exc, sqlite3.Error) from exc


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


def engine_of(session: Session) -> Engine:
    """The engine behind ``session``, whether it is bound to the engine or to one of its
    connections (a handler's session is: bot.router.Context.session). Per-database caches
    are keyed by it."""
    engine: Engine = session.get_bind().engine
    return engine


def insert_ignore(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], *, keys: Sequence[str]
) -> int:
    """Insert ``rows``, skipping those that collide on the unique ``keys``; returns how many
    were new (the statement's row count: nothing comes back per row). Runs in the caller's
    transaction. Every row names the same columns; one left out gets its column's scalar
    default.

    One statement and one round trip for any number of rows. On PostgreSQL the rows travel
    as one JSON document unpacked by ``json_to_recordset``: a multi-row ``VALUES`` with
    ``RETURNING`` carries thousands of parameters, which SQLAlchemy sends in pages of 1,000
    rows and psycopg re-parses in Python on every call (it caches statement texts under
    4 KB only): 8,000 outbox rows took 1.4 s that way and a quarter of it this way
    (``bench/plan_pass.py``). SQLite gets a plain ``executemany`` (no network; the loop is
    in C). Values go through the columns' types first, as SQLAlchemy would send them.
    """
    if not rows:
        return 0
    conn = session.connection().execution_options(preserve_rowcount=True)
    dialect = conn.dialect
    table = model.__table__
    names = list(rows[0])
    defaults = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in rows[0] and c.default is not None and c.default.is_scalar
    }
    columns = [table.c[n] for n in [*names, *defaults]]
    pg = dialect.name == "postgresql"
    fixed = list(defaults.values())
    pick = itemgetter(*names)  # a tuple of the values, in C (one name: the value itself)
    values = [[*pick(r), *fixed] if len(names) > 1 else [pick(r), *fixed] for r in rows]
    for i, c in enumerate(columns):
        if pg and isinstance(c.type, JSON):
            continue  # the document carries it as it is
        convert = c.type.dialect_impl(dialect).bind_processor(dialect)
        if issubclass(_python_type(c.type), (datetime, date, time)):
            # A few distinct moments among thousands of rows: each converted once (and on
            # PostgreSQL written as ISO text, which the document needs and the server reads).
            convert = _memo(convert, iso=pg)
        if convert is not None:
            for v in values:
                v[i] = convert(v[i])
    sql = _insert_ignore_sql(dialect, table, tuple(c.name for c in columns), tuple(keys))
    if pg:
        fields = [c.name for c in columns]
        doc = json.dumps([dict(zip(fields, v, strict=True)) for v in values])
        return int(conn.exec_driver_sql(sql, {"rows": doc}).rowcount)
    return int(conn.exec_driver_sql(sql, [tuple(v) for v in values]).rowcount)


@lru_cache(maxsize=64)
def _insert_ignore_sql(
    dialect: Dialect, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> str:
    quote = dialect.identifier_preparer.quote
    into = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
    into += f"({', '.join(quote(c) for c in columns)}) "
    conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO NOTHING"
    if dialect.name == "postgresql":
        fields = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect)}" for c in columns)
        picked = ", ".join(f"r.{quote(c)}" for c in columns)
        source = f"json_to_recordset(%(rows)s::json) AS r({fields})"
        return f"{into}SELECT {picked} FROM {source}{conflict}"
    return f"{into}VALUES ({', '.join('?' for _ in columns)}){conflict}"


def _python_type(type_: Any) -> type:
    """The Python type a column holds (a TypeDecorator's own answer is ``object``)."""
    try:
        return getattr(type_, "impl_instance", type_).python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return object


def _memo(convert: Any, *, iso: bool) -> Any:
    """``convert`` (None: none), then with ``iso`` ISO text: once per distinct value."""
    seen: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        if value not in seen:
            out = convert(value) if convert is not None else value
            if iso and isinstance(out, (datetime, date, time)):
                out = out.isoformat()
            seen[value] = out
        return seen[value]

    return once


def among(dialect: str, column: Any, values: Iterable[Any]) -> Any:
    """``column IN values`` for any number of values in one parameter. An ``IN`` list would
    send a parameter per value (a statement per few hundred of them, each re-parsed by
    psycopg), and on PostgreSQL a prepared plan for a long ``= ANY(ARRAY[$1, …])`` can
    compare every row against every value: 10,000 outbox keys took seconds that way, a few
    milliseconds this way.

    PostgreSQL: text as a JSON array joined in (``json_array_elements_text``: a hash or
    index join, linear whatever the plan); numbers as one array (``= ANY``), whose length
    the planner sees, so it keeps to the index for a few ids out of many rows. SQLite: a
    JSON array (``json_each``)."""
    values = list(values)
    doc = bindparam(None, values, type_=JSON)
    if dialect != "postgresql":
        return column.in_(select(func.json_each(doc).table_valued("value").c.value))
    if _python_type(column.type) is not str:
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(select(func.json_array_elements_text(doc).table_valued("value").c.value))


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
