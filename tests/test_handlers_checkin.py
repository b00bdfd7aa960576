"""签到 and 请假: the window, a second sign-in, cards, leave told to the secretary, scope, races."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot import messages
from bot.models import Attendance
from tests.chatkit import Chat, add_meeting, body_text, fresh, outbox, recipients, shanghai


def _attendance(session, meeting_id, member_id):
    fresh(session)
    return session.scalars(
        select(Attendance).where(
            col(Attendance.meeting_id) == meeting_id, col(Attendance.member_id) == member_id
        )
    ).all()


def test_member_signs_in_from_30_minutes_before_and_a_second_time_changes_nothing(
    session, bureau, chat, clock
):
    # Now is 10:07; the branch meeting starts 10:30: the window is open.
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    first = chat(bureau["member"], "签到")
    assert first.startswith("已签到：支部党员大会 11月25日（周三）10:30")
    rows = _attendance(session, m.id, bureau["member"].id)
    assert [r.status for r in rows] == ["signed_in"]
    clock.advance(minutes=5)
    again = chat(bureau["member"], "  签到 ")
    assert "您已于11月25日（周三）10:07签到支部党员大会" in again
    assert len(_attendance(session, m.id, bureau["member"].id)) == 1


def test_sign_in_is_closed_before_the_window_and_after_the_end(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 14, 30), now=clock.now()
    )
    reply = chat(bureau["member"], "签到")
    assert (
        "现在没有可签到的会议" in reply
        and "下一次会议：支部党员大会 11月25日（周三）14:30" in reply
    )
    reply = chat(bureau["member"], f"签到 {m.id}")
    assert "从11月25日（周三）14:00起可签到" in reply
    clock.set(shanghai(2026, 11, 25, 16, 31))  # the meeting ended at 16:30
    assert "已结束，不能再签到" in chat(bureau["member"], f"签到 {m.id}")
    assert _attendance(session, m.id, bureau["member"].id)[0].status == "invited"


def test_the_window_edges_are_inclusive(session, bureau, chat, clock):
    m = add_meeting(
        session,
        bureau["b1"],
        "主题党日",
        shanghai(2026, 11, 25, 10, 37),
        minutes=60,
        now=clock.now(),
    )
    clock.set(shanghai(2026, 11, 25, 10, 6))
    assert "从" in chat(bureau["member"], f"签到 {m.id}")  # 31 minutes before: not yet
    clock.set(shanghai(2026, 11, 25, 10, 7))
    assert chat(bureau["member"], f"签到 {m.id}").startswith("已签到")
    clock.set(shanghai(2026, 11, 25, 11, 37))  # exactly the end
    assert chat(bureau["member2"], "签到").startswith("已签到")


def test_card_button_has_the_effect_of_the_words_and_updates_the_button(
    session, bureau, chat, clock
):
    m = add_meeting(
        session, bureau["b1"], "支委会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    reply = chat.click(bureau["committee"], f"签到 {m.id}")
    assert reply.text.startswith("已签到：支委会")
    assert reply.extras["card_update"] == {"replace_name": messages.BUTTON_CHECKED_IN}
    again = chat.click(bureau["committee"], f"签到 {m.id}")
    assert "无需再签" in again.text and again.extras["card_update"]["replace_name"] == "已签到"


def test_only_the_meetings_audience_may_sign_in(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支委会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    # 张三 is not on the committee; 钱五 is in another branch.
    assert chat(bureau["member"], f"签到 {m.id}") == messages.MEETING_NOT_YOURS.format(id=m.id)
    assert chat(bureau["other"], f"签到 {m.id}") == messages.MEETING_NOT_YOURS.format(id=m.id)
    assert "现在没有可签到的会议" in chat(bureau["member"], "签到")
    assert chat(bureau["member"], "签到 999") == messages.MEETING_NOT_FOUND.format(id=999)
    assert _attendance(session, m.id, bureau["member"].id) == []


@pytest.mark.parametrize("who", ["member", "secretary", "committee", "member2"])
def test_every_role_signs_in_to_their_own_branch_meeting(session, bureau, chat, clock, who):
    add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 10, 0), now=clock.now()
    )
    assert chat(bureau[who], "签到").startswith("已签到")


@pytest.mark.parametrize("who", ["office", "leader", "secretary2"])
def test_office_and_leaders_sign_in_as_members_of_their_own_branch(
    session, bureau, chat, clock, who
):
    add_meeting(
        session, bureau["b2"], "支部党员大会", shanghai(2026, 11, 25, 10, 0), now=clock.now()
    )
    assert chat(bureau[who], "签到").startswith("已签到")


def test_a_member_who_joined_after_scheduling_can_sign_in(session, bureau, chat, clock):
    from tests.factories import member

    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    newcomer = member(session, bureau["b1"], "新同志", userid="xin")
    session.commit()
    assert chat(newcomer, "签到").startswith("已签到")
    assert _attendance(session, m.id, newcomer.id)[0].status == "signed_in"


def test_stranger_is_refused(chat):
    assert chat("nobody", "签到") == messages.NOT_ON_ROSTER


def test_leave_with_reason_tells_the_secretary_privately(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 27, 14, 30), now=clock.now()
    )
    reply = chat(bureau["member"], "请假  出差，在外地")
    assert reply.startswith("已为您请假：支部党员大会 11月27日（周五）14:30。")
    assert "已告知王书记" in reply
    row = _attendance(session, m.id, bureau["member"].id)[0]
    assert (row.status, row.reason) == ("leave", "出差,在外地")
    told = outbox(session, "leave:")
    assert recipients(told) == {"wangshuji"}
    assert "张三请假：支部党员大会 11月27日（周五）14:30。原因：出差,在外地" == body_text(told[0])
    assert told[0].due_at == clock.now()


def test_leave_without_reason_then_with_one(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 27, 14, 30), now=clock.now()
    )
    reply = chat(bureau["member"], "请假")
    assert f"如需说明原因，可回复「请假 {m.id} 原因」" in reply
    assert "原因：未说明" in body_text(outbox(session, "leave:")[0])
    reply = chat(bureau["member"], f"请假 {m.id} 家中有事")
    assert reply == "请假原因已更新：家中有事。"
    assert len(outbox(session, "leave:")) == 2
    assert _attendance(session, m.id, bureau["member"].id)[0].reason == "家中有事"


def test_leave_by_card_button(session, bureau, chat, clock):
    m = add_meeting(session, bureau["b1"], "支委会", shanghai(2026, 11, 26, 9, 0), now=clock.now())
    reply = chat.click(bureau["committee"], f"请假 {m.id}")
    assert reply.text.startswith("已为您请假：支委会")
    assert reply.extras["card_update"] == {"replace_name": "已请假"}


def test_leave_after_signing_in_or_after_the_end_is_refused(session, bureau, chat, clock):
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    chat(bureau["member"], "签到")
    assert chat(bureau["member"], "请假 临时有事") == "您已签到支部党员大会，无需请假。"
    assert outbox(session, "leave:") == []
    clock.set(shanghai(2026, 11, 25, 13, 0))
    assert "已结束，无法请假" in chat(bureau["member2"], f"请假 {m.id}")
    assert chat(bureau["member2"], "请假") == messages.LEAVE_NONE


def test_the_secretary_asking_leave_tells_the_other_secretaries_only(session, bureau, chat, clock):
    from tests.factories import member

    deputy = member(session, bureau["b1"], "副书记甲", userid="fushuji", duties="副书记")
    session.commit()
    add_meeting(session, bureau["b1"], "支委会", shanghai(2026, 11, 27, 9, 0), now=clock.now())
    chat(bureau["secretary"], "请假 参加党校培训")
    assert recipients(outbox(session, "leave:")) == {deputy.userid}


def test_leave_message_at_night_waits_for_the_send_window(session, bureau, chat, clock):
    add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 30, 14, 30), now=clock.now()
    )
    clock.set(shanghai(2026, 11, 27, 21, 15))  # Friday night
    chat(bureau["member"], "请假 出差")
    due = outbox(session, "leave:")[0].due_at
    local = due.astimezone(shanghai(2026, 1, 1).tzinfo)
    assert local.date().isoformat() == "2026-11-30"  # Monday, the next workday
    assert (local.hour, local.minute) >= (8, 31) and local.minute not in (0, 30)


@pytest.mark.parametrize("command", ["签到", "请假 出差"])
def test_two_taps_at_once_record_one_row(engine, session, bureau, clock, settings, command):
    m = add_meeting(
        session, bureau["b1"], "支部党员大会", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    replies: list[str] = []
    barrier = threading.Barrier(2)

    def tap() -> None:
        chat = Chat(engine, clock, settings)
        barrier.wait()
        replies.append(chat(bureau["member"], command))

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh(session)
    n = session.scalar(
        select(func.count())
        .select_from(Attendance)
        .where(col(Attendance.meeting_id) == m.id, col(Attendance.member_id) == bureau["member"].id)
    )
    assert n == 1
    assert messages.INTERNAL_ERROR not in replies, replies
    assert len(outbox(session, "leave:")) <= 1


def test_sign_in_picks_the_meeting_nearest_now_when_two_are_open(session, bureau, chat, clock):
    add_meeting(
        session,
        bureau["b1"],
        "主题党日",
        shanghai(2026, 11, 25, 8, 30),
        minutes=120,
        now=clock.now(),
    )
    later = add_meeting(
        session, bureau["b1"], "党课", shanghai(2026, 11, 25, 10, 30), now=clock.now()
    )
    clock.set(shanghai(2026, 11, 25, 10, 25))
    assert chat(bureau["member"], "签到").startswith("已签到：党课")
    assert _attendance(session, later.id, bureau["member"].id)[0].status == "signed_in"
