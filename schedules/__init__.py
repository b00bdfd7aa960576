"""Reminder rules: pure planners ``due(now, data, config) -> list[Reminder]``. ``RULES`` lists them."""

RULES: tuple = ()
