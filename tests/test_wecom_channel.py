"""The WeCom app channel against the fake WeCom over HTTP: the shared token, batches of
1000, partial failures, retries without doubles, pacing, splitting, cards, files, and a
broadcast that survives rate-limit storms, an expired token and a dispatcher killed mid-send.

Answers that never came (:class:`LoseAnswers` sits between the channel and the fake: the call
is carried out, its answer lost): the very same request is sent again however the outbox hands
the rows back, only inside WeCom's duplicate window, and after it the rows are ``unknown``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from bot.channels.base import SendOutcome
from bot.channels.limits import split_text
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


def test_every_send_asks_wecom_to_drop_an_identical_resend(
    wecom_settings, engine, clock, fake_wecom
):
    """WeCom compares the whole request, flags included: the first try carries them too, so
    that a retry is byte-identical to it."""
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
    assert first["errcode"] == 45009 and second["errcode"] == 0
    assert first["body"]["enable_duplicate_check"] == 1
    assert (
        first["body"]["duplicate_check_interval"] == wecom_settings.wecom.duplicate_check_interval
    )
    assert second["body"] == first["body"]
    assert all(r.status == "sent" and r.attempts == 2 and not r.last_error for r in rows(engine))


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
        "enable_duplicate_check": 1,
        "duplicate_check_interval": wecom_settings.wecom.duplicate_check_interval,
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


# --- answers that never came (issue #8: no doubles, and "unknown" rather than "failed") -----


class Crash(BaseException):
    """The process dies mid-call (nothing in the bot catches it)."""


class LoseAnswers(httpx.AsyncBaseTransport):
    """Real HTTP to the fake WeCom on loopback, but the next message/send calls go wrong as
    told: ``timeout``, ``reset`` or ``502`` after WeCom carried the call out (the answer is
    lost), ``crash`` after that (the process dies), ``refused`` before the request leaves,
    ``ok`` as it should."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.plan: list[str] = []

    def lose(self, *how: str) -> None:
        self.plan += how

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        how = self.plan.pop(0) if self.plan and request.url.path.endswith("/send") else None
        if how == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if how is None or how == "ok":
            return response
        await response.aread()
        await response.aclose()
        if how == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if how == "reset":
            raise httpx.RemoteProtocolError("peer closed the connection", request=request)
        if how == "502":
            return httpx.Response(502, request=request, text="Bad Gateway")
        raise Crash(how)

    async def aclose(self) -> None:
        await self.inner.aclose()


def lossy_channel(settings, engine, clock, transport: LoseAnswers, **kw: Any) -> WeComChannel:
    client = httpx.AsyncClient(transport=transport)
    api = WeComAPI(settings=settings.wecom, engine=engine, clock=clock, client=client)
    return channel_for(settings, engine, clock, api=api, **kw)


async def close(ch: WeComChannel) -> None:
    await ch.aclose()
    await ch.api.client.aclose()


def sends_to(fake_wecom, touser: str) -> list[dict[str, Any]]:
    return [c["body"] for c in fake_wecom.calls_to("message/send") if c["body"]["touser"] == touser]


def statuses(engine) -> dict[str, str]:
    return {r.recipient: r.status for r in rows(engine)}


@pytest.mark.parametrize("how", ["timeout", "reset", "502"])
def test_a_lost_answer_is_resent_as_the_very_same_request_however_the_rows_come_back(
    how, wecom_settings, engine, clock, fake_wecom
):
    """The first call reached WeCom and delivered; its answer was lost. The outbox then hands
    the rows back two at a time, mixed with other rows of the same text: every later try of
    those rows is the first request again, byte for byte, which WeCom drops."""
    fake_wecom.now = lambda: clock.now().timestamp()
    users = [f"u{i}" for i in range(1, 6)]
    put(engine, clock, users, text_body("请于周五前报送方案"))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose(how)
            first = await dispatcher(engine, ch, clock, batch_size=3).run_once()
            assert (first.sent, first.retried) == (0, 3)
            clock.advance(seconds=40)
            put(engine, clock, ["u6"], text_body("请于周五前报送方案"), key="n2")
            await dispatcher(engine, ch, clock, batch_size=2).drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    lost = sends_to(fake_wecom, "u1|u2|u3")
    assert len(lost) >= 2 and all(body == lost[0] for body in lost)
    assert lost[0]["enable_duplicate_check"] == 1
    assert {u: len(fake_wecom.received(u)) for u in [*users, "u6"]} == {
        u: 1 for u in [*users, "u6"]
    }, "every member exactly once"
    assert set(statuses(engine).values()) == {"sent"}


