"""The thin runner: load data, call every rule, put the reminders in the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runtime import Runtime


def plan_and_enqueue(runtime: Runtime) -> int:
    """One planning pass; returns how many new messages went into the outbox."""
    return 0
