"""The WeCom callback end to end over real HTTP on loopback: encrypted in, encrypted out,
retries answered once, bad requests refused with nothing written, slow handlers deferred to
the outbox, card clicks answered with a card update."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session, SQLModel

from bot import messages
from bot.app import create_app
from bot.fake_wecom import DEFAULT_AES_KEY, DEFAULT_TOKEN, WeComPlayer
from bot.inbound import StoredReply
from bot.models import (
    AppState,
    Feedback,
    InboundMessage,
    Member,
    Notice,
    NoticeReceipt,
    OutboxMessage,
)
from bot.roles import EVERYONE
from bot.router import Command, Context, Request, Router, commands
from tests.factories import small_bureau
from tests.fakes.live import LiveServer
from tests.fakes.wecom import configure_wecom, player_for

CALLS: list[str] = []


async def _echo(req: Request, ctx: Context) -> None:
    CALLS.append(req.args)
    ctx.reply(f"回声：{req.args}")


async def _slow(req: Request, ctx: Context) -> None:
    CALLS.append("slow")
    time.sleep(float(req.args or "0.6"))  # a handler that blocks, as exports do
    ctx.reply("慢慢来，好了")


async def _long(req: Request, ctx: Context) -> None:
    ctx.reply("\n".join(f"第{i}行：" + "党建" * 40 for i in range(30)))


async def _confirm(req: Request, ctx: Context) -> None:
    """A stand-in for handlers/notices.py: 收到 N confirms notice N, the button says so."""
    CALLS.append("confirm:" + req.args)
    receipt = ctx.session.execute(
        select(NoticeReceipt).where(
            NoticeReceipt.notice_id == int(req.args), NoticeReceipt.member_id == ctx.sender.id
        )
    ).scalar_one()
    receipt.confirmed_at = ctx.now
    ctx.reply(f"已确认收到通知 {req.args}。")
    ctx.extras["card_update"] = {"replace_name": "已确认"}


async def _slow_confirm(req: Request, ctx: Context) -> None:
    time.sleep(0.6)
    ctx.reply("已确认。")
    ctx.extras["card_update"] = {"replace_name": "已确认"}


SLOW_DONE = threading.Event()


async def _slow_until_done(req: Request, ctx: Context) -> None:
    SLOW_DONE.clear()
    time.sleep(float(req.args or "1.0"))
    SLOW_DONE.set()
    ctx.reply("导出好了")


async def _fails_at_flush(req: Request, ctx: Context) -> None:
    """A change the database refuses only when the router writes it (after the handler)."""
    CALLS.append("fails_at_flush")
    ctx.sender.name = "不该写入"
    ctx.session.add(Feedback(member_id=999_999, text="无此人", at=ctx.now))
    ctx.reply("好的")


async def _breaks(req: Request, ctx: Context) -> None:
    CALLS.append("breaks")
    ctx.session.add(AppState(name="written-before-failing", value="x"))
    ctx.session.flush()
    raise RuntimeError("a handler bug")


async def _raced(req: Request, ctx: Context) -> None:
    """Another worker handles the same message and commits while this one runs."""
    CALLS.append("raced")
    if len(CALLS) == 1:
        with Session(ctx.session.get_bind().engine) as other:
            reply = StoredReply("passive", text="另一进程的回答").dump()
            other.add(
                InboundMessage(
                    dedupe_key=req.inbound.msg_id and f"msg:{req.inbound.msg_id}",
                    userid=ctx.sender.userid,
                    received_at=ctx.now,
                    reply=reply,
                )
            )
            other.commit()
    ctx.session.add(AppState(name="raced-write", value="x"))
    ctx.reply("本进程的回答")


TEST_COMMANDS = [
    Command("slow_until_done", ("导出慢",), EVERYONE, "", _slow_until_done),
    Command("breaks", ("坏了",), EVERYONE, "", _breaks, quick=True),
    Command("fails_at_flush", ("写不进",), EVERYONE, "", _fails_at_flush, quick=True),
    Command("raced", ("抢答",), EVERYONE, "", _raced),
    Command("echo", ("回声",), EVERYONE, "", _echo),
    Command("slow", ("慢",), EVERYONE, "", _slow),
    Command("long", ("长回复",), EVERYONE, "", _long),
    Command("confirm", ("收到",), EVERYONE, "", _confirm),
    Command("slow_confirm", ("迟确认",), EVERYONE, "", _slow_confirm),
]


@pytest.fixture
def people(session) -> dict[str, Any]:
    return small_bureau(session)


@pytest.fixture
def bot_url(runtime, settings, engine, clock, people) -> Iterator[str]:
    configure_wecom(settings, "http://127.0.0.1:9")  # the API is not called here
    runtime.router = Router(
        engine=engine, clock=clock, settings=settings, table=TEST_COMMANDS + commands()
    )
    app = create_app(runtime, scheduler=False)
    app.state.callback.budget = 0.5  # "慢 0.4" answers in time; 0.6–0.8 s do not
    CALLS.clear()
    with LiveServer(app) as url:
        yield url


@pytest.fixture
def player(bot_url) -> Iterator[WeComPlayer]:
    with player_for(bot_url) as p:
        yield p


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in SQLModel.metadata.sorted_tables
        }


def outbox(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_url_verification_returns_the_bare_echo(player):
    status, body, expected = player.verify_url()
    assert status == 200
    assert body == expected  # no quotes, no newline


def test_member_message_gets_an_encrypted_reply_that_verifies(player, engine):
    reply = player.say("zhangsan", "帮助")
    assert reply.status == 200 and reply.xml is not None  # read() verified signature and corp
    assert "张三" in reply.content and "帮助" in reply.content
    assert "<ToUserName><![CDATA[zhangsan]]></ToUserName>" in reply.xml
    assert counts(engine)["inboundmessage"] == 1


def test_full_width_text_and_menu_clicks_reach_the_same_handler(player):
    assert player.say("zhangsan", "回声　全角").content == "回声：全角"
    assert player.menu("zhangsan", "回声 菜单").content == "回声：菜单"
    assert CALLS == ["全角", "菜单"]


def test_a_retried_message_is_handled_once_and_gets_the_same_reply(player, engine):
    params, body = player.envelope(player.text_xml("zhangsan", "回声 一次", msg_id=777))
    first = player.post("", params=params, body=body)
    again = player.post("", params=params, body=body)
    # WeCom's retry carries a new signature/timestamp but the same MsgId.
    params2, body2 = player.envelope(player.text_xml("zhangsan", "回声 一次", msg_id=777))
    third = player.post("", params=params2, body=body2)
    assert first.content == again.content == third.content == "回声：一次"
    assert CALLS == ["一次"]
    assert counts(engine)["inboundmessage"] == 1


def test_a_retry_while_the_first_is_running_is_answered_empty(player, engine, bot_url):
    params, body = player.envelope(player.text_xml("zhangsan", "慢 0.4", msg_id=778))
    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(player.post("", params=params, body=body))
    )
    first.start()
    time.sleep(0.15)  # the first has been on its handler thread long enough to count as stuck
    with player_for(bot_url) as other:
        second = other.post("", params=params, body=body)
    first.join()
    assert second.empty  # never two answers for one message
    assert results[0].content == "慢慢来，好了"
    assert CALLS == ["slow"]


def _refused(engine, player: WeComPlayer, make: Any) -> int:
    before = counts(engine)
    status = make(player)
    assert counts(engine) == before, "a rejected request must write nothing"
    return status


def test_bad_requests_are_refused_and_write_nothing(player, engine, bot_url):
    url = player.url
    xml = player.text_xml("zhangsan", "回声 x", msg_id=9001)

    def bad_signature(p: WeComPlayer) -> int:
        params, body = p.envelope(xml)
        params["msg_signature"] = "0" * 40
        return p.client.post(url, params=params, content=body).status_code

    def wrong_corp(p: WeComPlayer) -> int:
        other = WeComPlayer(
            url=url, token=DEFAULT_TOKEN, encoding_aes_key=DEFAULT_AES_KEY, corp_id="wwother"
        )
        with other:
            params, body = other.envelope(xml)
            return other.client.post(url, params=params, content=body).status_code

    def signed(p: WeComPlayer, body: bytes, encrypted: str = "x") -> int:
        params = {
            "timestamp": "1",
            "nonce": "2",
            "msg_signature": p.crypto.sign("1", "2", encrypted),
        }
        return p.client.post(url, params=params, content=body).status_code

    def malformed(p: WeComPlayer) -> int:
        return signed(p, b"<xml><Encrypt>x</Encrypt")

    def doctype(p: WeComPlayer) -> int:
        body = b'<!DOCTYPE xml [<!ENTITY x "x">]><xml><Encrypt>&x;</Encrypt></xml>'
        return signed(p, body)

    def oversized(p: WeComPlayer) -> int:
        params, body = p.envelope(xml)
        return p.client.post(url, params=params, content=body + b" " * (64 * 1024)).status_code

    def no_params(p: WeComPlayer) -> int:
        return p.client.post(url, content=p.envelope(xml)[1]).status_code

    def signed_garbage(p: WeComPlayer) -> int:
        return signed(p, b"<xml><Encrypt>QUJDRA==</Encrypt></xml>", "QUJDRA==")

    assert _refused(engine, player, bad_signature) == 403
    assert _refused(engine, player, wrong_corp) == 403
    assert _refused(engine, player, malformed) == 400
    assert _refused(engine, player, doctype) == 400
    assert _refused(engine, player, oversized) == 400
    assert _refused(engine, player, no_params) == 400
    assert _refused(engine, player, signed_garbage) == 400
    bad_get = httpx.get(
        url, params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "abc"}
    )
    assert bad_get.status_code == 403
    assert CALLS == []
    metrics = httpx.get(bot_url + "/metrics").text
    assert 'mofan_callbacks_total{outcome="bad_signature"}' in metrics


def test_a_stranger_gets_the_refusal_and_nothing_is_written(player, engine):
    before = counts(engine)
    assert player.say("nobody", "学习 30分钟").content == messages.NOT_ON_ROSTER
    assert counts(engine) == before


def test_entering_the_app_greets_members_and_writes_nothing(player, engine):
    before = counts(engine)
    hello = player.post(player.event_xml("zhangsan", "enter_agent"))
    assert hello.content == messages.WELCOME.format(name="张三")
    assert player.post(player.event_xml("nobody", "enter_agent")).empty
    assert player.post(player.event_xml("zhangsan", "view", key="https://x")).empty
    assert counts(engine) == before


def test_a_picture_gets_a_hint_to_send_text(player, engine):
    xml = player.text_xml("zhangsan", "").replace(
        "<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>"
    )
    assert player.post(xml).content == messages.EMPTY_MESSAGE


def test_a_slow_handler_answers_empty_at_once_and_replies_through_the_outbox(player, engine, clock):
    started = time.monotonic()
    params, body = player.envelope(player.text_xml("zhangsan", "慢 0.8", msg_id=4242))
    reply = player.post("", params=params, body=body)
    assert reply.empty and time.monotonic() - started < 0.7
    deadline = time.monotonic() + 5
    while not outbox(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = outbox(engine)
    assert (row.key, row.recipient, row.channel) == ("reply:msg:4242:1", "zhangsan", "wecom")
    assert row.body == {"msgtype": "text", "text": "慢慢来，好了"}
    assert row.due_at == clock.now()  # a reply is never held for the send window
    # WeCom's retry of it now gets the empty answer too: the reply is not given twice.
    assert player.post("", params=params, body=body).empty
    with Session(engine) as s:
        stored = s.execute(select(InboundMessage.reply)).scalar_one()
    assert StoredReply.load(stored).mode == "outbox"


def test_a_long_reply_is_split_passive_first_then_the_outbox(player, engine):
    reply = player.say("zhangsan", "长回复")
    assert len(reply.content.encode()) <= 2048
    rest = [r.body["text"] for r in outbox(engine)]
    assert rest and all(len(t.encode()) <= 2048 for t in rest)
    assert "\n".join([reply.content, *rest]) == "\n".join(
        f"第{i}行：" + "党建" * 40 for i in range(30)
    )


def _notice_for(engine, people, clock) -> int:
    with Session(engine) as s:
        notice = Notice(text="请于周五前提交学习心得", scope="全体", created_at=clock.now())
        s.add(notice)
        s.flush()
        s.add(NoticeReceipt(notice_id=notice.id, member_id=people["member"].id))
        s.commit()
        return int(notice.id)


def test_a_button_click_confirms_the_notice_and_updates_the_card(player, engine, people, clock):
    nid = _notice_for(engine, people, clock)
    xml = player.card_click_xml(
        "zhangsan", f"收到 {nid}", task_id="mofan_1_x_0", create_time=1764036000
    )
    reply = player.post(xml)
    assert reply.button == "已确认" and reply.content == ""
    assert "<MsgType><![CDATA[update_button]]></MsgType>" in (reply.xml or "")
    with Session(engine) as s:
        receipt = s.execute(select(NoticeReceipt)).scalar_one()
    assert receipt.confirmed_at == clock.now()
    # The click retried (same user, CreateTime, event and key) is answered alike, handled once.
    assert player.post(xml).button == "已确认"
    assert CALLS == [f"confirm:{nid}"]
    # Typed instead of clicked (WeChat users see no card): the text answers.
    assert player.say("zhangsan", f"收到 {nid}").content == f"已确认收到通知 {nid}。"


def test_a_slow_click_updates_the_card_through_the_api(player, engine):
    reply = player.post(player.card_click_xml("zhangsan", "迟确认", response_code="rc-slow"))
    assert reply.empty
    deadline = time.monotonic() + 5
    while not outbox(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = outbox(engine)
    assert row.body["msgtype"] == "update_template_card"
    assert row.body["response_code"] == "rc-slow"
    assert row.body["button"] == {"replace_name": "已确认"}


def test_old_records_are_pruned(engine, clock, people):
    from bot.inbound import prune

    with Session(engine) as s:
        for key, days in (("msg:1", 40), ("msg:2", 0)):
            at = clock.now() - timedelta(days=days)
            s.add(InboundMessage(dedupe_key=key, userid="zhangsan", received_at=at, reply="{}"))
        s.commit()
    assert prune(engine, before=clock.now() - timedelta(days=30)) == 1
    assert counts(engine)["inboundmessage"] == 1


def test_callback_is_503_until_configured(runtime, people):
    app = create_app(runtime, scheduler=False)
    with LiveServer(app) as url:
        assert (
            httpx.post(url + "/wecom/callback?msg_signature=a&timestamp=1&nonce=2").status_code
            == 503
        )


def test_the_whole_loop_with_the_real_handlers(runtime, settings, engine, clock, people, session):
    """The office broadcasts by chat, the card reaches WeCom, a member taps 确认收到."""
    import asyncio

    from bot.channels.webhook import RobotChannel
    from bot.channels.wecom import WeComChannel
    from bot.fake_wecom import FakeWeCom

    fake = FakeWeCom()
    with LiveServer(fake.app) as api_base:
        configure_wecom(settings, api_base)
        people["b1"].robot_key = "robot-b1"
        session.commit()
        settings.wecom.robot_broadcast = True
        wecom = WeComChannel(settings=settings, engine=engine, clock=clock)
        robot = RobotChannel(settings=settings, engine=engine, clock=clock)
        console = runtime.channels_override["console"]
        runtime.channels_override = {"wecom": wecom, "robot": robot, "console": console}
        app = create_app(runtime, scheduler=False)
        with LiveServer(app) as bot_url, player_for(bot_url) as player:
            sent = player.say("zhouban", "通知 第一党支部 周五下午三点在三楼会议室学习，请准时参加")
            assert sent.status == 200 and sent.content

            async def dispatch() -> None:
                clock.advance(minutes=15)  # notices go out a few minutes later, off :00/:30
                try:
                    await runtime.dispatcher.drain()
                finally:  # the HTTP clients belong to this event loop
                    await wecom.aclose()
                    await robot.aclose()

            asyncio.run(dispatch())
            [card_call] = [
                c for c in fake.calls_to("message/send") if c["body"]["msgtype"] == "template_card"
            ]
            card = card_call["body"]["template_card"]
            assert set(card_call["body"]["touser"].split("|")) >= {"zhangsan", "wangshuji"}
            [button] = [b for b in card["button_list"] if b["key"].startswith("收到")]
            assert fake.robot_inbox["robot-b1"], "the branch group saw it too"

            clicked = player.click("zhangsan", button["key"], task_id=card["task_id"])
            assert clicked.button == messages.BUTTON_CONFIRMED
            with Session(engine) as s:
                receipt = s.execute(
                    select(NoticeReceipt).where(NoticeReceipt.member_id == people["member"].id)
                ).scalar_one()
            assert receipt.confirmed_at is not None


def test_a_members_reply_does_not_wait_for_a_slow_export(player, bot_url):
    """Quick commands run on the event loop: a secretary's long export on a handler thread
    does not hold up the members' replies."""
    slow: list[Any] = []
    t = threading.Thread(target=lambda: slow.append(player.say("zhangsan", "导出慢 1.5")))
    t.start()
    time.sleep(0.2)  # the export is running
    with player_for(bot_url) as other:
        helped = other.say("zhaosi", "帮助")
    still_running = not SLOW_DONE.is_set()
    t.join()
    assert "帮助" in helped.content
    assert still_running, "帮助 was answered while the export was still running"
    assert slow[0].empty or slow[0].content == "导出好了"


