"""The WeCom app channel against the fake WeCom over HTTP: the shared token, batches of
1000, partial failures, retries without doubles, pacing, splitting, cards, files, and a
broadcast that survives rate-limit storms, an expired token and a dispatcher killed mid-send."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from bot.channels.base import SendOutcome
from bot.channels.wecom import WeComAPI, WeComChannel, WeComError
from bot.channels.wecom.channel import task_id_for
from bot.config import OutboxSettings
from bot.models import AppState, OutboxMessage
from bot.outbox import Dispatcher, Outgoing, enqueue, text_body
from tests.factories import small_bureau
from tests.fakes import wecom as fakes

fake_wecom = fakes.fake_wecom  # the fixture, used by name
wecom_settings = fakes.wecom_settings  # the fixture, used by name


def put(
    engine, clock, recipients: list[str], body: dict[str, Any], key: str = "n1"
) -> list[OutboxMessage]:
    with Session(engine, expire_on_commit=False) as s:
        enqueue(
            s,
            [
                Outgoing(key=f"{key}:{u}", recipient=u, body=body, due_at=clock.now())
                for u in recipients
            ],
            now=clock.now(),
        )
        s.commit()
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def rows(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def channel_for(settings, engine, clock, **kw: Any) -> WeComChannel:
    return WeComChannel(settings=settings, engine=engine, clock=clock, **kw)


def dispatcher(engine, channel, clock, worker: str = "w1", **kw: Any) -> Dispatcher:
    return Dispatcher(
        engine=engine,
        channels={"wecom": channel},
        clock=clock,
        settings=OutboxSettings(backoff_seconds=0, **kw),
        worker_id=worker,
    )


def test_the_token_is_fetched_once_and_shared_by_workers(wecom_settings, engine, clock, fake_wecom):
    fake_wecom.now = lambda: clock.now().timestamp()

    async def scenario() -> None:
        a = WeComAPI(settings=wecom_settings.wecom, engine=engine, clock=clock)
        b = WeComAPI(settings=wecom_settings.wecom, engine=engine, clock=clock)  # another worker
        try:
            t1 = await a.token()
            t2 = await b.token()
            assert t1 == t2
            assert len(fake_wecom.calls_to("gettoken")) == 1
            # Five minutes before expiry it is renewed, once, by whoever asks first.
            clock.advance(seconds=7200 - 4 * 60)
            await asyncio.gather(a.token(), b.token())
            assert len(fake_wecom.calls_to("gettoken")) == 2
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())
    with Session(engine) as s:
        names = sorted(r.name for r in s.execute(select(AppState)).scalars())
    assert names == [
        f"wecom_token:{wecom_settings.wecom.corp_id}:{wecom_settings.wecom.agent_id}",
        f"wecom_token:{wecom_settings.wecom.corp_id}:{wecom_settings.wecom.agent_id}:lock",
    ]


def test_a_token_wecom_ended_early_is_replaced_and_the_call_retried_once(
    wecom_settings, engine, clock, fake_wecom
):
    put(engine, clock, ["zhangsan"], text_body("第一条"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            await dispatcher(engine, ch, clock).drain()
            fake_wecom.expire_tokens()
            put(engine, clock, ["zhangsan"], text_body("第二条"), key="n2")
            await dispatcher(engine, ch, clock).drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert fake_wecom.texts("zhangsan") == ["第一条", "第二条"]
    codes = [c["errcode"] for c in fake_wecom.calls_to("message/send")]
    assert codes == [0, 42001, 0]
    assert len(fake_wecom.calls_to("gettoken")) == 2


def test_a_wrong_secret_is_retried_later_not_lost(wecom_settings, engine, clock, fake_wecom):
    wecom_settings.wecom.secret = "wrong"
    [row] = put(engine, clock, ["zhangsan"], text_body("hi"))

    async def scenario() -> SendOutcome:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            with pytest.raises(WeComError) as err:
                await ch.api.token()
            assert err.value.errcode == 40001
            return await ch.send([row])
        finally:
            await ch.aclose()

    out = asyncio.run(scenario())
    assert "40001" in out.retry[row.id]


def test_one_call_per_thousand_and_invalid_users_refused_for_good(
    wecom_settings, engine, clock, fake_wecom
):
    users = [f"m{i:04d}" for i in range(2500)]
    fake_wecom.control(invalid_users=["m0007", "m1500"])
    put(engine, clock, users, text_body("全体党员：周五下午学习。"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            report = await dispatcher(engine, ch, clock, batch_size=5000).drain()
            assert (report.sent, report.failed) == (2498, 2)
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    sends = fake_wecom.calls_to("message/send")
    assert [len(c["body"]["touser"].split("|")) for c in sends] == [1000, 1000, 500]
    assert all(c["body"]["agentid"] == wecom_settings.wecom.agent_id for c in sends)
    failed = {r.recipient: r.last_error for r in rows(engine) if r.status == "failed"}
    assert set(failed) == {"m0007", "m1500"} and failed["m0007"].startswith("invaliduser")


def test_81013_refuses_the_whole_batch(wecom_settings, engine, clock, fake_wecom):
    fake_wecom.control(invalid_users=["ghost1", "ghost2"])
    batch = put(engine, clock, ["ghost1", "ghost2"], text_body("hi"))

    async def scenario() -> SendOutcome:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            return await ch.send(batch)
        finally:
            await ch.aclose()

    out = asyncio.run(scenario())
    assert set(out.rejected) == {r.id for r in batch}
    assert all(v.startswith("81013") for v in out.rejected.values())


def test_a_retry_asks_wecom_to_drop_duplicates(wecom_settings, engine, clock, fake_wecom):
    fake_wecom.fail("message/send", 45009, times=1)
    put(engine, clock, ["zhangsan", "lisi"], text_body("通知"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            await dispatcher(engine, ch, clock).drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    first, second = fake_wecom.calls_to("message/send")
    assert first["errcode"] == 45009 and "enable_duplicate_check" not in first["body"]
    assert second["body"]["enable_duplicate_check"] == 1
    assert (
        second["body"]["duplicate_check_interval"] == wecom_settings.wecom.duplicate_check_interval
    )
    assert all(r.status == "sent" and r.attempts == 2 for r in rows(engine))


def test_each_member_is_paced_to_thirty_a_minute(wecom_settings, engine, clock, fake_wecom):
    fake_wecom.now = lambda: clock.now().timestamp()  # the fake's rate window follows our clock
    for i in range(31):
        put(engine, clock, ["zhangsan"], text_body(f"提醒 {i}"), key=f"r{i}")

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            d = dispatcher(engine, ch, clock)
            await d.run_once()
            left = [r for r in rows(engine) if r.status != "sent"]
            assert len(left) == 1 and left[0].last_error.startswith("paced")
            clock.advance(seconds=61)
            await d.drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert len(fake_wecom.texts("zhangsan")) == 31 and not fake_wecom.dropped


def test_long_text_goes_in_parts_cut_at_line_ends(wecom_settings, engine, clock, fake_wecom):
    text = "\n".join(f"{i:02d} " + "支部学习安排" * 20 for i in range(12))
    put(engine, clock, ["zhangsan"], text_body(text))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            await dispatcher(engine, ch, clock).drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    parts = fake_wecom.texts("zhangsan")
    assert len(parts) > 1 and all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == text


CARD = {
    "msgtype": "template_card",
    "template_card": {
        "card_type": "button_interaction",
        "task_id": "notice-12",
        "main_title": {"title": "通知 12", "desc": "请于周五前确认"},
        "button_list": [{"text": "确认收到", "style": 1, "key": "收到 12"}],
    },
    "text": "通知 12：请于周五前确认。回复「收到 12」确认。",
}


def test_cards_get_a_stable_task_id_and_text_only_sends_the_fallback(
    wecom_settings, engine, clock, fake_wecom
):
    batch = put(engine, clock, ["zhangsan", "lisi"], CARD)

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        plain = channel_for(wecom_settings, engine, clock, text_only=True)
        try:
            await ch.send(batch)
            await plain.send(batch)
        finally:
            await ch.aclose()
            await plain.aclose()

    asyncio.run(scenario())
    card_call, text_call = fake_wecom.calls_to("message/send")
    sent = card_call["body"]["template_card"]
    assert sent["task_id"] == task_id_for(batch, 0, "notice-12")
    assert sent["task_id"].startswith("notice-12_") and len(sent["task_id"]) <= 128
    assert sent["button_list"][0]["key"] == "收到 12"
    assert text_call["body"] == {
        "touser": "zhangsan|lisi",
        "agentid": wecom_settings.wecom.agent_id,
        "msgtype": "text",
        "text": {"content": CARD["text"]},
    }


def test_a_file_is_uploaded_once_and_sent(
    wecom_settings, engine, clock, fake_wecom, tmp_path: Path
):
    export = tmp_path / "台账.xlsx"
    export.write_bytes(b"PK\x03\x04 fake xlsx")
    body = {"msgtype": "file", "path": str(export), "text": "台账已生成"}
    put(engine, clock, ["zhouban"], body, key="a")
    put(engine, clock, ["wangshuji"], body, key="b")

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            d = dispatcher(engine, ch, clock, batch_size=1)
            await d.drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    [upload] = fake_wecom.calls_to("media/upload")
    assert upload["body"]["filename"] == "台账.xlsx"
    media_ids = {c["body"]["file"]["media_id"] for c in fake_wecom.calls_to("message/send")}
    assert len(media_ids) == 1 and fake_wecom.received("zhouban")[0]["msgtype"] == "file"


def test_a_missing_file_is_refused_not_retried(wecom_settings, engine, clock, fake_wecom, tmp_path):
    [row] = put(
        engine, clock, ["zhouban"], {"msgtype": "file", "path": str(tmp_path / "gone.xlsx")}
    )

    async def scenario() -> SendOutcome:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            return await ch.send([row])
        finally:
            await ch.aclose()

    assert row.id in asyncio.run(scenario()).rejected


def test_a_card_update_row_calls_update_template_card(wecom_settings, engine, clock, fake_wecom):
    body = {
        "msgtype": "update_template_card",
        "response_code": "rc1",
        "button": {"replace_name": "已确认"},
    }
    [row] = put(engine, clock, ["zhangsan"], body)

    async def scenario() -> SendOutcome:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            return await ch.send([row])
        finally:
            await ch.aclose()

    assert asyncio.run(scenario()).delivered == {row.id}
    [call] = fake_wecom.calls_to("message/update_template_card")
    assert call["body"] == {
        "userids": ["zhangsan"],
        "agentid": wecom_settings.wecom.agent_id,
        "response_code": "rc1",
        "button": {"replace_name": "已确认"},
    }


def test_the_office_hears_of_refused_members_once_the_next_day(
    wecom_settings, engine, clock, fake_wecom, session
):
    small_bureau(session)
    fake_wecom.control(invalid_users=["zhaosi"])
    put(engine, clock, ["zhangsan", "zhaosi"], text_body("通知"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            await dispatcher(engine, ch, clock).drain()
            clock.advance(days=1)  # Thursday
            put(engine, clock, ["zhangsan"], text_body("第二天"), key="n2")
            await dispatcher(engine, ch, clock).drain()
            put(engine, clock, ["zhangsan"], text_body("又一条"), key="n3")
            await dispatcher(engine, ch, clock).drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    [note] = fake_wecom.texts("zhouban")
    assert "11月25日" in note and "赵四（zhaosi）" in note
    keys = [r.key for r in rows(engine) if r.rule == "wecom-invalid"]
    assert keys == ["wecom-invalid:2026-11-25:zhouban"]


def test_a_broadcast_survives_storms_an_expired_token_and_a_killed_dispatcher(
    wecom_settings, engine, clock, fake_wecom
):
    users = [f"m{i:04d}" for i in range(3000)]
    put(engine, clock, users, text_body("全体党员：12月1日上午9点开展主题党日活动。"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            # A dispatcher claims the first 1000, sends them, and dies before marking them.
            doomed = dispatcher(engine, ch, clock, worker="doomed")
            claimed = doomed.claim(1000)
            out = await ch.send(claimed)
            assert len(out.delivered) == 1000
            # Then WeCom rate-limits three calls in a row and ends the token early.
            fake_wecom.fail("message/send", 45009, times=3)
            fake_wecom.expire_tokens()
            survivor = dispatcher(engine, ch, clock, worker="survivor")
            await survivor.drain()
            # The dead one's lease runs out; the survivor takes its rows again.
            clock.advance(seconds=OutboxSettings().lease_seconds + 1)
            await survivor.drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert all(r.status == "sent" for r in rows(engine))
    assert all(len(fake_wecom.received(u)) == 1 for u in users), "every member exactly once"
    codes = [c["errcode"] for c in fake_wecom.calls_to("message/send")]
    assert codes.count(45009) == 3 and 42001 in codes
    suppressed = [c for c in fake_wecom.calls_to("message/send") if c["answer"].get("duplicate")]
    assert len(suppressed) == 1 and suppressed[0]["body"]["enable_duplicate_check"] == 1


def test_metrics_count_sends_and_token_refreshes(wecom_settings, engine, clock, fake_wecom):
    from prometheus_client import generate_latest

    from bot.metrics import REGISTRY

    put(engine, clock, ["zhangsan"], text_body("hi"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        try:
            await dispatcher(engine, ch, clock).drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    text = generate_latest(REGISTRY).decode()
    assert 'mofan_sends_total{result="delivered"}' in text
    assert "mofan_token_refreshes_total" in text
    assert 'mofan_wecom_api_seconds_count{api="message/send"}' in text


def test_the_token_lock_waits_for_the_holder(wecom_settings, engine, clock, fake_wecom):
    api = WeComAPI(settings=wecom_settings.wecom, engine=engine, clock=clock)
    assert api.store.try_lock("someone-else", now=clock.now(), lease=timedelta(seconds=15))

    async def scenario() -> str:
        async def release_later() -> None:
            await asyncio.sleep(0.3)
            api.store.unlock("someone-else")

        try:
            _, token = await asyncio.gather(release_later(), api.token())
            return token
        finally:
            await api.aclose()

    assert asyncio.run(scenario()).startswith("fake_")
    assert len(fake_wecom.calls_to("gettoken")) == 1
