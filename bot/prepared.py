"""Statements the callback runs for every message, compiled once and run on the raw DB-API
connection of the caller's transaction.

Through SQLAlchemy's execution layer a small statement costs several times its run time in
Python: 0.15–0.3 ms for a Core statement, about 0.5 ms for an ORM select of two entities,
against 0.03 ms on the raw connection. The SQL is still SQLAlchemy's, compiled for the
engine's dialect, and values pass through the same type processors it would apply (UTC
datetimes, JSON, booleans), so what is written and read is identical to the ORM's.

- :func:`run` executes a statement built by a ``build(dialect_name)`` function, :func:`rows`
  returns all its rows.
- :func:`load` (first row) and :func:`load_all` read whole rows of mapped classes with one prepared SELECT and returns them
  as persistent instances of the session, as ``session.execute(select(A, B))`` would.
- :func:`connection` is a session's connection for them, with the session's pending changes
  flushed first (as the ORM's autoflush would before a query).

What these bypass: the session does not learn of rows a prepared UPDATE changed, so a
helper that updates rows it may also have loaded says so (bot.store.confirm_notice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import Session

Build = Callable[[str], Any]
"""Returns the statement for a dialect name ('sqlite', 'postgresql')."""


class Prepared:
    """A Core statement compiled once for one dialect, with its parameters' processors."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.order: list[str] | None = list(compiled.positiontup) if compiled.positiontup else None
        self.fixed = {n: b.value for n, b in compiled.binds.items() if b.value is not None}
        self.returns_rows: bool | None = None
        """Learnt at the first run: asking the cursor each time costs psycopg a column
        description object per column."""
        self.processors = {}
        for name, bind in compiled.binds.items():
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.processors[name] = proc

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.fixed, **values}
        for name, proc in self.processors.items():
            merged[name] = proc(merged[name])
        return tuple(merged[n] for n in self.order) if self.order is not None else merged


@lru_cache(maxsize=64)
def _prepared(build: Build, dialect: Any) -> Prepared:
    return Prepared(build(dialect.name), dialect)


def connection(session: Session) -> Connection:
    """``session``'s connection, its pending changes flushed."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection()


@contextmanager
def _cursor(conn: Connection, build: Build) -> Iterator[tuple[Any, Prepared]]:
    """A DB-API cursor on ``conn`` and the statement prepared for its dialect; a driver
    error comes out as SQLAlchemy would raise it, so callers see one kind of error."""
    dialect = conn.dialect
    prepared = _prepared(build, dialect)
    cursor = conn.connection.cursor()
    try:
        yield cursor, prepared
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            prepared.sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def run(conn: Connection, build: Build, rows: Sequence[dict[str, Any]]) -> Any:
    """Run the statement in ``conn``'s transaction (a session's: :func:`connection`) with
    each parameter set in ``rows``. For one set: the first result row of a statement that
    returns rows (None if there is none), else the count of rows it changed. For several:
    None."""
    with _cursor(conn, build) as (cursor, prepared):
        if len(rows) == 1:
            cursor.execute(prepared.sql, prepared.params(rows[0]))
            if prepared.returns_rows is None:
                prepared.returns_rows = cursor.description is not None
            return cursor.fetchone() if prepared.returns_rows else cursor.rowcount
        cursor.executemany(prepared.sql, [prepared.params(r) for r in rows])
        return None


def rows(conn: Connection, build: Build, params: dict[str, Any]) -> list[Any]:
    """Every result row of the statement, run on ``conn`` with ``params``."""
    with _cursor(conn, build) as (cursor, prepared):
        cursor.execute(prepared.sql, prepared.params(params))
        return list(cursor.fetchall())


class _Shape:
    """How one mapped class's columns come out of a row: attribute keys and result processors."""

    def __init__(self, model: type, dialect: Any) -> None:
        mapper: Any = inspect(model)
        self.model = model
        self.mapper = mapper
        self.columns = [prop.columns[0] for prop in mapper.column_attrs]
        self.keys = [prop.key for prop in mapper.column_attrs]
        self.processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in self.columns
        ]
        self.primary_key = [self.columns.index(c) for c in mapper.primary_key]

    def identity(self, values: Sequence[Any]) -> Any:
        return self.mapper.identity_key_from_primary_key([values[i] for i in self.primary_key])

    def instance(self, values: Sequence[Any]) -> Any:
        obj = self.mapper.class_manager.new_instance()
        state = obj.__dict__
        for key, proc, value in zip(self.keys, self.processors, values, strict=True):
            state[key] = proc(value) if proc is not None and value is not None else value
        return obj


