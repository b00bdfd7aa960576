"""Upgrades: a database made by the first released schema, with data, reaches head with no row
lost, and a migrated database matches the models exactly (Alembic's ``compare_metadata``).

Runs on the suite's database kind: SQLite files of its own, or, on PostgreSQL, a schema of its
own inside the test database (dropped afterwards). The data is made from the tables as they
were at the first revision (reflected, not from today's models), so the test keeps its meaning
when later revisions change the models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlmodel import Session, SQLModel, col

import bot.models  # noqa: F401  (the models to compare with)
from bot.db import current_revision, head_revision, make_engine, upgrade
from bot.models import Member, Org

FIRST_RELEASED = "0001"
"""The schema of the first release: every upgrade path starts here."""
ROWS = 3
PG_URL = os.environ.get("MOFAN_TEST_DATABASE_URL")
PG_SCHEMA = "mofan_upgrade_test"


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of the suite's kind."""
    if not PG_URL:
        engine = make_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
        yield engine
        engine.dispose()
        return
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    engine = create_engine(
        PG_URL, connect_args={"options": f"-c search_path={PG_SCHEMA}"}, pool_pre_ping=True
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        admin.dispose()


def drift(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


def test_a_head_database_matches_the_models(empty_engine):
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert drift(empty_engine) == []


def test_upgrade_is_idempotent(empty_engine):
    upgrade(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


def test_first_release_with_data_upgrades_to_head_without_losing_a_row(empty_engine):
    upgrade(empty_engine, FIRST_RELEASED)
    assert current_revision(empty_engine) == FIRST_RELEASED
    old = MetaData()
    old.reflect(empty_engine)
    fill(empty_engine, old)
    before = primary_keys(empty_engine, old)
    assert all(len(keys) == ROWS for keys in before.values()), before

    upgrade(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert drift(empty_engine) == []
    new = MetaData()
    new.reflect(empty_engine)
    after = primary_keys(empty_engine, new, only=before)
    for name, keys in before.items():
        assert after.get(name) == keys, f"rows of {name} changed in the upgrade"
    # Today's code reads the upgraded rows.
    with Session(empty_engine) as s:
        assert s.execute(select(func.count()).select_from(Member)).scalar_one() == ROWS
        assert [o.name for o in s.scalars(select(Org).order_by(col(Org.id)))] == [
            f"name-{i}" for i in range(ROWS)
        ]


def fill(engine: Engine, metadata: MetaData) -> None:
    """``ROWS`` rows in every table, made from its columns' types, parents first."""
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            conn.execute(table.insert(), [_row(table, i, engine) for i in range(ROWS)])
        if engine.dialect.name == "postgresql":
            # Ids were given explicitly: move the sequences past them, as a real database is.
            for table in metadata.sorted_tables:
                for c in table.primary_key.columns:
                    if isinstance(c.type, Integer):
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                f"'{c.name}'), {ROWS}) WHERE pg_get_serial_sequence("
                                f"'{table.name}', '{c.name}') IS NOT NULL"
                            )
                        )


def _row(table: Table, i: int, engine: Engine) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for c in table.columns:
        fk = next(iter(c.foreign_keys), None)
        if fk is not None:
            # Self references (a parent org) stay empty; others point at row i of the parent.
            row[c.name] = None if fk.column.table is table and c.nullable else i + 1
        else:
            row[c.name] = _value(c.name, c.type, i, engine, c.primary_key)
    return row


def _value(name: str, type_: Any, i: int, engine: Engine, pk: bool) -> Any:
    if isinstance(type_, Boolean):
        return i % 2 == 0
    if isinstance(type_, Integer):
        return i + 1 if pk else i
    if isinstance(type_, Float | Numeric):
        return float(i)
    if isinstance(type_, DateTime):
        at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC) + timedelta(days=i)
        return at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at
    if isinstance(type_, Date):
        return date(2026, 3, 1) + timedelta(days=i)
    if isinstance(type_, JSON):
        return {"msgtype": "text", "text": f"{name}-{i}"}
    if isinstance(type_, String):
        value = f"{name}-{i}"
        return value[-type_.length :] if type_.length else value
    raise AssertionError(f"no test value for {name}: {type_!r}; teach _value this type")


def primary_keys(
    engine: Engine, metadata: MetaData, only: dict[str, Any] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version" or (only is not None and table.name not in only):
                continue
            pk = list(table.primary_key.columns)
            out[table.name] = sorted(tuple(r) for r in conn.execute(select(*pk)))
    return out