def test_a_send_the_process_died_in_is_resent_as_the_same_request(
    wecom_settings, engine, clock, fake_wecom
):
    """Killed after the request went out and before the answer was read: nothing was
    recorded but the mark written before the call — which is enough."""
    fake_wecom.now = lambda: clock.now().timestamp()
    users = ["zhangsan", "lisi", "wangwu"]
    put(engine, clock, users, text_body("明天上午九点主题党日"))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose("crash")
            claimed = dispatcher(engine, ch, clock, worker="dead").claim()
            with pytest.raises(Crash):
                await ch.send(claimed)
            assert all(r.last_error.startswith("unknown since") for r in rows(engine))
            put(engine, clock, ["zhaoliu"], text_body("明天上午九点主题党日"), key="n2")
            clock.advance(seconds=OutboxSettings().lease_seconds + 1)
            await dispatcher(engine, ch, clock, worker="next", batch_size=1).drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    first, *again = sends_to(fake_wecom, "zhangsan|lisi|wangwu")
    assert again and all(body == first for body in again)
    assert all(len(fake_wecom.received(u)) == 1 for u in [*users, "zhaoliu"])
    assert set(statuses(engine).values()) == {"sent"}


def test_only_the_part_whose_answer_was_lost_is_sent_again(
    wecom_settings, engine, clock, fake_wecom
):
    fake_wecom.now = lambda: clock.now().timestamp()
    text = "\n".join(f"{i:02d} " + "支部学习安排" * 20 for i in range(12))
    put(engine, clock, ["zhangsan", "lisi"], text_body(text))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose("ok", "timeout")  # the first part answered, the second not
            report = await dispatcher(engine, ch, clock).run_once()
            assert report.retried == 2
            await dispatcher(engine, ch, clock).drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    calls = [c["body"] for c in fake_wecom.calls_to("message/send")]
    contents = [c["text"]["content"] for c in calls]
    assert len(calls) == len(split_text(text, 2048)) + 1 > 3
    assert calls[1] == calls[2]  # part 2 again, word for word; part 1 not again
    assert contents.count(contents[0]) == 1 and len(set(contents)) == len(calls) - 1
    assert "\n".join(fake_wecom.texts("zhangsan")) == text
    assert set(statuses(engine).values()) == {"sent"}


def test_a_request_that_never_left_is_not_unknown(wecom_settings, engine, clock, fake_wecom):
    """No connection: WeCom saw nothing, so the rows are ordinary retries (no time limit)."""
    [row] = put(engine, clock, ["zhangsan"], text_body("hi"))
    net = LoseAnswers()

    async def scenario() -> SendOutcome:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            await ch.api.token()
            net.lose("refused")
            return await ch.send([row])
        finally:
            await close(ch)

    out = asyncio.run(scenario())
    assert out.retry[row.id].startswith("errcode -1: ConnectError")
    assert not fake_wecom.calls_to("message/send")


