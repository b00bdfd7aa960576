"""A database at the schema's head with nothing in it, for the test suite and bench/."""

from __future__ import annotations

from sqlalchemy import Engine, text

from bot.db import make_engine, upgrade


def fresh_database(url: str) -> Engine:
    """An engine on ``url``, migrated to head. On PostgreSQL the ``public`` schema is dropped
    and made again first — everything in it is lost, so never point this at a bot's own
    database; a SQLite file is migrated as it is (give it a new path for an empty one)."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine
