"""A serving process freezes its start-up heap and keeps the day's 总览 snapshot computed."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest

from bot import status
from bot.app import create_app
from bot.calendar import local_date
from bot.warmup import keep_warm, seconds_until_next_day
from tests.chatkit import shanghai
from tests.fakes.live import LiveServer


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (shanghai(2026, 11, 25, 10, 7), 13 * 3600 + 53 * 60 + 30),
        (shanghai(2026, 12, 31, 23, 59), 90),  # across the year end
        (shanghai(2027, 1, 1, 0, 0), 24 * 3600 + 30),
    ],
)
def test_next_warm_up_is_just_after_local_midnight(now, seconds):
    assert seconds_until_next_day(now) == seconds


def test_keep_warm_computes_the_snapshot_before_the_first_reader(runtime, bureau, monkeypatch):
    computed = []
    real = status.scorecards

    def counting(**kwargs):
        computed.append(kwargs["now"])
        return real(**kwargs)

    monkeypatch.setattr(status, "scorecards", counting)

    async def one_round() -> None:
        task = asyncio.create_task(keep_warm(runtime))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if computed:
                break
        task.cancel()

    asyncio.run(one_round())
    assert len(computed) == 1
    assert local_date(computed[0]) == local_date(runtime.clock.now())
    # The first 总览 of the day now takes the snapshot instead of computing it.
    from sqlmodel import Session

    with Session(runtime.engine) as session:
        status.overview(session=session, settings=runtime.settings, now=runtime.clock.now())
    assert len(computed) == 1


def test_a_serving_app_freezes_its_start_up_heap(runtime):
    gc.unfreeze()
    try:
        with LiveServer(create_app(runtime, scheduler=False, warmup=True)) as url:
            assert httpx.get(f"{url}/healthz").status_code == 200
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
