"""状态 / 总览 / 我的 / 考勤 / 未学习: who may see what, and what each shows."""

from __future__ import annotations

import pytest

from bot import messages
from bot.models import DuesRecord, StudyRecord
from tests.chatkit import add_meeting, shanghai

SECRETARY_ONLY = messages.FORBIDDEN.format(command="未学习", who="支部书记、支委")


def test_secretary_status_is_own_branch_with_study(session, bureau, chat):
    reply = chat(bureau["secretary"], "状态")
    assert reply.startswith("第一党支部 · 11月25日（周三）")
    assert "学时：全支部今年 0/176" in reply  # 2 × 32 + 2 × 56
    assert chat(bureau["committee"], "支部状态") == reply
    assert chat(bureau["secretary"], "状态 第一党支部") == reply


def test_secretary_may_not_look_at_another_branch(session, bureau, chat):
    assert chat(bureau["secretary"], "状态 第二党支部") == messages.STATUS_OTHER_BRANCH.format(
        branch="第一党支部"
    )
    assert chat(bureau["secretary"], "状态 第九支部") == messages.STATUS_NO_BRANCH.format(
        name="第九支部"
    )


@pytest.mark.parametrize("who", ["office", "leader"])
def test_office_and_leaders_see_any_branch_without_study(session, bureau, chat, who):
    reply = chat(bureau[who], "状态 第一党支部")
    assert reply.startswith("第一党支部 · ")
    assert "学时" not in reply
    assert chat(bureau[who], "状态").startswith("总览 · ")


def test_member_may_not_ask_branch_status(session, bureau, chat):
    assert chat(bureau["member"], "状态") == "「状态」仅限支部书记、支委、党委办、党委委员使用。"


@pytest.mark.parametrize("who", ["office", "leader"])
def test_overview_for_office_and_leaders(session, bureau, chat, clock, who):
    add_meeting(session, bureau["b1"], "支委会", shanghai(2026, 11, 3, 9), now=clock.now())
    add_meeting(
        session,
        bureau["b1"],
        "党小组会",
        shanghai(2026, 11, 4, 9),
        group=bureau["g1"],
        now=clock.now(),
    )
    reply = chat(bureau[who], "总览")
    lines = reply.splitlines()
    assert lines[0] == "总览 · 11月25日（周三） · 共2个支部"
    assert "不是排名" in lines[1] and "不针对个人" in lines[1]
    # 第二党支部 owes more this period (no 支委会), so it comes first: a to-do list, not a table.
    branches = [ln for ln in lines if ln.startswith("▸ ")]
    assert branches[0].startswith("▸ 第二党支部") and branches[1].startswith("▸ 第一党支部")
    assert "会议" in branches[0] and "（" in branches[0]
    for name in ("张三", "赵四", "王书记"):
        assert name not in reply


@pytest.mark.parametrize("who", ["member", "secretary", "committee"])
def test_overview_is_refused_to_members_and_secretaries(session, bureau, chat, who):
    assert chat(bureau[who], "总览") == messages.FORBIDDEN.format(
        command="总览", who="党委办、党委委员"
    )


def test_overview_shows_confirmations_coming_in(session, bureau, chat):
    chat(bureau["office"], "通知 全体 开会")
    assert "已确认 0/8" in chat(bureau["office"], "总览")
    chat(bureau["member"], "收到")
    chat(bureau["other"], "收到")
    reply = chat(bureau["office"], "总览")
    assert "通知1「开会」：已确认 2/8" in reply
    assert "；通知1已确认 1/4" in reply


def test_mine_shows_own_record_only(session, bureau, chat, clock):
    now = clock.now()
    session.add(StudyRecord(member_id=bureau["member"].id, minutes=90, topic="党章", at=now))
    session.add(StudyRecord(member_id=bureau["member2"].id, minutes=600, topic="", at=now))
    session.add(DuesRecord(member_id=bureau["member"].id, month="2026-10", paid_at=now))
    session.commit()
    past = add_meeting(
        session,
        bureau["b1"],
        "支部党员大会",
        shanghai(2026, 11, 2, 14, 30),
        now=shanghai(2026, 11, 1),
    )
    add_meeting(session, bureau["b1"], "主题党日", shanghai(2026, 12, 15, 9), now=now)
    chat(bureau["office"], "通知 第一党支部 开会")
    chat(bureau["secretary"], f"补学 张三 {past.id}")
    reply = chat(bureau["member"], "我的")
    lines = reply.splitlines()
    assert lines[0] == "张三（第一党支部）· 11月25日（周三）"
    assert lines[1].startswith("学时：今年 1.5/32 ")
    assert "仅您本人和支部书记可见" in lines[1]
    assert lines[2] == "会议：今年应参加 1 次，签到 0，请假 0，补学 1，未到 0"
    assert lines[3].startswith("党费：今年已交 10月；未交 1月、2月")
    assert lines[4] == "待确认通知：1「开会」（回复「收到 编号」确认）"
    assert "主题党日 12月15日（周二）9:00" in reply
    assert "10" not in lines[1].split("/")[0]  # 赵四's 10 hours are not shown


