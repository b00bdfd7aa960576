"""`mofan export ledger --year Y [--branch NAME] -o FILE.xlsx`, and the explained scores in
`mofan status --json`."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

import bot.cli_ledger  # noqa: F401  (registers the commands)
import bot.cli_office  # noqa: F401
from tests.chatkit import mofan
from tests.factories import small_bureau


@pytest.fixture
def cfg(tmp_path: Path, db_url: str, session) -> Path:
    small_bureau(session)
    path = tmp_path / "mofan.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def test_export_every_branch(cfg, tmp_path):
    out = tmp_path / "台账.xlsx"
    result = mofan(cfg, "export", "ledger", "--year", "2025", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out.resolve()}: 2025 (whole year), 2 branches" in result.output
    assert "  会议台账: 0 rows" in result.output
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames[:2] == ["汇总", "合规自查"]
    summary = [r[0] for r in wb["汇总"].iter_rows(min_row=3, values_only=True)]
    assert summary == ["第一党支部", "第二党支部", "合计"]
    # The operator's copy lists 学时 per member.
    assert any(r[0] == "张三" for r in wb["学习台账"].iter_rows(values_only=True))


def test_export_one_branch(cfg, tmp_path):
    out = tmp_path / "one.xlsx"
    result = mofan(cfg, "export", "ledger", "--year", "2025", "--branch", "第二", "-o", str(out))
    assert result.exit_code == 0, result.output
    summary = [
        r[0] for r in openpyxl.load_workbook(out)["汇总"].iter_rows(min_row=3, values_only=True)
    ]
    assert summary == ["第二党支部", "合计"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "2025", "--branch", "党支部"], "give its full name"),
        (["--year", "2025", "--branch", "第九"], "no branch called"),
        (["--year", "2099"], "cannot export 2099"),
    ],
)
def test_export_refuses_and_writes_nothing(cfg, tmp_path, args, message):
    out = tmp_path / "x.xlsx"
    result = mofan(cfg, "export", "ledger", *args, "-o", str(out))
    assert result.exit_code == 1 and message in result.output
    assert not out.exists()


def test_export_wants_an_xlsx_name(cfg, tmp_path):
    result = mofan(cfg, "export", "ledger", "--year", "2025", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and ".xlsx" in result.output


def test_status_json_explains_every_part(cfg):
    result = mofan(cfg, "status", "--json")
    assert result.exit_code == 0, result.output
    for line in result.output.splitlines():
        data = json.loads(line)
        assert "rank" not in data  # ranking is off by default
        for part in data["parts"]:
            assert part["label"] and part["counted"] and part["owed"]
