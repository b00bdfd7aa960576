"""The Channel protocol: how an outbox batch leaves the building.

A channel receives a batch of outbox rows that share one body (the dispatcher groups them)
and reports, per row, whether the far side confirmed it, refused it for good, or failed in a
way worth retrying. It never marks rows itself: the dispatcher does, after the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class OutboxRow(Protocol):
    """What a channel reads of an outbox row: an ``OutboxMessage``, or the plain
    :class:`bot.outbox.Claimed` a dispatcher's claim returns."""

    @property
    def id(self) -> int | None: ...
    @property
    def key(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def body(self) -> dict[str, Any]: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def attempts(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


@dataclass
class SendOutcome:
    delivered: set[int] = field(default_factory=set)
    """Outbox ids the far side confirmed."""
    rejected: dict[int, str] = field(default_factory=dict)
    """Outbox ids refused for good (e.g. WeCom's invaliduser), with the reason. A reason that
    starts with ``unknown`` (here or in ``retry`` once the tries run out) settles the row as
    ``unknown`` — it may have arrived — rather than ``failed``."""
    retry: dict[int, str] = field(default_factory=dict)
    """Outbox ids to try again later (rate limit, timeout, server error), with the reason."""

    def merge(self, other: SendOutcome) -> None:
        self.delivered |= other.delivered
        self.rejected.update(other.rejected)
        self.retry.update(other.retry)


class Channel(Protocol):
    """A way out. ``max_batch`` rows with the same body may be handed over at once."""

    name: str
    max_batch: int

    async def send(self, batch: list[OutboxRow]) -> SendOutcome: ...

    async def aclose(self) -> None: ...
