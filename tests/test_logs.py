"""Logs: one JSON event per line off a terminal, and never a secret or a phone number.

The main test plays a whole working day against the real WeCom channel and the fake WeCom:
members talk to the bot through the encrypted callback (one of them with a phone number as
their WeCom account, one quoting their own number), the office broadcasts, the planner and
the dispatcher run through the day, WeCom fails and ends tokens early, and a forged request
arrives. Every line logged at DEBUG, in both formats, is then searched for the app secret,
the callback token and key, every access token issued, and every member's phone number.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlmodel import Session

from bot.app import create_app
from bot.channels import build_channels
from bot.clock import SHANGHAI, FixedClock
from bot.fake_wecom import DEFAULT_AES_KEY, DEFAULT_SECRET, DEFAULT_TOKEN
from bot.logs import JsonFormatter, RequestIdFilter, TextFormatter, redact
from bot.runtime import Runtime
from tests.factories import member, small_bureau
from tests.fakes.live import LiveServer
from tests.fakes.wecom import configure_wecom, fake_wecom, player_for  # noqa: F401

PHONE_USERID = "13700001234"
"""Some bureaus use mobile numbers as WeCom accounts: such a userid is a phone number too."""


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Everything logged, as the JSON lines and as the terminal text ops would see."""
    as_json, as_text = io.StringIO(), io.StringIO()
    handlers = []
    for out, fmt in (
        (as_json, JsonFormatter()),
        (as_text, TextFormatter("%(levelname)s %(name)s [%(request_id)s] %(message)s")),
    ):
        h = logging.StreamHandler(out)
        h.setLevel(logging.DEBUG)
        h.addFilter(RequestIdFilter())
        h.setFormatter(fmt)
        handlers.append(h)
    root = logging.getLogger()
    old = root.level
    for h in handlers:
        root.addHandler(h)
    root.setLevel(logging.DEBUG)
    try:
        yield as_json, as_text
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(old)


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, 25, hh, mm, tzinfo=SHANGHAI)


def test_a_scripted_day_logs_no_secret_and_no_phone(
    settings,
    engine,
    fake_wecom,  # noqa: F811  (the fixture imported above)
    captured,
):
    configure_wecom(settings, fake_wecom.url)
    with Session(engine) as s:
        people = small_bureau(s)
        member(s, people["b1"], "陈手机", userid=PHONE_USERID)  # type: ignore[arg-type]
        phones = {}
        for i, m in enumerate(_members(s)):
            m.phone = PHONE_USERID if m.userid == PHONE_USERID else f"1391234{i:04d}"
            phones[m.userid] = m.phone
        s.commit()

    clock = FixedClock(at(8, 0))
    server_rt = Runtime(settings=settings, clock=clock, engine_override=engine)
    worker_rt = Runtime(
        settings=settings,
        clock=clock,
        engine_override=engine,
        channels_override=build_channels(settings, engine=engine, clock=clock),
    )
    app = create_app(server_rt, scheduler=False)
    script = [
        (at(8, 40), "wangshuji", "安排 支委会 11月27日 14:30 三楼会议室 第一议题学习"),
        (at(9, 5), "zhouban", "通知 全体 请于周五前提交学习笔记"),
        (at(9, 30), "zhangsan", "收到"),
        (at(9, 31), "zhangsan", "学习 40分钟 第一议题"),
        (at(10, 0), "zhaosi", f"我的手机号换成 {phones['zhaosi']} 了，请更新"),
        (at(10, 1), "zhaosi", f"意见 请把我的手机 {phones['zhaosi']} 加到名册"),
        (at(10, 30), PHONE_USERID, "帮助"),
        (at(11, 0), PHONE_USERID, "我的"),
        (at(14, 0), "wangshuji", "状态"),
        (at(14, 5), "wangshuji", "未确认"),
        (at(14, 10), "wangshuji", "催办"),
        (at(15, 0), "stranger", "你好"),
        (at(16, 0), "wuweiyuan", "总览"),
        (at(17, 0), "liweiyuan", "签到"),
    ]

    async def day() -> None:
        with player_for(url) as player:
            for when, userid, text in script:
                clock.set(when)
                await asyncio.to_thread(player.say, userid, text)
                if when.hour == 10:
                    fake_wecom.fail("message/send", 45009)  # rate limited once
                if when.hour == 14:
                    fake_wecom.expire_tokens()  # WeCom ended the tokens early
                await asyncio.to_thread(_plan, worker_rt)
                await worker_rt.dispatcher.drain()
            # A forged request: wrong signature.
            params, body = player.envelope(player.text_xml("zhangsan", "帮助"))
            params["msg_signature"] = "0" * 40
            await asyncio.to_thread(player.client.post, player.url, params=params, content=body)
        for hh in (17, 18):
            clock.set(at(hh, 30))
            await asyncio.to_thread(_plan, worker_rt)
            await worker_rt.dispatcher.drain()
        await worker_rt.aclose()

    with LiveServer(app) as url:
        asyncio.run(day())

    as_json, as_text = (c.getvalue() for c in captured)
    issued = [
        c["answer"]["access_token"]
        for c in fake_wecom.calls_to("gettoken")
        if c["answer"].get("access_token")
    ]
    assert issued, "the day should have fetched access tokens"
    assert fake_wecom.calls_to("message/send"), "the day should have sent messages"
    # The day really did log the places where secrets could leak.
    assert "corpsecret=***" in as_json and "access_token=***" in as_json
    forbidden = {
        "app secret": DEFAULT_SECRET,
        "callback token": DEFAULT_TOKEN,
        "EncodingAESKey": DEFAULT_AES_KEY,
        **{f"access token {t[:6]}…": t for t in issued},
        **{f"phone of {uid}": phone for uid, phone in phones.items()},
    }
    for name, out in (("JSON", as_json), ("text", as_text)):
        leaks = [what for what, value in forbidden.items() if value in out]
        assert not leaks, f"{name} log shows {leaks}"
    for line in as_json.splitlines():
        event = json.loads(line)  # one event per line, each a JSON object
        assert {"ts", "level", "logger", "msg"} <= event.keys()


def _members(s: Session) -> list:
    from sqlalchemy import select

    from bot.models import Member

    return list(s.scalars(select(Member).order_by(Member.id)))


def _plan(rt: Runtime) -> None:
    from schedules.runner import plan_and_enqueue

    plan_and_enqueue(rt)


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("call 13912345678 now", "call 139****5678 now"),
        ("+8613912345678", "+86139****5678"),
        ("手机 139-1234-5678，座机 010-12345678", "手机 139****5678，座机 010-12345678"),
        ("139 1234 5678", "139****5678"),
        ("gettoken?corpid=ww1&corpsecret=abc-DEF_1", "gettoken?corpid=ww1&corpsecret=***"),
        ("send?access_token=tok123&debug=1", "send?access_token=***&debug=1"),
        ("webhook/send?key=693a91f6-7xxx", "webhook/send?key=***"),
        ("order 2026112512345678 is not a phone", "order 2026112512345678 is not a phone"),
    ],
)
def test_redact_masks_phones_and_secret_parameters(raw, shown):
    assert redact(raw) == shown