@lru_cache(maxsize=16)
def _shapes(models: tuple[type, ...], dialect: Any) -> tuple[_Shape, ...]:
    return tuple(_Shape(m, dialect) for m in models)


def columns_of(*models: type) -> list[Any]:
    """Every mapped column of ``models``, in the order :func:`load` reads them."""
    mappers: list[Any] = [inspect(m) for m in models]
    return [prop.columns[0] for mapper in mappers for prop in mapper.column_attrs]


def load(
    session: Session,
    conn: Connection,
    build: Build,
    models: tuple[type, ...],
    params: dict[str, Any],
) -> tuple[Any, ...] | None:
    """The first row of a SELECT of ``columns_of(*models)``, run on ``conn`` (the session's
    connection), as persistent instances of ``models`` in ``session`` (None if there is no
    row). A row the session already holds is returned as it holds it, as the ORM would."""
    row = run(conn, build, [params])
    return None if row is None else _attach(session, conn, models, row)


def read(
    conn: Connection, build: Build, models: tuple[type, ...], params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """Like :func:`load`, but the instances belong to no session yet (detached, as if loaded
    by a session since closed): :func:`adopt` makes them a session's. For a caller that may
    never need a session, which costs more than the query. Columns the statement selects
    after the models' follow the instances as the driver returns them."""
    row = run(conn, build, [params])
    if row is None:
        return None
    parts = list(_split(conn, models, row))
    used = sum(len(shape.keys) for shape, _ in parts)
    return (*(_detached(shape, values) for shape, values in parts), *row[used:])


def adopt(session: Session, objs: Sequence[Any]) -> None:
    """Make instances from :func:`read` persistent rows of ``session`` (which must not hold
    other copies of them): the session flushes only what is changed from here on.

    An unchanged row is put in the identity map as the ORM's own loading does (bot.router
    adopts the sender's rows for every message that uses a session; ``session.add`` with its
    cascades and events costs about four times as much). A row changed while detached goes
    through ``session.add``, which also keeps it alive until the flush."""
    for obj in objs:
        state = instance_state(obj)
        if state.modified:
            session.add(obj)
            continue
        session.identity_map.add(state)
        state.session_id = session.hash_key


def load_all(session: Session, build: Build, model: type, params: dict[str, Any]) -> list[Any]:
    """Every row of a SELECT of ``columns_of(model)`` as persistent instances in ``session``
    (its pending changes flushed first)."""
    conn = connection(session)
    return [_attach(session, conn, (model,), row)[0] for row in rows(conn, build, params)]


def _split(
    conn: Connection, models: tuple[type, ...], row: Sequence[Any]
) -> Iterator[tuple[_Shape, Sequence[Any]]]:
    """Each model's shape and its part of ``row``."""
    at = 0
    for shape in _shapes(models, conn.dialect):
        yield shape, row[at : at + len(shape.keys)]
        at += len(shape.keys)


def _detached(shape: _Shape, values: Sequence[Any]) -> Any:
    """An instance as a loaded row: its identity key set, nothing modified (the values went
    straight into its __dict__), so a session it is added to takes it as persistent and
    flushes only what a handler changes afterwards. (make_transient_to_detached does the
    same, and more bookkeeping a fresh instance does not need.)"""
    obj = shape.instance(values)
    instance_state(obj).key = shape.identity(values)
    return obj


def _attach(
    session: Session, conn: Connection, models: tuple[type, ...], row: Sequence[Any]
) -> tuple[Any, ...]:
    found = []
    for shape, values in _split(conn, models, row):
        held = session.identity_map.get(shape.identity(values)) if session.identity_map else None
        if held is None:
            held = _detached(shape, values)
            session.add(held)
        found.append(held)
    return tuple(found)
