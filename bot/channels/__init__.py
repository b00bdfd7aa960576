"""Channels: console, WeCom app, WeCom group robot. Built from settings by ``build_channels``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.config import Settings


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels an outbox row may name, keyed by ``OutboxMessage.channel``."""
    from bot.channels.console import ConsoleChannel

    console = ConsoleChannel(log_path=settings.bot.console_log or None)
    channels: dict[str, Channel] = {"console": console}
    if settings.bot.channel == "console":
        # Without WeCom everything is shown on the console, robot messages included.
        channels["wecom"] = console
        channels["robot"] = console
    else:
        from bot.channels.wecom import WeComChannel
        from bot.channels.webhook import RobotChannel

        channels["wecom"] = WeComChannel.from_settings(settings)
        channels["robot"] = RobotChannel.from_settings(settings)
    return channels
