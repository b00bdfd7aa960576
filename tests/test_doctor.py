"""``mofan doctor``: what it says for a good setup and for the usual first-deployment mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import bot.cli_wecom  # noqa: F401  (registers the commands)
from bot.cli import app
from bot.doctor import explain
from bot.fake_wecom import (
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
)
from tests.fakes import wecom as fakes

fake_wecom = fakes.fake_wecom  # the fixture, used by name

runner = CliRunner()


def config(tmp_path: Path, db_url: str, **wecom: object) -> Path:
    lines = ["[database]", f'url = "{db_url}"']
    if wecom:
        lines += ["[bot]", 'channel = "wecom"', "[wecom]"]
        for key, value in wecom.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
    path = tmp_path / "mofan.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def doctor(path: Path):
    return runner.invoke(app, ["--config", str(path), "doctor"])


def good(fake_url: str, **over: object) -> dict[str, object]:
    values: dict[str, object] = {
        "corp_id": DEFAULT_CORP_ID,
        "agent_id": DEFAULT_AGENT_ID,
        "secret": DEFAULT_SECRET,
        "token": DEFAULT_TOKEN,
        "encoding_aes_key": DEFAULT_AES_KEY,
        "api_base": fake_url,
    }
    values.update(over)
    return values


def test_console_mode_passes_and_says_so(tmp_path, db_url):
    result = doctor(config(tmp_path, db_url))
    assert result.exit_code == 0, result.output
    assert "✓ 数据库" in result.output and "控制台模式" in result.output


def test_an_empty_database_says_to_run_init(tmp_path):
    result = doctor(config(tmp_path, f"sqlite:///{tmp_path}/empty.db"))
    assert result.exit_code == 1 and "mofan init" in result.output


def test_a_good_wecom_setup_passes(tmp_path, db_url, fake_wecom):
    result = doctor(config(tmp_path, db_url, **good(fake_wecom.url)))
    assert result.exit_code == 0, result.output
    assert "access_token 获取成功" in result.output
    assert "模范机关党建助手" in result.output  # the app's name, from agent/get
    assert "/wecom/callback" in result.output


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"secret": "wrong"}, "40001"),
        ({"corp_id": "wwwrong"}, "40013"),
        ({"agent_id": 5}, "40056"),
    ],
)
def test_wrong_credentials_are_explained(tmp_path, db_url, fake_wecom, change, expect):
    result = doctor(config(tmp_path, db_url, **good(fake_wecom.url, **change)))
    assert result.exit_code == 1
    assert f"错误码 {expect}" in result.output


def test_an_untrusted_ip_is_explained_with_the_ip(tmp_path, db_url, fake_wecom):
    fake_wecom.control(trusted=False)
    result = doctor(config(tmp_path, db_url, **good(fake_wecom.url)))
    assert result.exit_code == 1
    assert "企业可信IP" in result.output and "127.0.0.1" in result.output


def test_an_unreachable_api_base_is_explained(tmp_path, db_url):
    result = doctor(config(tmp_path, db_url, **good("http://127.0.0.1:9")))
    assert result.exit_code == 1 and "连不上企业微信接口" in result.output


def test_missing_and_malformed_callback_settings(tmp_path, db_url, fake_wecom):
    result = doctor(config(tmp_path, db_url, **good(fake_wecom.url, secret="", token="a b")))
    assert result.exit_code == 1
    assert "wecom.secret 未填写" in result.output
    assert "3–32 位" in result.output


def test_a_bad_key_is_refused_by_the_config_naming_it(tmp_path, db_url):
    result = doctor(config(tmp_path, db_url, encoding_aes_key="tooshort"))
    assert result.exit_code == 2 and "wecom.encoding_aes_key" in result.output


def test_explain_knows_the_common_codes():
    assert "企业可信IP" in explain(
        60020, "not allow to access from your ip, from ip: 1.2.3.4, more"
    )
    assert "1.2.3.4" in explain(60020, "not allow to access from your ip, from ip: 1.2.3.4, more")
    assert "devtool/query?e=99999" in explain(99999, "x")
