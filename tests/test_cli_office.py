"""`mofan notify` and `mofan status`: the same code and figures as the chat's 通知, 状态 and 总览."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.cli_office  # noqa: F401  (registers the commands)
from bot.models import Notice, OutboxMessage
from tests.chatkit import fresh, mofan
from tests.factories import small_bureau


@pytest.fixture
def cfg(tmp_path: Path, db_url: str, session) -> Path:
    small_bureau(session)
    path = tmp_path / "mofan.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def test_notify_broadcasts_like_the_chat_command(cfg, session):
    result = mofan(
        cfg,
        "notify",
        "--to",
        "第一党支部、书记",
        "请于周五前报送学习计划",
        "--deadline",
        "2099-12-05",
    )
    assert result.exit_code == 0, result.output
    fresh(session)
    notice = session.scalars(select(Notice)).one()
    assert notice.text == "请于周五前报送学习计划" and notice.sender_id is None
    assert f"已发出通知{notice.id}，共5人" in result.output
    rows = list(session.scalars(select(OutboxMessage)))
    assert {r.recipient for r in rows} == {
        "wangshuji",
        "liweiyuan",
        "zhangsan",
        "zhaosi",
        "sunshuji",
    }
    assert rows[0].body["template_card"]["button_list"][0]["key"] == f"收到 {notice.id}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "第九支部", "开会"], "找不到范围「第九支部」"),
        (["--to", "全体", "开会", "--deadline", "13月40日"], "日期看不懂：13月40日"),
    ],
)
def test_notify_refuses_bad_input_and_sends_nothing(cfg, session, args, message):
    result = mofan(cfg, "notify", *args)
    assert result.exit_code == 1 and message in result.output
    fresh(session)
    assert session.scalars(select(OutboxMessage)).first() is None


def test_status_of_a_branch_and_the_bureau(cfg):
    one = mofan(cfg, "status", "--branch", "第一党支部")
    assert one.exit_code == 0, one.output
    assert one.output.startswith("第一党支部 · ") and "三会一课与组织生活" in one.output
    assert "学时" not in one.output
    every = mofan(cfg, "status")
    assert every.exit_code == 0 and every.output.startswith("总览 · ")
    assert "▸ 第一党支部" in every.output and "▸ 第二党支部" in every.output
    assert mofan(cfg, "status", "--branch", "第九支部").exit_code == 1


def test_status_json_is_one_object_per_branch(cfg):
    result = mofan(cfg, "status", "--json")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert {d["branch"] for d in lines} == {"第一党支部", "第二党支部"}
    part_keys = {p["key"] for p in lines[0]["parts"]}
    assert part_keys == {"cadence", "attendance", "dues", "tasks"}
    one = json.loads(mofan(cfg, "status", "--branch", "第一党支部", "--json").output)
    assert one["branch"] == "第一党支部" and one["study"] is None
    assert {c["kind"] for c in one["cadence"]} >= {"支委会", "党课"}
