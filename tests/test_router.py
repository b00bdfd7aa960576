"""The router: strangers refused with nothing recorded; roles gate commands; help per role."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlmodel import SQLModel

from bot import messages
from bot.roles import EVERYONE, OFFICE, SECRETARIES, Role, roles_of
from bot.router import Command, Inbound, Request, Router, find_command
from handlers import help as help_handler
from tests.factories import small_bureau


def _count_all_rows(session) -> int:
    session.rollback()
    return sum(
        session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in SQLModel.metadata.sorted_tables
    )


async def _noop(req: Request, ctx) -> None:  # pragma: no cover - matching only
    ctx.reply(f"{req.keyword}|{req.args}")


TABLE = [
    Command("status", ("支部状态", "状态"), SECRETARIES, "状态", _noop),
    Command("notify", ("通知",), OFFICE, "通知", _noop),
    Command("confirm", ("收到",), EVERYONE, "收到", _noop),
]


def test_longest_keyword_wins_and_args_follow():
    cmd, kw, _ = find_command("支部状态 本月", frozenset(Role), TABLE)
    assert cmd is not None and kw == "支部状态"


def test_forbidden_match_is_reported():
    cmd, _, forbidden = find_command("通知 全体 开会", frozenset({Role.MEMBER}), TABLE)
    assert cmd is None and forbidden is not None and forbidden.name == "notify"


def test_roles_from_roster(session):
    p = small_bureau(session)
    assert roles_of(p["member"]) == {Role.MEMBER}
    assert roles_of(p["secretary"]) == {Role.MEMBER, Role.SECRETARY}
    assert roles_of(p["committee"]) == {Role.MEMBER, Role.SECRETARY}
    assert roles_of(p["office"]) == {Role.MEMBER, Role.OFFICE}
    assert roles_of(p["leader"]) == {Role.MEMBER, Role.LEADER}


def test_stranger_gets_one_polite_refusal_and_nothing_is_recorded(session, engine, clock, settings):
    small_bureau(session)
    before = _count_all_rows(session)
    router = Router(engine=engine, clock=clock, settings=settings)
    reply = asyncio.run(router.handle(Inbound(userid="nobody", text="学习 30分钟")))
    assert reply.text == messages.NOT_ON_ROSTER
    assert _count_all_rows(session) == before


def test_deactivated_member_is_refused(session, engine, clock, settings):
    p = small_bureau(session)
    p["member"].active = False
    session.add(p["member"])
    session.commit()
    router = Router(engine=engine, clock=clock, settings=settings)
    assert (
        asyncio.run(router.handle(Inbound(userid="zhangsan", text="帮助"))).text
        == messages.NOT_ON_ROSTER
    )


def test_member_using_office_command_is_refused(session, engine, clock, settings):
    small_bureau(session)
    router = Router(engine=engine, clock=clock, settings=settings, table=TABLE)
    reply = asyncio.run(router.handle(Inbound(userid="zhangsan", text="通知 全体 明天开会")))
    assert reply.text == "「通知」仅限党委办使用。"


def test_full_width_text_is_normalised(session, engine, clock, settings):
    small_bureau(session)
    router = Router(engine=engine, clock=clock, settings=settings, table=TABLE)
    reply = asyncio.run(router.handle(Inbound(userid="wangshuji", text="  状态　　１２ ")))
    assert reply.text == "状态|12"


def test_help_is_role_specific(session, engine, clock, settings):
    small_bureau(session)
    router = Router(
        engine=engine, clock=clock, settings=settings, table=[*TABLE, *help_handler.COMMANDS]
    )

    def lines(user: str) -> str:
        return asyncio.run(router.handle(Inbound(userid=user, text="帮助"))).text

    member, secretary, office = lines("zhangsan"), lines("wangshuji"), lines("zhouban")
    assert "· 收到" in member and "· 状态" not in member and "· 通知" not in member
    assert "· 状态" in secretary and "· 通知" not in secretary
    assert "· 通知" in office and "· 状态" not in office
    assert member.startswith("您好，张三。")


def test_unknown_text_gets_the_help_for_that_role(session, engine, clock, settings):
    small_bureau(session)
    router = Router(
        engine=engine, clock=clock, settings=settings, table=[*TABLE, *help_handler.COMMANDS]
    )
    reply = asyncio.run(router.handle(Inbound(userid="wangshuji", text="今天天气如何")))
    assert reply.text.startswith("没听懂「今天天气如何」。") and "· 状态" in reply.text


def test_handler_error_rolls_back_and_answers_politely(session, engine, clock, settings):
    from bot.models import Feedback

    p = small_bureau(session)

    async def broken(req: Request, ctx) -> None:
        ctx.session.add(Feedback(member_id=p["member"].id, text="x", at=ctx.now))
        ctx.session.flush()
        raise RuntimeError("bug")

    router = Router(
        engine=engine,
        clock=clock,
        settings=settings,
        table=[Command("b", ("坏",), EVERYONE, "", broken)],
    )
    assert (
        asyncio.run(router.handle(Inbound(userid="zhangsan", text="坏"))).text
        == messages.INTERNAL_ERROR
    )
    session.rollback()
    assert session.execute(select(func.count()).select_from(Feedback)).scalar_one() == 0


def test_help_fits_one_wecom_message_for_every_role(session, engine, clock, settings):
    """WeCom cuts a passive reply at 2048 bytes: help for the busiest roles must fit in one."""
    from bot.models import Member

    p = small_bureau(session)
    both = Member(
        userid="both", name="全能", branch_id=p["b1"].id, duties="书记", roles="党委办、党委委员"
    )
    session.add(both)
    session.commit()
    router = Router(engine=engine, clock=clock, settings=settings)
    for user in ("zhangsan", "wangshuji", "zhouban", "wuweiyuan", "both"):
        text = asyncio.run(router.handle(Inbound(userid=user, text="帮助"))).text
        assert len(text.encode()) <= 2048, (user, len(text.encode()))


def test_help_for_one_command(session, engine, clock, settings):
    small_bureau(session)
    router = Router(engine=engine, clock=clock, settings=settings)

    def say(user: str, text: str) -> str:
        return asyncio.run(router.handle(Inbound(userid=user, text=text))).text

    assert say("wangshuji", "帮助 安排").startswith("安排 <类型> <日期> <时间>")
    assert say("zhangsan", "帮助 安排") == "您可用的命令里没有「安排」。说「帮助」查看可用命令。"


def _run_one(engine, clock, settings, handle) -> str:
    router = Router(
        engine=engine,
        clock=clock,
        settings=settings,
        table=[Command("t", ("试",), EVERYONE, "", handle)],
    )
    return asyncio.run(router.handle(Inbound(userid="zhangsan", text="试"))).text


def _member(engine, member_id: int):
    from sqlmodel import Session

    from bot.models import Member

    with Session(engine) as fresh:
        return fresh.get(Member, member_id)


def test_a_change_to_the_sender_is_kept_with_or_without_the_session(
    session, engine, clock, settings
):
    """The message's ORM session is made only when a handler uses it; the sender is its row
    either way, so what a handler changes on it is written."""
    from bot.models import Feedback, Member

    p = small_bureau(session)

    async def rename(req: Request, ctx) -> None:
        ctx.sender.name = "张三丰"  # the session is not touched
        ctx.reply("ok")

    assert _run_one(engine, clock, settings, rename) == "ok"
    assert _member(engine, p["member"].id).name == "张三丰"

    async def through_session(req: Request, ctx) -> None:
        ctx.sender.duties = "宣传委员"  # before the session exists
        assert ctx.session.get(Member, ctx.sender.id) is ctx.sender
        ctx.session.add(Feedback(member_id=ctx.sender.id, text="意见", at=ctx.now))
        ctx.reply("ok")

    assert _run_one(engine, clock, settings, through_session) == "ok"
    assert _member(engine, p["member"].id).duties == "宣传委员"
    assert session.execute(select(func.count()).select_from(Feedback)).scalar_one() == 1


def test_a_failed_flush_answers_politely_with_nothing_written(session, engine, clock, settings):
    from bot.models import Feedback

    p = small_bureau(session)

    async def dangling(req: Request, ctx) -> None:
        ctx.session.add(Feedback(member_id=999_999, text="x", at=ctx.now))  # no such member
        ctx.sender.name = "不该写入"
        ctx.reply("ok")

    assert _run_one(engine, clock, settings, dangling) == messages.INTERNAL_ERROR
    session.rollback()
    assert session.execute(select(func.count()).select_from(Feedback)).scalar_one() == 0
    assert _member(engine, p["member"].id).name == "张三"