def _hold_write_lock(engine, held: threading.Event, release: threading.Event) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("COMMIT")  # the begin event opened a deferred one
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("LOCK TABLE inboundmessage IN SHARE ROW EXCLUSIVE MODE")
        held.set()
        release.wait(10)
        conn.rollback()


def test_a_lock_held_elsewhere_stalls_nothing_and_the_message_is_answered_after(
    player, engine, bot_url
):
    """Another process holds the write lock (a planning pass, a backup): the message waits for
    it on a handler thread, not on the event loop, and is answered once it is free."""
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(engine, held, release))
    holder.start()
    assert held.wait(5)
    answers: list[Any] = []
    asker = threading.Thread(target=lambda: answers.append(player.say("zhangsan", "帮助")))
    asker.start()
    try:
        time.sleep(0.3)
        assert not answers, "the message must wait for the lock"
        health = httpx.get(bot_url + "/healthz", timeout=2)  # the event loop is free
        assert health.status_code == 200
        assert not answers
    finally:
        release.set()
        holder.join()
    asker.join(10)
    assert answers and "帮助" in answers[0].content
    assert counts(engine)["inboundmessage"] == 1


def test_a_failing_handler_leaves_nothing_and_its_retry_gets_the_same_apology(player, engine):
    params, body = player.envelope(player.text_xml("zhangsan", "坏了", msg_id=3131))
    first = player.post("", params=params, body=body)
    again = player.post("", params=params, body=body)
    assert first.content == again.content == messages.INTERNAL_ERROR
    assert CALLS == ["breaks"], "the retry is answered from the record, not run again"
    with Session(engine) as s:
        assert s.get(AppState, "written-before-failing") is None
    assert counts(engine)["inboundmessage"] == 1