def test_past_the_duplicate_window_a_lost_send_is_settled_unknown_and_reported(
    wecom_settings, engine, clock, fake_wecom, session
):
    """The policy: a send that may have arrived is resent (identically) only inside WeCom's
    duplicate window, less a margin; after it a resend could double, so the row is settled
    ``unknown`` — counted in the metrics and listed apart in the office's daily report."""
    from prometheus_client import generate_latest

    from bot.channels.wecom.channel import WINDOW_MARGIN
    from bot.metrics import REGISTRY

    def sends(result: str) -> float:
        for line in generate_latest(REGISTRY).decode().splitlines():
            if line.startswith(f'mofan_sends_total{{result="{result}"}}'):
                return float(line.split()[-1])
        return 0.0

    small_bureau(session)
    fake_wecom.now = lambda: clock.now().timestamp()
    interval = wecom_settings.wecom.duplicate_check_interval
    put(engine, clock, ["zhangsan", "zhaosi"], text_body("周五交学习心得"))
    net = LoseAnswers()
    unknown_before, unanswered_before = sends("unknown"), sends("unanswered")

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        d = dispatcher(engine, ch, clock)
        try:
            net.lose("timeout", "timeout")
            await d.run_once()  # lost at 10:07
            clock.advance(seconds=interval - WINDOW_MARGIN.total_seconds() - 60)
            await d.run_once()  # inside the window: the same request again, lost again
            assert len(fake_wecom.calls_to("message/send")) == 2
            clock.advance(seconds=61)
            report = await d.run_once()  # past it: not sent again
            assert report.failed == 2 and len(fake_wecom.calls_to("message/send")) == 2
            clock.advance(days=1)  # the next morning's first send brings the office's note
            put(engine, clock, ["wangshuji"], text_body("第二天"), key="n2")
            await d.drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    first, second = (c["body"] for c in fake_wecom.calls_to("message/send")[:2])
    assert first == second
    settled = {r.recipient: r for r in rows(engine) if r.key.startswith("n1:")}
    assert {r.status for r in settled.values()} == {"unknown"}
    assert all(
        r.last_error.startswith("unknown since 2026-11-25T02:07:00Z") for r in settled.values()
    )
    assert sends("unanswered") - unanswered_before == 4  # two tries of two rows
    assert sends("unknown") - unknown_before == 2
    [note] = fake_wecom.texts("zhouban")
    assert note.startswith("企业微信未确认送达（11月25日）：发给 2 人的 2 条消息")
    assert "张三（zhangsan）、赵四（zhaosi）" in note


def test_a_lost_send_stays_unknown_even_if_a_later_try_is_refused(
    wecom_settings, engine, clock, fake_wecom
):
    """Lost, then refused (45009) inside the window: the first may have arrived, so the
    window still ends it."""
    fake_wecom.now = lambda: clock.now().timestamp()
    put(engine, clock, ["zhangsan"], text_body("提醒"))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        d = dispatcher(engine, ch, clock)
        try:
            net.lose("timeout")
            await d.run_once()
            fake_wecom.fail("message/send", 45009)
            clock.advance(minutes=5)
            await d.run_once()
            [row] = rows(engine)
            assert row.status == "pending" and row.last_error.startswith("unknown since")
            assert "45009" in row.last_error
            clock.advance(seconds=wecom_settings.wecom.duplicate_check_interval)
            await d.run_once()
        finally:
            await close(ch)

    asyncio.run(scenario())
    assert [r.status for r in rows(engine)] == ["unknown"]
    assert len(fake_wecom.calls_to("message/send")) == 2


def test_refusals_alone_are_retried_past_the_window(wecom_settings, engine, clock, fake_wecom):
    """WeCom answered every try with a refusal: nothing arrived, so there is no limit."""
    fake_wecom.now = lambda: clock.now().timestamp()
    put(engine, clock, ["zhangsan"], text_body("提醒"))

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        d = dispatcher(engine, ch, clock)
        try:
            fake_wecom.fail("message/send", 45009, times=3)
            for _ in range(3):
                await d.run_once()
                clock.advance(hours=2)
            await d.run_once()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert [r.status for r in rows(engine)] == ["sent"]
    assert fake_wecom.texts("zhangsan") == ["提醒"]


