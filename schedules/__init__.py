"""Reminder rules: pure planners ``due(now, data, settings) -> list[Reminder]``.

``RULES`` lists them, one module per rule of DESIGN §4.6 (see ``schedules.base`` for the
contract). ``schedules.runner`` loads the data, calls them and applies the sending policy.
"""

from __future__ import annotations

from schedules import (
    birthdays,
    cadence,
    digest,
    dues,
    leaders,
    meetings,
    milestones,
    notices,
    study,
    terms,
    theme_day,
)
from schedules.base import Rule

RULES: tuple[Rule, ...] = (
    cadence,
    meetings,
    theme_day,
    dues,
    birthdays,
    milestones,
    notices,
    study,
    digest,
    terms,
    leaders,
)
