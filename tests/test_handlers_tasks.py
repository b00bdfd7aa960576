"""任务 / 进度: one task per branch in scope, secretaries told, progress and completion in scope."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot import messages
from bot.models import Task, TaskProgress
from tests.chatkit import fresh, outbox, recipients, shanghai


def _tasks(session):
    fresh(session)
    return list(session.scalars(select(Task).order_by(col(Task.branch_id))))


def test_office_creates_a_task_for_every_branch(session, bureau, chat):
    reply = chat(bureau["office"], "任务 报送整改清单 12月20日")
    tasks = _tasks(session)
    assert [(t.name, t.branch_id, t.due_on) for t in tasks] == [
        ("报送整改清单", bureau["b1"].id, date(2026, 12, 20)),
        ("报送整改清单", bureau["b2"].id, date(2026, 12, 20)),
    ]
    assert reply.startswith("已为2个支部建立任务「报送整改清单」，12月20日（周日）截止。")
    rows = outbox(session, "task:")
    assert recipients(rows) == {"wangshuji", "sunshuji"}
    assert "完成后发「进度 报送整改清单 说明 完成」" in rows[0].body["text"]


def test_task_for_named_branches_and_twice_is_once(session, bureau, chat):
    chat(bureau["office"], "任务 年度述职 报告 2027年1月15日 第二党支部")
    assert [(t.name, t.branch_id) for t in _tasks(session)] == [("年度述职 报告", bureau["b2"].id)]
    reply = chat(bureau["office"], "任务 年度述职 报告 2027年1月15日 全体")
    assert "其中1个支部已有同名同日的任务" in reply
    assert len(_tasks(session)) == 2
    assert len(outbox(session, "task:")) == 2  # 孙书记 once, 王书记 once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("任务 报送整改清单", "缺少截止日期"),
        ("任务 12月20日", "请写任务名称"),
        ("任务 报送整改清单 11月20日", "截止日期11月20日已过"),
        ("任务 报送整改清单 12月20日 第九支部", "找不到范围「第九支部」"),
        ("任务 报送整改清单 13月40日", "日期看不懂：13月40日"),
    ],
)
def test_bad_tasks_change_nothing(session, bureau, chat, text, expected):
    assert expected in chat(bureau["office"], text)
    assert _tasks(session) == [] and outbox(session) == []


@pytest.mark.parametrize("who", ["member", "secretary", "leader"])
def test_only_the_office_creates_tasks(session, bureau, chat, who):
    assert chat(bureau[who], "任务 报送 12月20日") == messages.FORBIDDEN.format(
        command="任务", who="党委办"
    )


def test_progress_and_completion(session, bureau, chat, clock):
    chat(bureau["office"], "任务 报送整改清单 12月20日")
    assert (
        chat(bureau["secretary"], "进度 报送整改清单 已完成初稿")
        == "已记录任务「报送整改清单」的进展。"
    )
    assert (
        chat(bureau["committee"], "进度 整改 已报送 完成")
        == "已记录任务「报送整改清单」的进展，并标记为完成。"
    )
    t1, t2 = _tasks(session)
    assert t1.done_at == clock.now() and t2.done_at is None
    notes = list(session.scalars(select(TaskProgress.note).order_by(col(TaskProgress.id))))
    assert notes == ["已完成初稿", "已报送 完成"]
    clock.set(shanghai(2026, 12, 1, 9))
    assert "已于11月25日（周三）10:07完成" in chat(
        bureau["secretary"], "进度 报送整改清单 回头看：已整改到位"
    )


def test_progress_mistakes(session, bureau, chat):
    assert (
        chat(bureau["secretary"], "进度 报送 写好了")
        == "本支部没有任务「报送」。本支部目前没有未完成的任务。"
    )
    chat(bureau["office"], "任务 报送整改清单 12月20日")
    chat(bureau["office"], "任务 报送总结 12月25日")
    assert "对应多个任务" in chat(bureau["secretary"], "进度 报送 写好了")
    assert "请写明进展" in chat(bureau["secretary"], "进度 报送总结")
    assert chat(bureau["secretary"], "进度") == messages.USAGE.format(usage=messages.PROGRESS_USAGE)


def test_progress_on_another_branchs_task_is_not_found(session, bureau, chat):
    chat(bureau["office"], "任务 专项检查 12月20日 第二党支部")
    assert "本支部没有任务「专项检查」" in chat(bureau["secretary"], "进度 专项检查 已完成 完成")
    assert _tasks(session)[0].done_at is None


@pytest.mark.parametrize("who", ["member", "office", "leader"])
def test_progress_is_the_secretarys(session, bureau, chat, who):
    assert chat(bureau[who], "进度 报送 完成") == messages.FORBIDDEN.format(
        command="进度", who="支部书记、支委"
    )