def test_without_a_duplicate_window_what_may_have_arrived_is_never_resent(
    wecom_settings, engine, clock, fake_wecom
):
    wecom_settings.wecom.duplicate_check_interval = 0
    put(engine, clock, ["zhangsan"], text_body("提醒"))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose("timeout")
            await dispatcher(engine, ch, clock).drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    [call] = fake_wecom.calls_to("message/send")
    assert "enable_duplicate_check" not in call["body"]
    assert [r.status for r in rows(engine)] == ["unknown"]
    assert fake_wecom.texts("zhangsan") == ["提醒"]


def test_the_duplicate_window_is_at_most_wecoms_four_hours():
    from pydantic import ValidationError

    from bot.channels.wecom.channel import MAX_DUPLICATE_CHECK_SECONDS
    from bot.config import WeComSettings

    assert MAX_DUPLICATE_CHECK_SECONDS == 4 * 3600
    assert WeComSettings(duplicate_check_interval=4 * 3600).duplicate_check_interval == 14400
    with pytest.raises(ValidationError):
        WeComSettings(duplicate_check_interval=4 * 3600 + 1)


def test_the_outbox_gives_up_a_lost_send_as_unknown_not_failed(
    wecom_settings, engine, clock, fake_wecom
):
    """Out of tries inside the window: settled ``unknown`` (the outbox's last word)."""
    fake_wecom.now = lambda: clock.now().timestamp()
    put(engine, clock, ["zhangsan"], text_body("提醒"))
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose("timeout", "timeout", "timeout")
            await dispatcher(engine, ch, clock, max_attempts=3).drain()
        finally:
            await close(ch)

    asyncio.run(scenario())
    [row] = rows(engine)
    assert row.status == "unknown" and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 tries: unknown since")
    bodies = [c["body"] for c in fake_wecom.calls_to("message/send")]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)


def test_a_file_sent_again_after_a_restart_keeps_its_media_id(
    wecom_settings, engine, clock, fake_wecom, tmp_path: Path
):
    fake_wecom.now = lambda: clock.now().timestamp()
    export = tmp_path / "台账.xlsx"
    export.write_bytes(b"PK\x03\x04 fake xlsx")
    put(engine, clock, ["zhouban"], {"msgtype": "file", "path": str(export), "text": "台账"})
    net = LoseAnswers()

    async def scenario() -> None:
        ch = lossy_channel(wecom_settings, engine, clock, net)
        try:
            net.lose("timeout")
            await dispatcher(engine, ch, clock).run_once()
        finally:
            await close(ch)
        restarted = channel_for(wecom_settings, engine, clock)  # an empty media cache
        try:
            await dispatcher(engine, restarted, clock).drain()
        finally:
            await restarted.aclose()

    asyncio.run(scenario())
    assert len(fake_wecom.calls_to("media/upload")) == 1
    first, second = (c["body"] for c in fake_wecom.calls_to("message/send"))
    assert first == second and len(fake_wecom.received("zhouban")) == 1


def test_a_resend_after_refusals_is_paced_like_a_first_send(
    wecom_settings, engine, clock, fake_wecom
):
    """31 reminders to one member all refused (45009), then tried again together: WeCom would
    silently drop the 31st of the minute, so the resends are paced too."""
    fake_wecom.now = lambda: clock.now().timestamp()
    for i in range(31):
        put(engine, clock, ["zhangsan"], text_body(f"提醒 {i}"), key=f"r{i}")

    async def scenario() -> None:
        ch = channel_for(wecom_settings, engine, clock)
        d = dispatcher(engine, ch, clock)
        try:
            fake_wecom.fail("message/send", 45009, times=31)
            assert (await d.run_once()).retried == 31
            clock.advance(seconds=61)
            await d.run_once()
            left = [r for r in rows(engine) if r.status != "sent"]
            assert len(left) == 1 and left[0].last_error.startswith("paced")
            clock.advance(seconds=61)
            await d.drain()
        finally:
            await ch.aclose()

    asyncio.run(scenario())
    assert len(fake_wecom.texts("zhangsan")) == 31 and not fake_wecom.dropped
