"""Alembic environment: the engine comes from the caller (``bot.db.upgrade``) or the URL."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
config = context.config
engine = config.attributes.get("engine")
if engine is None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
