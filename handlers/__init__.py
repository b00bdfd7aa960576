"""Chat capabilities, one module each. ``HANDLERS`` is the registry: order is priority, help last.

Adding a command: write ``handlers/<name>.py`` with a ``COMMANDS`` tuple, add the module here,
and add ``tests/test_handlers_<name>.py``. (``handlers/common.py`` holds shared helpers and
is not a capability.)
"""

from handlers import (
    checkin,
    dues,
    feedback,
    help,
    ledger,
    meetings,
    notices,
    status,
    study,
    tasks,
)

HANDLERS = (checkin, study, notices, status, meetings, tasks, dues, feedback, ledger, help)
