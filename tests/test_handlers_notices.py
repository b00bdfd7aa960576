"""收到 / 通知 / 未确认 / 催办: broadcast scopes, cards, private confirmation, the nudge cap, races."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot import messages
from bot.models import Notice, NoticeReceipt
from tests.chatkit import Chat, body_text, fresh, outbox, recipients, shanghai


def _receipts(session, notice_id):
    fresh(session)
    stmt = select(NoticeReceipt).where(col(NoticeReceipt.notice_id) == notice_id)
    return {r.member_id: r for r in session.scalars(stmt)}


def _notice_id(session) -> int:
    fresh(session)
    return session.scalar(select(func.max(Notice.id)))


B1_PEOPLE = {"wangshuji", "liweiyuan", "zhangsan", "zhaosi"}
B2_PEOPLE = {"qianwu", "sunshuji", "zhouban", "wuweiyuan"}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("全体", B1_PEOPLE | B2_PEOPLE),
        ("书记", {"wangshuji", "sunshuji"}),
        ("第一党支部", B1_PEOPLE),
        ("第二支部", B2_PEOPLE),  # a loose name is accepted when it names one branch
        ("第一党支部、第二党支部", B1_PEOPLE | B2_PEOPLE),
        ("第一党支部，书记", B1_PEOPLE | {"sunshuji"}),
    ],
)
def test_office_broadcasts_to_a_scope_with_a_confirm_card(session, bureau, chat, scope, expected):
    reply = chat(bureau["office"], f"通知 {scope} 请于周五前报送学习计划")
    nid = _notice_id(session)
    assert reply.startswith(f"已发出通知{nid}，共{len(expected)}人")
    rows = outbox(session, f"notice:{nid}:")
    assert recipients(rows) == expected and len(rows) == len(expected)
    card = rows[0].body
    assert card["msgtype"] == "template_card"
    assert card["template_card"]["button_list"] == [
        {"text": "确认收到", "key": f"收到 {nid}", "style": 1}
    ]
    assert card["template_card"]["sub_title_text"] == "请于周五前报送学习计划"
    assert f"回复「收到 {nid}」确认" in card["text"]
    people = [p for p in bureau.values() if getattr(p, "userid", None) in expected]
    assert set(_receipts(session, nid)) == {p.id for p in people}


def test_notice_with_a_deadline(session, bureau, chat):
    reply = chat(bureau["office"], "通知 全体 报送创建工作推进情况 截止 12月5日 17:00")
    nid = _notice_id(session)
    assert "截止：12月5日（周六）17:00。" in reply
    fresh(session)
    notice = session.get(Notice, nid)
    assert notice.text == "报送创建工作推进情况"
    assert notice.deadline == shanghai(2026, 12, 5, 17, 0)
    card = outbox(session, f"notice:{nid}:")[0].body["template_card"]
    assert card["horizontal_content_list"] == [{"keyname": "截止", "value": "12月5日（周六）17:00"}]
    chat(bureau["office"], "通知 全体 另一件事 截止12月7日")
    assert session.get(Notice, _notice_id(session)).deadline == shanghai(2026, 12, 7, 18, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("通知 第九支部 开会", "找不到范围「第九支部」"),
        ("通知 明天下午开会", "找不到范围「明天下午开会」"),
        ("通知 全体", "通知内容是空的"),
        ("通知", "通知内容是空的"),
        ("通知 全体 开会 截止 13月40日", "日期看不懂：13月40日"),
        ("通知 党支部 开会", "对应多个支部"),
    ],
)
def test_bad_broadcasts_say_what_is_wrong_and_send_nothing(session, bureau, chat, text, expected):
    assert expected in chat(bureau["office"], text)
    assert outbox(session) == []
    fresh(session)
    assert session.scalar(select(func.count()).select_from(Notice)) == 0


def test_long_notice_goes_as_text_then_card(session, bureau, chat):
    long = "请认真学习。" * 30
    chat(bureau["office"], f"通知 第一党支部 {long}")
    nid = _notice_id(session)
    rows = outbox(session, f"notice:{nid}:")
    texts = [r for r in rows if r.key.startswith(f"notice:{nid}:text:")]
    cards = [r for r in rows if not r.key.startswith(f"notice:{nid}:text:")]
    assert len(texts) == len(cards) == 4
    assert long in texts[0].body["text"]
    assert cards[0].body["template_card"]["sub_title_text"] == messages.NOTICE_SEE_ABOVE
    assert "请控制在1000字以内" in chat(bureau["office"], "通知 全体 " + "长" * 1001)


@pytest.mark.parametrize("who", ["member", "secretary", "committee", "leader"])
def test_only_the_office_broadcasts(session, bureau, chat, who):
    reply = chat(bureau[who], "通知 全体 开会")
    assert reply == messages.FORBIDDEN.format(command="通知", who="党委办")
    assert outbox(session) == []


def test_broadcast_at_night_is_delivered_in_the_next_window(session, bureau, chat, clock):
    clock.set(shanghai(2026, 11, 27, 20, 0))  # Friday evening
    reply = chat(bureau["office"], "通知 全体 下周一开会")
    assert "（非工作时间，将于11月30日（周一）8:3" in reply
    due = outbox(session, "notice:")[0].due_at
    assert due > shanghai(2026, 11, 30, 8, 30) and due < shanghai(2026, 11, 30, 8, 40)


def test_confirm_latest_by_word_and_by_number_and_by_card(session, bureau, chat):
    chat(bureau["office"], "通知 第一党支部 第一件事")
    first = _notice_id(session)
    chat(bureau["office"], "通知 第一党支部 第二件事")
    second = _notice_id(session)
    assert chat(bureau["member"], "收到") == f"已确认收到通知{second}「第二件事」。"
    assert chat(bureau["member"], "收到") == f"已确认收到通知{first}「第一件事」。"
    assert chat(bureau["member"], "收到") == messages.CONFIRM_NOTHING
    reply = chat.click(bureau["member2"], f"收到 {first}")
    assert reply.text.startswith(f"已确认收到通知{first}")
    assert reply.extras["card_update"] == {"replace_name": "已确认"}
    again = chat.click(bureau["member2"], f"收到 {first}")
    assert again.text == f"通知{first}您已于11月25日（周三）10:07确认过。"
    assert again.extras["card_update"] == {"replace_name": "已确认"}
    receipts = _receipts(session, first)
    assert receipts[bureau["member"].id].confirmed_at is not None
    assert receipts[bureau["secretary"].id].confirmed_at is None


def test_confirming_someone_elses_notice_is_refused(session, bureau, chat):
    chat(bureau["office"], "通知 第二党支部 第二支部的事")
    nid = _notice_id(session)
    assert chat(bureau["member"], f"收到 {nid}") == messages.CONFIRM_NOT_YOURS.format(id=nid)
    assert chat(bureau["member"], "收到 99") == messages.CONFIRM_NOT_YOURS.format(id=99)
    assert chat(bureau["member"], "收到") == messages.CONFIRM_NOTHING
    assert bureau["member"].id not in _receipts(session, nid)


def test_two_confirmations_at_once_record_one(engine, session, bureau, clock, settings):
    Chat(engine, clock, settings)(bureau["office"], "通知 全体 开会")
    nid = _notice_id(session)
    replies: list[str] = []
    barrier = threading.Barrier(2)

    def tap() -> None:
        chat = Chat(engine, clock, settings)
        barrier.wait()
        replies.append(chat.click(bureau["member"], f"收到 {nid}").text)

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[:5] for r in replies) == sorted(["已确认收到", f"通知{nid}您已"[:5]])
    fresh(session)
    n = session.scalar(
        select(func.count())
        .select_from(NoticeReceipt)
        .where(
            col(NoticeReceipt.notice_id) == nid, col(NoticeReceipt.member_id) == bureau["member"].id
        )
    )
    assert n == 1


def test_secretary_sees_who_has_not_confirmed_in_own_branch_only(session, bureau, chat):
    chat(bureau["office"], "通知 全体 开会")
    nid = _notice_id(session)
    chat(bureau["member"], "收到")
    reply = chat(bureau["secretary"], "未确认")
    assert reply.splitlines()[0] == f"通知{nid}「开会」：第一党支部已确认 1/4。"
    assert "未确认：王书记、李委员、赵四" in reply
    assert "钱五" not in reply  # another branch's member
    assert f"催办 {nid}" in reply


def test_secretary_cannot_see_a_notice_not_sent_to_the_branch(session, bureau, chat):
    chat(bureau["office"], "通知 第二党支部 二支部的事")
    nid = _notice_id(session)
    assert chat(bureau["secretary"], f"未确认 {nid}") == messages.NOTICE_NOT_IN_BRANCH.format(
        id=nid, branch="第一党支部"
    )


def test_office_sees_counts_per_branch_not_names(session, bureau, chat):
    chat(bureau["office"], "通知 全体 开会")
    nid = _notice_id(session)
    chat(bureau["member"], "收到")
    reply = chat(bureau["office"], f"未确认 {nid}")
    assert reply.splitlines() == [
        f"通知{nid}「开会」：已确认 1/8。各支部：",
        "· 第一党支部 1/4",
        "· 第二党支部 0/4",
    ]
    assert chat(bureau["leader"], "未确认") == reply


def test_member_may_not_ask_who_has_not_confirmed(session, bureau, chat):
    assert chat(bureau["member"], "未确认") == messages.FORBIDDEN.format(
        command="未确认", who="支部书记、支委、党委办、党委委员"
    )


def test_nudge_goes_privately_to_the_unconfirmed_and_stops_at_two(session, bureau, chat, clock):
    chat(bureau["office"], "通知 全体 开会")
    nid = _notice_id(session)
    chat(bureau["member"], "收到")
    reply = chat(bureau["secretary"], "催办")
    assert reply == "已私信提醒3人。"
    rows = outbox(session, f"notice:{nid}:nudge1:")
    assert recipients(rows) == {"wangshuji", "liweiyuan", "zhaosi"}
    assert rows[0].body["template_card"]["button_list"][0]["key"] == f"收到 {nid}"
    assert f"回复「收到 {nid}」即可" in body_text(rows[0])
    assert {r.nudges for r in _receipts(session, nid).values() if r.confirmed_at is None} == {0, 1}
    assert chat(bureau["secretary"], f"催办 {nid}") == "已私信提醒3人。"
    assert chat(bureau["secretary"], f"催办 {nid}") == "3人已提醒满2次，不再提醒。"
    assert len(outbox(session, f"notice:{nid}:nudge")) == 6
    # Other branches are untouched.
    assert {r.nudges for m, r in _receipts(session, nid).items() if m == bureau["other"].id} == {0}


def test_nudge_counts_with_the_engines_nudges(session, bureau, chat):
    chat(bureau["office"], "通知 第一党支部 开会")
    nid = _notice_id(session)
    fresh(session)
    receipt = _receipts(session, nid)[bureau["member"].id]
    receipt.nudges = 2  # the engine has already nudged twice
    session.add(receipt)
    session.commit()
    reply = chat(bureau["secretary"], "催办")
    assert "已私信提醒3人" in reply and "1人已提醒满2次，不再提醒" in reply
    assert "zhangsan" not in recipients(outbox(session, f"notice:{nid}:nudge"))


def test_nudge_when_everyone_confirmed(session, bureau, chat):
    chat(bureau["office"], "通知 第一党支部 开会")
    nid = _notice_id(session)
    for k in ("member", "member2", "secretary", "committee"):
        chat(bureau[k], "收到")
    assert chat(bureau["secretary"], "催办") == messages.NUDGE_NONE.format(id=nid)
    assert "本支部已全部确认" in chat(bureau["secretary"], "未确认")


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_nudge_is_the_secretarys_alone(session, bureau, chat, who):
    assert chat(bureau[who], "催办") == messages.FORBIDDEN.format(
        command="催办", who="支部书记、支委"
    )


def test_nudge_at_night_waits_for_the_window(session, bureau, chat, clock):
    chat(bureau["office"], "通知 第一党支部 开会")
    clock.set(shanghai(2026, 11, 25, 22, 0))
    assert "非工作时间，将于11月26日（周四）8:3" in chat(bureau["secretary"], "催办")
