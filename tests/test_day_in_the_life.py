"""A day in the life of a branch, end to end through the router.

A secretary schedules a 支委会; the committee gets the card; members sign in (inside the
window, by word and by button) and one asks for leave (the secretary is told); the
secretary reads 考勤 and 状态; the office broadcasts a notice and 总览 shows the
confirmations coming in.

:func:`day_in_the_life` is the scenario itself, written against a ``say`` function so that
it can be replayed through any front door: here the router, elsewhere the WeCom callback
with the fake WeCom (pass a ``say`` that encrypts and POSTs, and a ``card_updated`` check that
reads the passive reply).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from sqlmodel import Session

from bot.clock import FixedClock
from bot.models import Member
from tests.chatkit import Chat, body_text, outbox, recipients, shanghai
from tests.factories import member, small_bureau


class Say(Protocol):
    """Send ``text`` as ``userid`` (or a card click, ``key``) and return the reply."""

    def __call__(self, userid: str, text: str = "", *, key: str | None = None) -> Any: ...


def cast(session: Session) -> dict[str, Any]:
    """The people of the day: small_bureau's, with a four-strong committee in 第一党支部."""
    people = small_bureau(session)
    people["propaganda"] = member(
        session, people["b1"], "陈宣传", userid="chenxuan", duties="宣传委员"
    )
    people["discipline"] = member(
        session, people["b1"], "刘纪检", userid="liujijian", duties="纪检委员"
    )
    session.commit()
    return people


