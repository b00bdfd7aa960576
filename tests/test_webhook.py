"""Branch group robots against the fake WeCom: the switch, mentions, byte caps, 20 a minute."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from bot.channels.base import SendOutcome
from bot.channels.webhook import RobotChannel, robot_outgoing, robot_payloads
from bot.models import Org, OutboxMessage
from bot.outbox import Outgoing, enqueue
from tests.factories import small_bureau
from tests.fakes import wecom as fakes

fake_wecom = fakes.fake_wecom  # the fixture, used by name
wecom_settings = fakes.wecom_settings  # the fixture, used by name

KEY1 = "6b0c1e9a-0000-4000-8000-000000000001"


def with_robot(session, key: str | None = KEY1) -> dict[str, Any]:
    people = small_bureau(session)
    people["b1"].robot_key = key
    session.commit()
    return people


def put(engine, clock, items: list[Outgoing]) -> list[OutboxMessage]:
    with Session(engine, expire_on_commit=False) as s:
        enqueue(s, items, now=clock.now())
        s.commit()
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def send(settings, engine, clock, batch: list[OutboxMessage]) -> SendOutcome:
    async def scenario() -> SendOutcome:
        ch = RobotChannel(settings=settings, engine=engine, clock=clock)
        try:
            return await ch.send(batch)
        finally:
            await ch.aclose()

    return asyncio.run(scenario())


def test_robot_outgoing_follows_the_switch_and_the_roster(session, settings, clock):
    p = with_robot(session)
    b1, b2 = p["b1"], p["b2"]
    settings.wecom.robot_broadcast = False
    assert robot_outgoing(b1, "通知", "notice:3", clock.now(), settings=settings) is None
    settings.wecom.robot_broadcast = True
    assert robot_outgoing(b2, "通知", "notice:3", clock.now(), settings=settings) is None  # no key
    row = robot_outgoing(
        b1, "通知", "notice:3", clock.now(), settings=settings, mentions=["wangshuji"]
    )
    assert row is not None
    assert (row.channel, row.recipient, row.key) == (
        "robot",
        "第一党支部",
        f"notice:3:robot:{b1.id}",
    )
    assert row.body == {"msgtype": "text", "text": "通知", "mentioned_list": ["wangshuji"]}


def test_text_with_mentions_reaches_the_branch_group(
    wecom_settings, engine, clock, fake_wecom, session
):
    p = with_robot(session)
    row = robot_outgoing(
        p["b1"], "今天下午三点支部党员大会", "m:1", clock.now(), mentions=["zhangsan"]
    )
    batch = put(engine, clock, [row])
    assert send(wecom_settings, engine, clock, batch).delivered == {batch[0].id}
    [msg] = fake_wecom.robot_inbox[KEY1]
    assert msg == {
        "msgtype": "text",
        "text": {"content": "今天下午三点支部党员大会", "mentioned_list": ["zhangsan"]},
    }
    [call] = fake_wecom.calls_to("webhook/send")
    assert call["params"]["key"] == "***"  # the key is a credential: never in the record


def test_long_markdown_and_text_are_split_to_the_caps():
    md = "\n".join(f"**{i}** " + "学习贯彻" * 60 for i in range(20))
    parts = robot_payloads({"msgtype": "markdown", "markdown": md, "text": "x"})
    assert len(parts) > 1 and all(len(p["markdown"]["content"].encode()) <= 4096 for p in parts)
    text_parts = robot_payloads({"msgtype": "text", "text": md, "mentioned_list": ["a"]})
    assert all(len(p["text"]["content"].encode()) <= 2048 for p in text_parts)
    assert text_parts[0]["text"]["mentioned_list"] == ["a"]
    assert "mentioned_list" not in text_parts[-1]["text"]


def test_twenty_a_minute_per_robot(wecom_settings, engine, clock, fake_wecom, session):
    fake_wecom.now = lambda: clock.now().timestamp()
    p = with_robot(session)
    rows = put(
        engine,
        clock,
        [robot_outgoing(p["b1"], f"第{i}条", f"r:{i}", clock.now()) for i in range(21)],  # type: ignore[misc]
    )

    async def scenario() -> list[SendOutcome]:
        ch = RobotChannel(settings=wecom_settings, engine=engine, clock=clock)
        try:
            outs = [await ch.send([r]) for r in rows]
            clock.advance(seconds=61)
            outs.append(await ch.send([rows[-1]]))
            return outs
        finally:
            await ch.aclose()

    outs = asyncio.run(scenario())
    assert sum(len(o.delivered) for o in outs[:21]) == 20
    assert outs[20].retry[rows[20].id].startswith("paced")
    assert outs[21].delivered == {rows[20].id}
    assert all(c["errcode"] == 0 for c in fake_wecom.calls_to("webhook/send"))


def test_bad_or_missing_keys_are_refused_and_rate_limits_retried(
    wecom_settings, engine, clock, fake_wecom, session
):
    p = with_robot(session)
    fake_wecom.control(robot_keys=[KEY1])
    b2 = p["b2"]
    b2.robot_key = "not-a-real-key"
    session.commit()
    rows = put(
        engine,
        clock,
        [
            Outgoing(
                "a", "第二党支部", {"msgtype": "text", "text": "x"}, clock.now(), channel="robot"
            ),
            Outgoing(
                "b", "机关党委", {"msgtype": "text", "text": "x"}, clock.now(), channel="robot"
            ),
        ],
    )
    out = send(wecom_settings, engine, clock, rows)
    assert "93000" in out.rejected[rows[0].id]
    assert "no group robot key" in out.rejected[rows[1].id]
    fake_wecom.fail("webhook/send", 45009)
    row = put(engine, clock, [robot_outgoing(p["b1"], "y", "c", clock.now())])[-1]  # type: ignore[list-item]
    assert "45009" in send(wecom_settings, engine, clock, [row]).retry[row.id]


def test_a_robot_key_may_be_the_whole_webhook_url(
    wecom_settings, engine, clock, fake_wecom, session
):
    with_robot(session, key=f"{fake_wecom.url}/cgi-bin/webhook/send?key={KEY1}")
    with Session(engine) as s:
        b1 = s.execute(select(Org).where(Org.name == "第一党支部")).scalar_one()
    rows = put(engine, clock, [robot_outgoing(b1, "全文链接也行", "u", clock.now())])  # type: ignore[list-item]
    assert send(wecom_settings, engine, clock, rows).delivered == {rows[0].id}
    assert fake_wecom.robot_inbox[KEY1][0]["text"]["content"] == "全文链接也行"
