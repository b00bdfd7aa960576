"""意见 / 办实事 / 报告 / 已阅: passed to the office privately; the secretary told of the reading."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import messages
from bot.models import Deed, Feedback
from tests.chatkit import body_text, fresh, outbox, recipients, shanghai
from tests.factories import member


@pytest.mark.parametrize("who", ["member", "secretary", "office", "leader", "other"])
def test_anyone_may_send_a_suggestion_to_the_office(session, bureau, chat, who):
    reply = chat(bureau[who], "意见 周末请不要发提醒")
    fresh(session)
    row = session.scalars(select(Feedback)).one()
    assert reply == messages.FEEDBACK_DONE.format(id=row.id)
    assert (row.kind, row.text, row.member_id) == ("意见", "周末请不要发提醒", bureau[who].id)
    rows = outbox(session, "feedback:")
    assert recipients(rows) == {"zhouban"}
    assert body_text(rows[0]).endswith("：周末请不要发提醒")


def test_empty_suggestion_shows_the_form(session, bureau, chat):
    assert chat(bureau["member"], "意见") == messages.FEEDBACK_EMPTY
    assert outbox(session) == []


def test_suggestion_at_night_reaches_the_office_in_the_window(session, bureau, chat, clock):
    clock.set(shanghai(2026, 11, 25, 23, 0))
    assert chat(bureau["member"], "意见 太多提醒").startswith("已转给党委办")
    assert outbox(session, "feedback:")[0].due_at > shanghai(2026, 11, 26, 8, 30)


@pytest.mark.parametrize("who", ["member", "secretary", "office"])
def test_deeds_go_to_the_senders_branch_ledger(session, bureau, chat, who):
    reply = chat(bureau[who], "办实事 帮社区老人代办医保续缴")
    fresh(session)
    deed = session.scalars(select(Deed)).one()
    assert deed.branch_id == bureau[who].branch_id
    assert reply.startswith("已记入") and "「我为群众办实事」台账" in reply
    assert chat(bureau[who], "办实事") == messages.DEED_EMPTY


def test_report_is_acknowledged_by_the_office_and_the_secretary_told(session, bureau, chat):
    reply = chat(bureau["secretary"], "报告 拟于12月召开支部党员大会进行换届选举")
    fresh(session)
    report = session.scalars(select(Feedback)).one()
    assert reply == messages.REPORT_DONE.format(id=report.id)
    card = outbox(session, "report:")[0]
    assert card.recipient == "zhouban"
    assert card.body["template_card"]["button_list"][0]["key"] == f"已阅 {report.id}"
    ack = chat.click(bureau["office"], f"已阅 {report.id}")
    assert ack.text == f"已告知王书记：报告{report.id}已阅。"
    assert ack.extras["card_update"] == {"replace_name": "已阅"}
    told = outbox(session, f"report:{report.id}:ack:")
    assert recipients(told) == {"wangshuji"} and "党委办已阅" in body_text(told[0])
    again = chat(bureau["office"], f"已阅 {report.id}")
    assert again.startswith(f"报告{report.id}已于11月25日（周三）10:07阅过")
    assert len(outbox(session, f"report:{report.id}:ack:")) == 1


def test_ack_mistakes(session, bureau, chat):
    chat(bureau["member"], "意见 建议")
    fresh(session)
    suggestion = session.scalars(select(Feedback)).one()
    assert chat(bureau["office"], f"已阅 {suggestion.id}").startswith("没有报告")  # not a 报告
    assert chat(bureau["office"], "已阅 99").startswith("没有报告99")


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_reports_are_for_secretaries(session, bureau, chat, who):
    assert chat(bureau[who], "报告 某事") == messages.FORBIDDEN.format(
        command="报告", who="支部书记、支委"
    )


@pytest.mark.parametrize("who", ["member", "secretary", "leader"])
def test_only_the_office_acknowledges(session, bureau, chat, who):
    assert chat(bureau[who], "已阅 1") == messages.FORBIDDEN.format(command="已阅", who="党委办")


def test_suggestion_with_no_office_on_the_roster_is_still_recorded(session, chat):
    from tests.factories import org

    b = org(session, "孤立支部")
    lone = member(session, b, "某人", userid="lone")
    session.commit()
    assert chat(lone, "意见 测试").startswith("已转给党委办")
    assert outbox(session) == []
