"""The access token, stored once for every worker in the ``AppState`` table.

WeCom gives one token per app secret, valid 7200 s, and rate-limits ``gettoken``
(wecom-api.md §3.1), so workers share one copy: the row ``wecom_token:<corp>:<agent>`` holds
the token and its expiry; a second row, ``…:lock``, is a lease that one worker takes (by
compare-and-set, which works on SQLite and PostgreSQL alike) while it fetches a new token. A
worker that dies holding the lease only delays the next refresh by the lease's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot.models import AppState


@dataclass(frozen=True)
class StoredToken:
    token: str
    expires_at: datetime
    fetched_at: datetime | None = None
    """When it was last fetched: WeCom hands out the same token again while it lasts, so a
    token fetched a moment ago is not fetched again even if little of it is left."""


class TokenStore:
    """Read, write and lock the shared token row. All calls are short transactions."""

    def __init__(self, engine: Engine, *, corp_id: str, agent_id: int) -> None:
        self.engine = engine
        self.name = f"wecom_token:{corp_id}:{agent_id}"[:59]
        self.lock_name = self.name + ":lock"

    def read(self) -> StoredToken | None:
        with Session(self.engine) as session:
            row = session.get(AppState, self.name)
            if row is None or not row.value or row.expires_at is None:
                return None
            try:
                data = json.loads(row.value)
                fetched = datetime.fromisoformat(data["fetched_at"])
                return StoredToken(str(data["token"]), row.expires_at, fetched)
            except (ValueError, KeyError, TypeError):
                return None

    def write(self, token: str, *, expires_at: datetime, fetched_at: datetime) -> None:
        self._ensure(self.name)
        value = json.dumps({"token": token, "fetched_at": fetched_at.isoformat()})
        with Session(self.engine) as session:
            session.execute(
                update(AppState)
                .where(col(AppState.name) == self.name)
                .values(value=value, expires_at=expires_at)
            )
            session.commit()

    def try_lock(self, holder: str, *, now: datetime, lease: timedelta) -> bool:
        """Take the refresh lease if it is free or expired (compare-and-set)."""
        self._ensure(self.lock_name)
        with Session(self.engine) as session:
            result = session.execute(
                update(AppState)
                .where(
                    col(AppState.name) == self.lock_name,
                    or_(
                        col(AppState.holder).is_(None),
                        col(AppState.holder) == holder,
                        col(AppState.expires_at) < now,
                    ),
                )
                .values(holder=holder, expires_at=now + lease)
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def unlock(self, holder: str) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(AppState)
                .where(col(AppState.name) == self.lock_name, col(AppState.holder) == holder)
                .values(holder=None, expires_at=None)
            )
            session.commit()

    def _ensure(self, name: str) -> None:
        with Session(self.engine) as session:
            if session.execute(
                select(col(AppState.name)).where(col(AppState.name) == name)
            ).first():
                return
            dialect = self.engine.dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            session.execute(
                insert(AppState)
                .values(name=name, value="")
                .on_conflict_do_nothing(index_elements=["name"])
            )
            session.commit()