def test_a_change_refused_at_the_end_leaves_nothing_and_its_retry_gets_the_apology(player, engine):
    """The handler returned, but the database refused what it changed when the router wrote
    it: everything is rolled back, the apology is recorded in a transaction of its own, and
    the retry is answered from that record."""
    params, body = player.envelope(player.text_xml("zhangsan", "写不进", msg_id=3232))
    first = player.post("", params=params, body=body)
    again = player.post("", params=params, body=body)
    assert first.content == again.content == messages.INTERNAL_ERROR
    assert CALLS == ["fails_at_flush"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 0
        assert s.scalar(select(Member.name).where(Member.userid == "zhangsan")) == "张三"
    assert counts(engine)["inboundmessage"] == 1
    # The event loop's connection is usable afterwards.
    assert "帮助" in player.say("zhangsan", "帮助").content


def test_two_copies_of_a_message_at_once_commit_once(player, engine):
    """Two workers got the same message (WeCom retried to the other one): the one that seals
    second is rolled back whole and answers with the first one's reply."""
    reply = player.post(player.text_xml("zhangsan", "抢答", msg_id=5151))
    assert reply.content == "另一进程的回答"
    with Session(engine) as s:
        assert s.get(AppState, "raced-write") is None
        [stored] = s.execute(select(InboundMessage.reply)).scalars()
    assert StoredReply.load(stored).text == "另一进程的回答"
    assert CALLS == ["raced"], "the loser's rerun finds the record and does not run again"


def test_quick_messages_stay_on_the_event_loop_while_others_write(player, engine):
    """Other connections commit all the time (the dispatcher, the planner, handler threads):
    a quick message must not be refused for it and handed over (a stale read snapshot on
    SQLite), which under load turned into a cascade of handovers and 300 ms stalls."""
    from bot.metrics import CALLBACK_HANDOVERS

    stop = threading.Event()
    writes = 0

    with Session(engine) as s:
        s.add(AppState(name="busy-writer", value="0"))
        s.commit()

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            with engine.begin() as conn:  # one write statement: it waits for the lock
                conn.execute(
                    update(AppState).where(AppState.name == "busy-writer").values(value=str(writes))
                )
            writes += 1
            time.sleep(0.001)

    before = CALLBACK_HANDOVERS._value.get()
    t = threading.Thread(target=writer)
    t.start()
    try:
        replies = [player.say("zhangsan", "帮助") for _ in range(60)]
    finally:
        stop.set()
        t.join()
    assert writes > 30, "the other connection was writing throughout"
    assert all("帮助" in r.content for r in replies)
    assert CALLBACK_HANDOVERS._value.get() == before


def test_the_wal_is_checkpointed_off_the_event_loop(player, engine, monkeypatch, bot_url):
    """On SQLite the event loop's connection never checkpoints (a stall for every request);
    a handler thread does it every CHECKPOINT_EVERY quick messages, and nothing holds an old
    snapshot that would keep it from copying the whole WAL."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the WAL is SQLite's")
    import bot.callback

    monkeypatch.setattr(bot.callback, "CHECKPOINT_EVERY", 20)
    runs: list[str] = []
    real = bot.callback.CallbackService._checkpoint

    def counted(self):
        runs.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(bot.callback.CallbackService, "_checkpoint", counted)
    for _ in range(150):
        assert "帮助" in player.say("zhangsan", "帮助").content
    time.sleep(0.3)  # the last checkpoint's thread
    # One every 20 messages (one may be skipped while the one before still runs), never on
    # the event loop's thread.
    assert len(runs) >= 6, runs
    assert all(name.startswith("mofan-callback") for name in runs), runs
    raw = engine.raw_connection()
    try:
        busy, frames, copied = raw.driver_connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
    finally:
        raw.close()
    # Between messages no connection holds a read snapshot: the whole WAL can be copied.
    assert (busy, copied) == (0, frames), (busy, frames, copied)
