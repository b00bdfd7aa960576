"""``python -m bot`` is ``mofan``."""

from bot.cli import main

main()