def test_attendance_lists_signed_leave_and_absent(session, bureau, chat, clock):
    m = add_meeting(
        session,
        bureau["b1"],
        "支部党员大会",
        shanghai(2026, 11, 25, 10, 0),
        now=shanghai(2026, 11, 20),
    )
    chat(bureau["member"], "签到")
    chat(bureau["secretary"], "签到")
    chat(bureau["member2"], f"请假 {m.id} 出差")
    during = chat(bureau["secretary"], "考勤")
    assert during.splitlines() == [
        f"支部党员大会 11月25日（周三）10:00–12:00（编号{m.id}）：应到 4 人",
        "签到 2：王书记、张三",
        "请假 1：赵四（出差）",
        "未签到 1：李委员",
    ]
    clock.set(shanghai(2026, 11, 25, 12, 30))
    after = chat(bureau["secretary"], f"考勤 {m.id}")
    assert "未到 1：李委员" in after and f"补学 姓名 {m.id}" in after
    assert chat(bureau["secretary"], "考勤 支部党员大会") == after
    assert chat(bureau["secretary"], "考勤 11月25日") == after
    assert chat(bureau["secretary"], "考勤 党课") == messages.ATTENDANCE_NO_MATCH.format(
        text="党课"
    )
    assert "日期看不懂：13月40日" in chat(bureau["secretary"], "考勤 13月40日")


def test_attendance_of_another_branch(session, bureau, chat, clock):
    m = add_meeting(
        session,
        bureau["b2"],
        "支部党员大会",
        shanghai(2026, 11, 25, 9, 0),
        now=shanghai(2026, 11, 20),
    )
    assert chat(bureau["secretary"], f"考勤 {m.id}") == messages.MEETING_OTHER_BRANCH.format(
        id=m.id, branch="第一党支部"
    )
    # The office and leaders see every branch.
    assert chat(bureau["office"], f"考勤 {m.id}").startswith("支部党员大会")
    assert chat(bureau["leader"], f"考勤 {m.id}").startswith("支部党员大会")
    assert chat(bureau["member"], f"考勤 {m.id}").startswith("「考勤」仅限")


def test_attendance_without_meetings(session, bureau, chat):
    assert chat(bureau["secretary"], "考勤") == messages.ATTENDANCE_NO_MEETING


def test_behind_lists_names_in_roster_order_privately(session, bureau, chat, clock):
    now = clock.now()
    session.add(StudyRecord(member_id=bureau["member"].id, minutes=40 * 60, topic="", at=now))
    session.add(StudyRecord(member_id=bureau["committee"].id, minutes=60, topic="", at=now))
    session.commit()
    reply = chat(bureau["secretary"], "未学习")
    lines = reply.splitlines()
    assert lines[0] == "今年已过 90%，按进度应达：党员 28.8 学时、支委 50.5 学时。"
    assert lines[1:4] == ["· 王书记 0/56", "· 李委员 1/56", "· 赵四 0/32"]
    assert "请勿公开通报或排名" in lines[-1]
    assert "张三" not in reply


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_behind_is_the_secretarys_alone(session, bureau, chat, who):
    assert chat(bureau[who], "未学习") == SECRETARY_ONLY


def test_overview_scores_are_daily_while_what_is_owed_is_live(session, bureau, chat, clock):
    first = chat(bureau["office"], "总览")
    assert "分数按截至11月24日的记录每日计算" in first
    b1_line = next(ln for ln in first.splitlines() if ln.startswith("▸ 第一党支部"))
    # A 支委会 that started a minute ago: this period's debt drops at once...
    add_meeting(session, bureau["b1"], "支委会", shanghai(2026, 11, 25, 10, 6), now=clock.now())
    second = chat(bureau["office"], "总览")
    owes = second.split("▸ 第一党支部")[1].split("▸")[0]
    assert "支委会1次" not in owes and "支委会1次" in first.split("▸ 第一党支部")[1].split("▸")[0]
    # ...while the score (taken at the start of the day) stays as it was until tomorrow.
    assert next(ln for ln in second.splitlines() if ln.startswith("▸ 第一党支部")) == b1_line
    clock.set(shanghai(2026, 11, 26, 9, 0))
    third = chat(bureau["office"], "总览")
    assert "截至11月25日" in third
    assert next(ln for ln in third.splitlines() if ln.startswith("▸ 第一党支部")) != b1_line


def test_overview_shows_an_overdue_task_at_once_and_drops_it_when_done(
    session, bureau, chat, clock
):
    from datetime import date

    from bot.store import create_tasks

    def b1_owes() -> str:
        return chat(bureau["office"], "总览").split("▸ 第一党支部")[1].split("▸")[0]

    assert "逾期任务" not in b1_owes()  # the cards are now cached for this engine
    [task] = create_tasks(
        session=session,
        name="报送整改清单",
        due_on=date(2026, 11, 20),
        branch_ids=[bureau["b1"].id],
        created_by=bureau["office"],
        now=clock.now(),
    )
    session.commit()
    assert "逾期任务1项" in b1_owes()
    task.done_at = clock.now()
    session.add(task)
    session.commit()
    assert "逾期任务" not in b1_owes()


def test_the_overview_computes_the_years_scorecards_once_a_day(bureau, chat, monkeypatch):
    """总览's year-to-date snapshot is kept per database for the day (about a second in a
    large bureau): each message has its own session and connection, and the second 总览 of
    the day reads the snapshot instead of the whole year again."""
    import bot.status

    runs = []
    real = bot.status.scorecards

    def counted(**kw):
        runs.append(kw["now"])
        return real(**kw)

    monkeypatch.setattr(bot.status, "scorecards", counted)
    first = chat(bureau["office"], "总览")
    assert chat(bureau["office"], "总览") == first
    assert chat(bureau["leader"], "总览") == first
    assert len(runs) == 1
