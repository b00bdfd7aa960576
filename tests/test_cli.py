"""The CLI: init, chat (one-shot, names, ambiguity, strangers), and serve's health and shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from bot.db import make_engine
from tests.chatkit import mofan
from tests.factories import member, small_bureau


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "mofan.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def test_init_is_idempotent(cfg):
    first = mofan(cfg, "init")
    assert first.exit_code == 0, first.output
    assert "database ready" in first.output
    assert mofan(cfg, "init").exit_code == 0


def test_chat_before_init_says_what_to_do(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/empty.db"\n', encoding="utf-8")
    result = mofan(path, "chat", "--as", "x", "帮助")
    assert result.exit_code == 1 and "mofan init" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[bot]\nchannel = "fax"\n', encoding="utf-8")
    result = mofan(path, "chat", "--as", "x", "帮助")
    assert result.exit_code == 2 and "bot.channel" in result.output


def _people(db_url: str) -> None:
    engine = make_engine(db_url)
    with Session(engine) as s:
        p = small_bureau(s)
        member(s, p["b2"], "张三", userid="zhangsan2")  # a second 张三 in another branch
        s.commit()
    engine.dispose()


def test_chat_help_by_userid_and_by_unique_name(cfg, db_url):
    _people(db_url)
    by_id = mofan(cfg, "chat", "--as", "wangshuji", "帮助")
    assert by_id.exit_code == 0 and by_id.output.startswith("您好，王书记。")
    by_name = mofan(cfg, "chat", "--as", "王书记", "帮助")
    assert by_name.output == by_id.output


def test_chat_ambiguous_name_lists_candidates(cfg, db_url):
    _people(db_url)
    result = mofan(cfg, "chat", "--as", "张三", "帮助")
    assert result.exit_code == 1
    assert "zhangsan（第一党支部）" in result.output and "zhangsan2（第二党支部）" in result.output


def test_chat_refuses_unknown_user(cfg, db_url):
    _people(db_url)
    result = mofan(cfg, "chat", "--as", "stranger", "帮助")
    assert result.exit_code == 0 and "不在本机关党员名册中" in result.output


def test_chat_interactive_prompt(cfg, db_url):
    _people(db_url)
    result = mofan(cfg, "chat", "--as", "zhangsan", input="帮助\n\n")
    assert "以 zhangsan 的身份对话" in result.output and "您好，张三。" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_and_stops_cleanly_on_sigterm(cfg, db_url):
    assert mofan(cfg, "init").exit_code == 0
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        proc.stdout.read().decode() if proc.stdout else "no output"
                    ) from None
                time.sleep(0.1)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["database"] == "ok" and ready["migrations"] == "head"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "mofan_outbox_depth" in metrics
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.returncode in (0, -signal.SIGTERM)
        assert b"Application shutdown complete" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_serve_refuses_a_database_behind_head(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/old.db"\n', encoding="utf-8")
    from bot.db import upgrade

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "base")
    engine.dispose()
    result = mofan(path, "serve", "--port", "1")
    assert result.exit_code == 1 and "mofan init" in result.output


def test_head_constant_matches_alembic():
    from bot.db import alembic_head, head_revision

    assert head_revision() == alembic_head()
