"""已交党费: own dues by month, a secretary recording and correcting for their branch only."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot import messages
from bot.models import DuesRecord
from tests.chatkit import fresh, shanghai


def _paid(session, member):
    fresh(session)
    stmt = (
        select(DuesRecord.month)
        .where(col(DuesRecord.member_id) == member.id)
        .order_by(col(DuesRecord.month))
    )
    return list(session.scalars(stmt))


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("已交党费", ["2026-11"]),
        ("已交党费 11月", ["2026-11"]),
        ("已交党费 十一月", ["2026-11"]),
        ("已交党费 上月", ["2026-10"]),
        ("已交党费 2026-09", ["2026-09"]),
        ("已交党费 9月-11月", ["2026-09", "2026-10", "2026-11"]),
        ("已交党费 10月、11月", ["2026-10", "2026-11"]),
        ("已交党费 1-3月", ["2027-01", "2027-02", "2027-03"]),  # in advance, nearest January
    ],
)
def test_member_records_own_dues(session, bureau, chat, text, months):
    reply = chat(bureau["member"], text)
    assert reply.startswith("已登记")
    assert _paid(session, bureau["member"]) == months


def test_twice_is_once(session, bureau, chat):
    chat(bureau["member"], "已交党费 11月")
    assert chat(bureau["member"], "已交党费 10月、11月") == "已登记10月党费。\n11月党费已登记过。"
    assert _paid(session, bureau["member"]) == ["2026-10", "2026-11"]


def test_last_december_in_january(session, bureau, chat, clock):
    clock.set(shanghai(2027, 1, 6, 9))
    assert chat(bureau["member"], "已交党费 12月") == "已登记2026年12月党费。"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("已交党费 13月", "月份看不懂：13月。示例：已交党费 11月"),
        ("已交党费 2028-03", "最多可预先登记12个月"),
        ("已交党费 张三", messages.DUES_ONLY_SECRETARY),
        ("已交党费 11月 撤销", messages.DUES_ONLY_SECRETARY),
    ],
)
def test_member_mistakes_change_nothing(session, bureau, chat, text, expected):
    assert expected in chat(bureau["member"], text)
    assert _paid(session, bureau["member"]) == []


def test_secretary_records_and_corrects_a_branch_member(session, bureau, chat):
    assert chat(bureau["secretary"], "已交党费 张三 11月") == "已登记张三11月党费。"
    assert chat(bureau["committee"], "已交党费 张三") == "张三11月党费已登记过。"
    fresh(session)
    row = session.scalars(select(DuesRecord)).one()
    assert row.recorded_by_id == bureau["secretary"].id
    assert chat(bureau["secretary"], "已交党费 张三 11月 撤销") == "已撤销张三11月党费登记。"
    assert _paid(session, bureau["member"]) == []
    assert (
        chat(bureau["secretary"], "已交党费 张三 11月 撤销") == "张三11月没有党费登记，无需撤销。"
    )


def test_secretary_may_not_record_another_branch(session, bureau, chat):
    assert chat(bureau["secretary"], "已交党费 钱五 11月") == messages.MEMBER_OTHER_BRANCH.format(
        name="钱五", branch="第一党支部"
    )
    assert _paid(session, bureau["other"]) == []
    assert chat(bureau["secretary"], "已交党费 无名氏") == messages.MEMBER_NOT_FOUND.format(
        name="无名氏"
    )


@pytest.mark.parametrize("who", ["member", "secretary", "office", "leader", "other"])
def test_everyone_records_their_own(session, bureau, chat, who):
    assert chat(bureau[who], "已交党费") == "已登记11月党费。"


def test_help_shows_secretaries_the_form_for_others(session, bureau, chat):
    assert "已交党费 <姓名>" in chat(bureau["secretary"], "帮助")
    assert "已交党费 <姓名>" not in chat(bureau["member"], "帮助")
