"""Channels: console, WeCom app, WeCom group robot. Built from settings by ``build_channels``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.channels.base import Channel
    from bot.clock import Clock
    from bot.config import Settings


def build_channels(
    settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
) -> dict[str, Channel]:
    """The channels an outbox row may name, keyed by ``OutboxMessage.channel``.

    The WeCom channels keep the shared access token in the database and read robot keys from
    it: pass the runtime's ``engine`` and ``clock`` (without them they build their own).
    """
    from bot.channels.console import ConsoleChannel

    console = ConsoleChannel(log_path=settings.bot.console_log or None)
    channels: dict[str, Channel] = {"console": console}
    if settings.bot.channel == "console":
        # Without WeCom everything is shown on the console, robot messages included.
        channels["wecom"] = console
        channels["robot"] = console
    else:
        from bot.channels.webhook import RobotChannel
        from bot.channels.wecom import WeComChannel

        if engine is None:
            from bot.db import make_engine

            engine = make_engine(settings.database.url)
        channels["wecom"] = WeComChannel.from_settings(settings, engine=engine, clock=clock)
        channels["robot"] = RobotChannel.from_settings(settings, engine=engine, clock=clock)
    return channels
