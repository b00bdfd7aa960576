"""The assembled bot: settings, clock, engine, router, channels and dispatcher, built once.

Built by the CLI and the HTTP app from a :class:`Settings`; tests build one with a
:class:`FixedClock` and their own engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from bot.channels.base import Channel
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import make_engine
from bot.outbox import Dispatcher
from bot.router import Router


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    engine_override: Engine | None = None
    channels_override: dict[str, Channel] | None = None

    @cached_property
    def engine(self) -> Engine:
        if self.engine_override is not None:
            return self.engine_override
        return make_engine(
            self.settings.database.url,
            busy_timeout_ms=self.settings.database.sqlite_busy_timeout_ms,
        )

    @cached_property
    def router(self) -> Router:
        return Router(engine=self.engine, clock=self.clock, settings=self.settings)

    @cached_property
    def channels(self) -> dict[str, Channel]:
        if self.channels_override is not None:
            return self.channels_override
        from bot.channels import build_channels

        return build_channels(self.settings, engine=self.engine, clock=self.clock)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            engine=self.engine,
            channels=self.channels,
            clock=self.clock,
            settings=self.settings.outbox,
        )

    def dispose_engine(self) -> None:
        """Close the connection pool, if one was opened (and is ours)."""
        if self.engine_override is None and "engine" in self.__dict__:
            self.engine.dispose()

    async def aclose(self) -> None:
        channels = self.__dict__.get("channels") or {}
        for ch in {id(c): c for c in channels.values()}.values():
            await ch.aclose()
        if self.engine_override is None and "engine" in self.__dict__:
            self.engine.dispose()
