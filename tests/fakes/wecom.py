"""Fixtures: the fake WeCom on loopback, settings pointing at it, and the bot served live.

Import the fixtures you use into a test module (``from tests.fakes.wecom import fake_wecom``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.fake_wecom import (
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
    FakeWeCom,
    WeComPlayer,
)
from tests.fakes.live import LiveServer


class RunningFake(FakeWeCom):
    url: str = ""


@pytest.fixture
def fake_wecom() -> Iterator[RunningFake]:
    """A fresh fake WeCom served on a free loopback port; ``.url`` is its api_base."""
    fake = RunningFake()
    server = LiveServer(fake.app)
    fake.url = server.start()
    try:
        yield fake
    finally:
        server.stop()


def configure_wecom(settings: Settings, api_base: str) -> Settings:
    """``settings`` set up as a WeCom app that the fake (and the player) agree with."""
    w = settings.wecom
    w.corp_id, w.agent_id, w.secret = DEFAULT_CORP_ID, DEFAULT_AGENT_ID, DEFAULT_SECRET
    w.token, w.encoding_aes_key, w.api_base = DEFAULT_TOKEN, DEFAULT_AES_KEY, api_base
    settings.bot.channel = "wecom"
    return settings


@pytest.fixture
def wecom_settings(settings: Settings, fake_wecom: RunningFake) -> Settings:
    return configure_wecom(settings, fake_wecom.url)


def player_for(url: str) -> WeComPlayer:
    return WeComPlayer(
        url=url.rstrip("/") + "/wecom/callback",
        token=DEFAULT_TOKEN,
        encoding_aes_key=DEFAULT_AES_KEY,
        corp_id=DEFAULT_CORP_ID,
        agent_id=DEFAULT_AGENT_ID,
    )
