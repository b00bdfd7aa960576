"""handlers/ledger.py: 导出 台账 [年份] — the office and leaders get every branch, a secretary
their own, a member is refused; the file goes out through the outbox as a file body."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest

from bot import messages as msg
from bot.router import Inbound
from bot.store import record_study, schedule_meeting
from handlers.ledger import parse_year
from tests.chatkit import Chat, outbox, shanghai
from tests.factories import small_bureau


@pytest.fixture
def bureau(session, settings, clock, tmp_path):
    settings.ledger.export_dir = str(tmp_path / "exports")
    p = small_bureau(session)
    now = clock.now()
    for branch in (p["b1"], p["b2"]):
        schedule_meeting(
            session=session, branch_id=branch.id, kind="支委会", group_id=None,
            starts_at=shanghai(2026, 3, 10, 14), ends_at=shanghai(2026, 3, 10, 16), place="",
            topic="", created_by=None, now=now,
        )  # fmt: skip
    record_study(session=session, member=p["member"], minutes=90, topic="党章", at=now)
    session.commit()
    return p


def the_file(session, who) -> tuple[Path, dict]:
    (row,) = outbox(session, "ledger:")
    assert row.recipient == who.userid and row.rule == "ledger"
    assert row.body["msgtype"] == "file"
    path = Path(row.body["path"])
    assert path.is_absolute() and path.exists()
    return path, row.body


def branches_in(path: Path) -> list[str]:
    ws = openpyxl.load_workbook(path)["汇总"]
    return [r[0] for r in ws.iter_rows(min_row=3, values_only=True) if r[0] != "合计"]


def test_office_exports_every_branch_as_a_file(session, chat, bureau, tmp_path):
    office = bureau["office"]
    reply = chat(office, "导出 台账")
    assert reply.startswith("已生成2026年台账（全部支部：2个支部，2次会议）")
    path, body = the_file(session, office)
    assert path.parent == tmp_path / "exports" and path.name.startswith("2026年台账-全部支部-")
    assert body["text"] == f"2026年台账（全部支部）：{path.name}"
    assert branches_in(path) == ["第一党支部", "第二党支部"]
    # The office's copy shows 学时 only as branch aggregates, with no one's name.
    study = openpyxl.load_workbook(path)["学习台账"]
    names = {v for row in study.iter_rows(values_only=True) for v in row}
    assert "张三" not in names and "第一党支部" in names


def test_the_console_reply_names_the_file(chat, session, bureau):
    inbound = Inbound(userid="zhouban", text="导出台账 2026年", channel="console")
    reply = asyncio.run(chat.router.handle(inbound))
    path, _ = the_file(session, bureau["office"])
    assert msg.LEDGER_DONE_PATH.format(path=path) in reply.text.splitlines()


def test_a_leader_may_export_too(session, chat, bureau):
    chat(bureau["leader"], "导出 台账")
    path, _ = the_file(session, bureau["leader"])
    assert branches_in(path) == ["第一党支部", "第二党支部"]


def test_a_secretary_gets_their_own_branch_with_the_study_register(session, chat, bureau):
    secretary = bureau["secretary"]
    reply = chat(secretary, "导出 台账")
    assert "第一党支部：1个支部" in reply
    path, _ = the_file(session, secretary)
    assert "第一党支部" in path.name
    assert branches_in(path) == ["第一党支部"]
    study = openpyxl.load_workbook(path)["学习台账"]
    zhang = next(r for r in study.iter_rows(values_only=True) if r[0] == "张三")
    assert zhang[3] == 1.5


def test_a_member_is_refused_and_nothing_is_written(session, chat, bureau, tmp_path):
    reply = chat(bureau["member"], "导出 台账")
    assert reply == msg.FORBIDDEN.format(command="导出台账", who="支部书记、支委、党委办、党委委员")
    assert outbox(session, "ledger:") == []
    assert not (tmp_path / "exports").exists()


def test_a_past_year_and_bad_years(session, chat, bureau, clock):
    office = bureau["office"]
    assert chat(office, "导出 台账 2027") == msg.LEDGER_FUTURE_YEAR.format(year=2027)
    assert chat(office, "导出 台账 明年吧") == msg.LEDGER_BAD_YEAR.format(token="明年吧")
    assert outbox(session, "ledger:") == []
    reply = chat(office, "导出 台账 去年")
    assert reply.startswith("已生成2025年台账（全部支部：2个支部，0次会议）")
    path, _ = the_file(session, office)
    assert path.name.startswith("2025年台账-")


def test_old_exports_are_removed(session, chat, bureau, clock, tmp_path):
    office = bureau["office"]
    chat(office, "导出 台账")
    first, _ = the_file(session, office)
    clock.advance(timedelta(days=31))
    chat(office, "导出 台账")
    assert not first.exists()
    assert len(os.listdir(tmp_path / "exports")) == 1


def test_parse_year():
    assert parse_year("", 2026) == 2026
    assert parse_year("2024", 2026) == 2024
    assert parse_year("2024年", 2026) == 2024
    assert parse_year("2024年度", 2026) == 2024
    assert parse_year("去年", 2026) == 2025
    assert parse_year("今年", 2026) == 2026
    assert parse_year("前年", 2026) == 2024
    assert parse_year("24", 2026) is None
    assert parse_year("明年吧", 2026) is None


def test_a_file_that_cannot_be_written_is_said_plainly(session, chat, bureau, settings, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    settings.ledger.export_dir = str(blocker / "exports")
    reply = chat(bureau["office"], "导出 台账")
    assert reply.startswith("台账文件没能写出（") and "ledger.export_dir" in reply
    assert outbox(session, "ledger:") == []


def test_overview_shows_a_rank_only_when_ranking_is_on(chat, bureau, settings):
    office = bureau["office"]
    reply = chat(office, "总览")
    assert not re.search(r"第\d+名", reply)
    assert reply.splitlines()[-1] == msg.OVERVIEW_LEDGER_HINT
    settings.score.ranking = True
    ranked = Chat(chat.router.engine, chat.clock, settings)(office, "总览")
    assert "分 第1名" in ranked
