"""Byte caps cut at line ends, and per-key sliding windows."""

from __future__ import annotations

from datetime import timedelta

from bot.channels.limits import Pacer, split_text
from bot.clock import FixedClock


def test_short_text_is_one_part():
    assert split_text("收到", 2048) == ["收到"]


def test_text_is_cut_at_line_ends_under_the_cap():
    text = "\n".join(f"第{i}条：" + "学" * 100 for i in range(40))
    parts = split_text(text, 2048)
    assert len(parts) > 1 and all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == text
    assert all(p.startswith("第") for p in parts)  # no line is cut in the middle


def test_a_line_longer_than_the_cap_is_cut_between_characters():
    parts = split_text("党" * 1000, 2048)  # 3000 bytes, one line
    assert [len(p.encode()) for p in parts] == [2046, 954]
    assert "".join(parts) == "党" * 1000


def test_pacer_windows(clock: FixedClock):
    pacer = Pacer([(60, 30), (3600, 1000)])
    assert all(pacer.take("u", clock.now()) for _ in range(30))
    assert not pacer.take("u", clock.now())
    assert pacer.take("v", clock.now())  # per key
    clock.advance(timedelta(seconds=61))
    assert pacer.take("u", clock.now(), cost=2)
    pacer.forget("u", 2)
    for _ in range(33):  # 30 a minute, for 33 minutes: the hour cap is not reached
        for _ in range(30):
            assert pacer.take("w", clock.now())
        clock.advance(timedelta(seconds=61))
    assert len(pacer._sent["w"]) == 990
    assert pacer.take("w", clock.now(), cost=10)
    assert not pacer.take("w", clock.now())  # 1000 in the hour