def _number(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, text
    return int(found.group(1))


def _card_updated_in_extras(reply: Any, name: str) -> None:
    assert reply.extras.get("card_update") == {"replace_name": name}, reply


def day_in_the_life(
    say: Say,
    *,
    clock: FixedClock,
    session: Session,
    people: dict[str, Any],
    card_updated: Callable[[Any, str], None] = _card_updated_in_extras,
) -> dict[str, int]:
    """Run the day; returns the meeting's and the notice's numbers."""
    secretary: Member = people["secretary"]
    office: Member = people["office"]
    committee = [people[k] for k in ("secretary", "committee", "propaganda", "discipline")]
    everyone = [p for p in people.values() if isinstance(p, Member)]

    # 09:20 — the secretary schedules this afternoon's 支委会.
    clock.set(shanghai(2026, 11, 25, 9, 20))
    reply = say(secretary.userid, "安排 支委会 今天 14:30 三楼会议室 第一议题学习")
    assert "已安排：支委会 11月25日（周三）14:30–16:30，三楼会议室，第一议题学习" in reply.text
    assert "已通知4人（支委）" in reply.text
    meeting_id = _number(reply.text, r"编号(\d+)")

    # The committee — and only the committee — gets the card with 签到 and 请假 buttons.
    cards = outbox(session, f"meeting:{meeting_id}:invite:")
    assert recipients(cards) == {p.userid for p in committee}
    for row in cards:
        assert row.body["msgtype"] == "template_card"
        keys = [b["key"] for b in row.body["template_card"]["button_list"]]
        assert keys == [f"签到 {meeting_id}", f"请假 {meeting_id}"]
        assert f"签到 {meeting_id}" in body_text(row)  # the text fallback names the reply word

    # 10:05 — 刘纪检 taps 请假 on the card, then gives the reason; the secretary is told.
    clock.set(shanghai(2026, 11, 25, 10, 5))
    reply = say(people["discipline"].userid, key=f"请假 {meeting_id}")
    assert "已为您请假：支委会 11月25日（周三）14:30" in reply.text and "已告知王书记" in reply.text
    card_updated(reply, "已请假")
    reply = say(people["discipline"].userid, f"请假 {meeting_id} 外出调研")
    assert "请假原因已更新：外出调研" in reply.text
    told = outbox(session, "leave:")
    assert recipients(told) == {secretary.userid}
    assert "刘纪检请假：支委会 11月25日（周三）14:30。原因：外出调研" in [
        body_text(r) for r in told
    ]

    # 13:50 — too early for 签到 (the window opens at 14:00).
    clock.set(shanghai(2026, 11, 25, 13, 50))
    assert (
        "从11月25日（周三）14:00起可签到"
        in say(people["committee"].userid, key=f"签到 {meeting_id}").text
    )

    # 14:05 — sign-ins: by word, by button, and a second tap that changes nothing.
    clock.set(shanghai(2026, 11, 25, 14, 5))
    assert "已签到：支委会" in say(people["committee"].userid, "签到").text
    reply = say(people["propaganda"].userid, key=f"签到 {meeting_id}")
    assert "已签到：支委会" in reply.text
    card_updated(reply, "已签到")
    assert "无需再签" in say(people["propaganda"].userid, key=f"签到 {meeting_id}").text
    clock.set(shanghai(2026, 11, 25, 14, 28))
    assert "已签到：支委会" in say(secretary.userid, "签到").text
    # A member who is not on the committee cannot sign in to it.
    assert "不是您需要参加的会议" in say(people["member"].userid, f"签到 {meeting_id}").text

    # 14:40 — the secretary reads 考勤 during the meeting.
    clock.set(shanghai(2026, 11, 25, 14, 40))
    reply = say(secretary.userid, "考勤")
    assert "支委会 11月25日（周三）14:30–16:30" in reply.text
    assert "签到 3：王书记、李委员、陈宣传" in reply.text
    assert "请假 1：刘纪检（外出调研）" in reply.text
    reply = say(secretary.userid, "第一议题 学习习近平总书记最新重要讲话精神")
    assert f"已记录第一议题：支委会 11月25日（周三）14:30（编号{meeting_id}）" in reply.text

    # 16:45 — after the meeting: 状态 shows this month's 支委会 held.
    clock.set(shanghai(2026, 11, 25, 16, 45))
    reply = say(secretary.userid, "状态")
    assert "· 支委会（每月≥1次）：本月1/1 ▰▰▰▰▰ ✓" in reply.text
    assert "支委会未记录第一议题" not in reply.text

    # 17:00 — the office broadcasts a notice; 总览 shows confirmations coming in.
    clock.set(shanghai(2026, 11, 25, 17, 0))
    reply = say(office.userid, "通知 全体 请各支部于本月底前报送创建工作推进情况 截止 11月30日")
    notice_id = _number(reply.text, r"已发出通知(\d+)")
    assert f"共{len(everyone)}人" in reply.text
    sent = outbox(session, f"notice:{notice_id}:")
    assert recipients(sent) == {p.userid for p in everyone}
    assert all(
        r.body["template_card"]["button_list"][0]["key"] == f"收到 {notice_id}" for r in sent
    )
    assert f"已确认 0/{len(everyone)}" in say(office.userid, "总览").text

    assert "已确认收到通知" in say(people["member"].userid, "收到").text
    reply = say(people["committee"].userid, key=f"收到 {notice_id}")
    assert f"已确认收到通知{notice_id}" in reply.text
    card_updated(reply, "已确认")
    assert "已确认收到通知" in say(people["other"].userid, f"收到 {notice_id}").text
    overview = say(office.userid, "总览").text
    assert (
        f"通知{notice_id}「请各支部于本月底前报送创建工作…」：已确认 3/{len(everyone)}" in overview
    )
    assert f"通知{notice_id}已确认 2/6" in overview  # 第一党支部: 张三 and 李委员 of six
    for name in ("张三", "李委员", "钱五"):
        assert name not in overview  # branches, never people
    # The secretary sees who in the branch has not confirmed yet.
    waiting = say(secretary.userid, "未确认").text
    assert "第一党支部已确认 2/6" in waiting and "张三" not in waiting.split("未确认：")[1]
    return {"meeting": meeting_id, "notice": notice_id}


def test_day_in_the_life_through_the_router(engine, session, clock, settings):
    people = cast(session)
    chat = Chat(engine, clock, settings)

    def say(userid: str, text: str = "", *, key: str | None = None) -> Any:
        return chat.send(userid, text, key=key)

    ids = day_in_the_life(say, clock=clock, session=session, people=people)
    assert ids["meeting"] > 0 and ids["notice"] > 0


def test_day_in_the_life_through_the_wecom_callback(engine, session, clock, settings):
    """The same day, in through the front door: signed and encrypted callbacks to the live
    app, replies decrypted, card clicks answered with a button update, and the messages the
    bot sends read back from the fake WeCom on loopback."""
    import asyncio
    import itertools

    from bot.app import create_app
    from bot.fake_wecom import PlayedReply
    from bot.runtime import Runtime
    from tests.fakes.live import LiveServer
    from tests.fakes.wecom import RunningFake, configure_wecom, player_for

    people = cast(session)
    fake = RunningFake()
    with LiveServer(fake.app) as fake_url:
        configure_wecom(settings, fake_url)
        rt = Runtime(settings=settings, clock=clock, engine_override=engine)
        app = create_app(rt, scheduler=False)
        created = itertools.count(int(clock.now().timestamp()))

        class Answer:
            def __init__(self, played: PlayedReply, text: str) -> None:
                self.played, self.text = played, text

        # One event loop for every dispatcher pass: the WeCom client's connections live in it.
        loop = asyncio.new_event_loop()

        def deliver() -> None:
            loop.run_until_complete(rt.dispatcher.drain())

        with LiveServer(app) as bot_url, player_for(bot_url) as player:

            def say(userid: str, text: str = "", *, key: str | None = None) -> Any:
                before = len(fake.texts(userid))
                if key is None:
                    played = player.say(userid, text)
                    assert played.status == 200 and not played.empty, played
                    return Answer(played, played.content)
                # Events carry no MsgId: a distinct CreateTime per click, as WeCom sends.
                played = player.click(userid, key, create_time=next(created))
                assert played.status == 200, played
                deliver()
                said = fake.texts(userid)[before:]
                return Answer(played, played.content or "\n".join(said))

            def card_updated(reply: Any, name: str) -> None:
                assert reply.played.button == name, reply.played

            try:
                ids = day_in_the_life(
                    say, clock=clock, session=session, people=people, card_updated=card_updated
                )
                deliver()
            finally:
                loop.run_until_complete(rt.aclose())
                loop.close()

    # The broadcast reached every member through message/send, each exactly once.
    notice_key = f"收到 {ids['notice']}"
    got = [
        u
        for call in fake.calls_to("message/send")
        for u in call["body"].get("touser", "").split("|")
        if notice_key in str(call["body"])
    ]
    assert sorted(got) == sorted({p.userid for p in people.values() if isinstance(p, Member)})
