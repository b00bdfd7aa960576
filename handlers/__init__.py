"""Chat capabilities, one module each. ``HANDLERS`` is the registry: order is priority, help last.

Adding a command: write ``handlers/<name>.py`` with a ``COMMANDS`` tuple, add the module here,
and add ``tests/test_handlers_<name>.py``.
"""

from handlers import help

HANDLERS = (help,)
