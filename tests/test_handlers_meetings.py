"""安排 / 第一议题 / 补学: the grammar, who is invited, cards, backfilled meetings, scope."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot import messages
from bot.models import Attendance, Meeting
from tests.chatkit import add_meeting, fresh, outbox, recipients, shanghai
from tests.factories import member, org


def _meetings(session):
    fresh(session)
    return list(session.scalars(select(Meeting).order_by(col(Meeting.id))))


def _invited(session, meeting_id):
    fresh(session)
    stmt = select(Attendance.member_id, Attendance.status).where(
        col(Attendance.meeting_id) == meeting_id
    )
    return dict(session.execute(stmt).all())


def test_schedule_committee_meeting_sends_the_committee_a_card(session, bureau, chat, clock):
    reply = chat(bureau["secretary"], "安排 支委会 12月5日 14:30 三楼会议室 第一议题学习")
    [m] = _meetings(session)
    assert (m.kind, m.place, m.topic, m.branch_id) == (
        "支委会",
        "三楼会议室",
        "第一议题学习",
        bureau["b1"].id,
    )
    assert m.starts_at == shanghai(2026, 12, 5, 14, 30) and m.ends_at == shanghai(
        2026, 12, 5, 16, 30
    )
    assert reply.startswith(
        f"已安排：支委会 12月5日（周六）14:30–16:30，三楼会议室，第一议题学习（编号{m.id}）。"
    )
    assert "已通知2人（支委）" in reply
    assert _invited(session, m.id) == {
        bureau["secretary"].id: "invited",
        bureau["committee"].id: "invited",
    }
    rows = outbox(session, f"meeting:{m.id}:invite:")
    assert recipients(rows) == {"wangshuji", "liweiyuan"}
    card = rows[0].body["template_card"]
    assert card["card_type"] == "button_interaction"
    assert [b["key"] for b in card["button_list"]] == [f"签到 {m.id}", f"请假 {m.id}"]
    assert f"回复「签到 {m.id}」签到" in rows[0].body["text"]


@pytest.mark.parametrize(
    ("text", "kind", "start", "end"),
    [
        (
            "安排 支部党员大会 2027-03-05 9:00 大会议室 审议年度计划",
            "支部党员大会",
            (2027, 3, 5, 9, 0),
            (2027, 3, 5, 11, 0),
        ),
        (
            "安排 党员大会 2027/3/5 下午两点半",
            "支部党员大会",
            (2027, 3, 5, 14, 30),
            (2027, 3, 5, 16, 30),
        ),
        (
            "安排 主题党日 下周三 上午九点 党员活动室",
            "主题党日",
            (2026, 12, 2, 9, 0),
            (2026, 12, 2, 11, 0),
        ),
        (
            "安排 党课 明天 14:30-16:00 报告厅 学习党章",
            "党课",
            (2026, 11, 26, 14, 30),
            (2026, 11, 26, 16, 0),
        ),
        (
            "安排　支委会　１２月５日　１４：３０",
            "支委会",
            (2026, 12, 5, 14, 30),
            (2026, 12, 5, 16, 30),
        ),
        ("安排 支委会 十二月五日 2点半", "支委会", (2026, 12, 5, 14, 30), (2026, 12, 5, 16, 30)),
        ("安排 支委会 后天 9点", "支委会", (2026, 11, 27, 9, 0), (2026, 11, 27, 11, 0)),
        ("安排 支委会 周五 9:00", "支委会", (2026, 11, 27, 9, 0), (2026, 11, 27, 11, 0)),
    ],
)
def test_schedule_accepts_real_world_spellings(session, bureau, chat, text, kind, start, end):
    reply = chat(bureau["secretary"], text)
    assert reply.startswith("已安排："), reply
    [m] = _meetings(session)
    assert (m.kind, m.starts_at, m.ends_at) == (kind, shanghai(*start), shanghai(*end))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "安排 支委会 13月40日 14:30",
            "日期看不懂：13月40日。示例：安排 支委会 12月5日 14:30 三楼会议室 第一议题学习",
        ),
        ("安排 支委会 12月5日 25:00", "时间看不懂：25:00。示例：安排 支委会"),
        ("安排 支委会 12月5日", "缺少时间。示例："),
        ("安排 支委会 三楼会议室", "缺少日期。示例："),
        ("安排 茶话会 12月5日 14:30", "会议类型看不懂：茶话会。可以是：支部党员大会、支委会"),
        ("安排", "会议类型看不懂：（空）"),
        ("安排 支委会 2025-12-05 14:30", "日期2025年12月5日太早了，只能补录今年的会议。"),
        ("安排 支委会 2028-12-05 14:30", "日期2028年12月5日太远了"),
    ],
)
def test_bad_schedules_say_what_is_wrong_and_change_nothing(session, bureau, chat, text, expected):
    assert chat(bureau["secretary"], text).startswith(expected)
    assert _meetings(session) == [] and outbox(session) == []


def test_group_meeting_goes_to_the_group(session, bureau, chat):
    reply = chat(bureau["committee"], "安排 党小组会 12月3日 9:00")  # 李委员's own group
    [m] = _meetings(session)
    assert m.group_id == bureau["g1"].id and "第一党小组党员" in reply
    assert set(_invited(session, m.id)) == {bureau["committee"].id, bureau["member"].id}


def test_group_meeting_names_its_group_when_the_sender_has_none(session, bureau, chat):
    g2 = org(session, "第一党支部/第二党小组", "党小组", parent=bureau["b1"])
    session.commit()
    assert "请说明是哪个党小组：第一党小组、第二党小组" in chat(
        bureau["secretary"], "安排 党小组会 12月3日 9:00"
    )
    chat(bureau["secretary"], "安排 党小组会 第二党小组 12月3日 9:00")
    assert _meetings(session)[0].group_id == g2.id


def test_branch_meeting_goes_to_everyone_in_the_branch(session, bureau, chat):
    chat(bureau["secretary"], "安排 主题党日 12月15日 9:00 红色教育基地")
    [m] = _meetings(session)
    assert len(_invited(session, m.id)) == 4
    assert recipients(outbox(session, f"meeting:{m.id}:")) == {
        "wangshuji",
        "liweiyuan",
        "zhangsan",
        "zhaosi",
    }


def test_secretary_lecture_is_kept_as_a_lesson_naming_the_secretary(session, bureau, chat):
    chat(bureau["secretary"], "安排 书记讲党课 12月10日 15:00 报告厅")
    [m] = _meetings(session)
    assert (m.kind, m.topic, m.place) == ("党课", "书记讲党课", "报告厅")


def test_a_lone_word_is_a_place_if_it_looks_like_one(session, bureau, chat):
    chat(bureau["secretary"], "安排 党课 12月10日 15:00 学习二十届四中全会精神")
    chat(bureau["secretary"], "安排 党课 12月11日 15:00 五楼报告厅")
    a, b = _meetings(session)
    assert (a.place, a.topic) == ("", "学习二十届四中全会精神")
    assert (b.place, b.topic) == ("五楼报告厅", "")


def test_the_same_meeting_twice_is_not_doubled(session, bureau, chat):
    chat(bureau["secretary"], "安排 支委会 12月5日 14:30")
    reply = chat(bureau["committee"], "安排 支委会 12月5日 14:30 三楼")
    assert "已经安排过了" in reply and len(_meetings(session)) == 1


def test_a_past_time_records_a_held_meeting_without_cards(session, bureau, chat):
    reply = chat(bureau["secretary"], "安排 支委会 11月20日 14:30 三楼会议室")
    [m] = _meetings(session)
    assert reply.startswith("已补录：支委会 11月20日（周五）14:30–16:30")
    assert m.status == "held" and outbox(session) == []


def test_schedule_on_a_holiday_warns(session, bureau, chat, clock):
    clock.set(shanghai(2026, 9, 20, 10))
    reply = chat(bureau["secretary"], "安排 主题党日 10月2日 9:00")
    assert "注意：10月2日是国庆节" in reply


def test_cards_wait_for_the_send_window(session, bureau, chat, clock):
    clock.set(shanghai(2026, 11, 28, 11, 0))  # Saturday
    reply = chat(bureau["secretary"], "安排 支委会 12月1日 9:00")
    assert "非工作时间，将于11月30日（周一）8:3" in reply


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_only_secretaries_schedule(session, bureau, chat, who):
    assert chat(bureau[who], "安排 支委会 12月5日 14:30") == messages.FORBIDDEN.format(
        command="安排", who="支部书记、支委"
    )
    assert _meetings(session) == []


def test_first_topic_on_the_latest_committee_meeting(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支委会", shanghai(2026, 11, 20, 9), now=shanghai(2026, 11, 19)
    )
    reply = chat(bureau["secretary"], "第一议题 学习习近平总书记最新重要讲话精神")
    assert (
        reply
        == f"已记录第一议题：支委会 11月20日（周五）9:00（编号{m.id}）——学习习近平总书记最新重要讲话精神"
    )
    assert _meetings(session)[0].first_topic == "学习习近平总书记最新重要讲话精神"
    assert "支委会未记录第一议题" not in chat(bureau["secretary"], "状态")


def test_first_topic_by_number_and_scope(session, bureau, chat, clock):
    other = add_meeting(
        session, bureau["b2"], "支委会", shanghai(2026, 11, 20, 9), now=shanghai(2026, 11, 19)
    )
    assert chat(
        bureau["secretary"], f"第一议题 {other.id} 学习"
    ) == messages.MEETING_OTHER_BRANCH.format(id=other.id, branch="第一党支部")
    assert _meetings(session)[0].first_topic is None
    assert chat(bureau["secretary"], "第一议题 学习") == messages.FIRST_TOPIC_NO_MEETING
    own = add_meeting(
        session, bureau["b1"], "支委会", shanghai(2026, 11, 25, 14), now=shanghai(2026, 11, 19)
    )
    assert "请写明学习内容" in chat(bureau["secretary"], f"第一议题 {own.id}")
    assert f"编号{own.id}" in chat(bureau["secretary"], "第一议题 学习新思想")  # today's meeting


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_first_topic_and_makeup_are_the_secretarys(session, bureau, chat, who):
    assert chat(bureau[who], "第一议题 学习").startswith("「第一议题」仅限")
    assert chat(bureau[who], "补学 张三").startswith("「补学」仅限")


def test_makeup_for_the_latest_missed_meeting(session, bureau, chat, clock):
    m = add_meeting(
        session,
        bureau["b1"],
        "支部党员大会",
        shanghai(2026, 11, 20, 14, 30),
        now=shanghai(2026, 11, 19),
    )
    assert (
        chat(bureau["secretary"], "补学 张三")
        == f"已登记：张三 补学 支部党员大会 11月20日（周五）14:30（编号{m.id}）。"
    )
    assert _invited(session, m.id)[bureau["member"].id] == "made_up"
    assert chat(bureau["secretary"], "补学 张三") == "张三没有需要补学的会议。"
    assert chat(bureau["secretary"], f"补学 张三 {m.id}") == messages.MAKEUP_NOT_MISSED.format(
        name="张三", id=m.id
    )


def test_makeup_scope_and_mistakes_change_nothing(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支委会", shanghai(2026, 11, 20, 14, 30), now=shanghai(2026, 11, 19)
    )
    assert chat(bureau["secretary"], "补学 钱五") == messages.MEMBER_OTHER_BRANCH.format(
        name="钱五", branch="第一党支部"
    )
    assert chat(bureau["secretary"], "补学 无名氏") == messages.MEMBER_NOT_FOUND.format(
        name="无名氏"
    )
    assert chat(bureau["secretary"], f"补学 张三 {m.id}") == messages.MAKEUP_NOT_INVITED.format(
        name="张三", id=m.id
    )
    later = add_meeting(
        session, bureau["b1"], "主题党日", shanghai(2026, 11, 26, 9), now=shanghai(2026, 11, 19)
    )
    assert chat(bureau["secretary"], f"补学 张三 {later.id}") == messages.MAKEUP_NOT_ENDED.format(
        id=later.id
    )
    twin = member(session, bureau["b1"], "张三", userid="zhangsan2")
    session.commit()
    assert "有多位「张三」" in chat(bureau["secretary"], "补学 张三")
    assert twin.id is not None
    fresh(session)
    made_up = session.scalar(
        select(func.count()).select_from(Attendance).where(col(Attendance.status) == "made_up")
    )
    assert made_up == 0
