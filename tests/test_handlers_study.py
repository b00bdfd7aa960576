"""学习 / 打卡: durations as people write them, the default when none is given, privacy, no streaks."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot import messages
from bot.models import StudyRecord
from tests.chatkit import Chat, fresh, shanghai


def _records(session, member):
    fresh(session)
    stmt = (
        select(StudyRecord)
        .where(col(StudyRecord.member_id) == member.id)
        .order_by(col(StudyRecord.id))
    )
    return list(session.scalars(stmt))


@pytest.mark.parametrize(
    ("text", "minutes", "topic"),
    [
        ("学习 40分钟 第一议题：学习贯彻重要讲话", 40, "第一议题:学习贯彻重要讲话"),
        ("学习 半小时", 30, ""),
        ("打卡 一个半小时 党史", 90, "党史"),
        ("学习 1.5小时", 90, ""),
        ("学习　三十分钟　党章", 30, "党章"),  # full-width spaces
        ("学习 ４０分钟 党章", 40, "党章"),  # full-width digits
        ("学习40分钟党章", 40, "党章"),
        ("学习 2h 条例", 120, "条例"),
        ("学习 90min", 90, ""),
        ("学习 1小时30分钟 二十大精神", 90, "二十大精神"),
        ("学习 二十大精神", None, "二十大精神"),
    ],
)
def test_study_is_recorded_as_said(session, bureau, chat, text, minutes, topic):
    reply = chat(bureau["member"], text)
    [row] = _records(session, bureau["member"])
    assert (row.minutes, row.topic) == (minutes, topic)
    assert row.at == chat.clock.now()
    assert "仅您本人和支部书记可见" in reply


def test_reply_states_the_year_total_against_the_target(session, bureau, chat, clock):
    chat(bureau["member"], "学习 1小时 党章")
    reply = chat(bureau["member"], "学习 半小时 党史")
    assert reply.splitlines() == [
        "已记录学习 30分钟「党史」。",
        "今年累计 1.5 学时，全年目标 32 学时（仅您本人和支部书记可见）。",
    ]
    # Committee members have the 56-hour target.
    assert "全年目标 56 学时" in chat(bureau["committee"], "学习 1小时")


def test_last_years_study_does_not_count_this_year(session, bureau, chat, clock):
    clock.set(shanghai(2026, 12, 31, 23, 50))
    chat(bureau["member"], "学习 2小时")
    clock.set(shanghai(2027, 1, 1, 0, 10))
    assert "今年累计 0.5 学时" in chat(bureau["member"], "学习 半小时")


def test_without_a_duration_the_default_applies(session, bureau, engine, clock, settings):
    chat = Chat(engine, clock, settings)
    reply = chat(bureau["member"], "学习 党章")
    assert "未填时长，不计学时" in reply
    settings.bot.default_study_minutes = 45
    chat = Chat(engine, clock, settings)
    assert chat(bureau["member"], "打卡 党章").startswith("已记录学习 45分钟「党章」")
    assert [r.minutes for r in _records(session, bureau["member"])] == [None, 45]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("学习 0分钟 党章", "0分钟"),
        ("学习 25小时", "25小时"),
        ("学习 40 党章", "40"),
        ("学习 700分钟", "700分钟"),
    ],
)
def test_impossible_durations_are_refused_with_the_right_form(session, bureau, chat, text, token):
    reply = chat(bureau["member"], text)
    assert reply == messages.BAD_DURATION.format(token=token)
    assert "示例：学习 40分钟" in reply
    assert _records(session, bureau["member"]) == []


@pytest.mark.parametrize("who", ["member", "secretary", "committee", "office", "leader", "other"])
def test_every_role_may_record_study(session, bureau, chat, who):
    assert chat(bureau[who], "学习 30分钟").startswith("已记录学习")


def test_no_streaks_no_ranking_no_quota_in_the_reply(session, bureau, chat):
    for _ in range(3):
        reply = chat(bureau["member"], "打卡 20分钟")
    for word in ("连续", "排名", "第1", "名次", "今日任务", "积分", "天"):
        assert word not in reply
