"""``mofan serve --workers N``: PostgreSQL only; N processes, one scheduler leading, metrics
added up across workers (prometheus-client multiprocess mode)."""

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
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from bot.db import make_engine
from bot.leader import LOCK_KEY

runner = CliRunner()


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "mofan.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def test_workers_on_sqlite_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n', encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "serve", "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers 2 needs PostgreSQL" in result.output
    assert "postgresql+psycopg://" in result.output
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


def test_zero_workers_is_refused(cfg):
    result = runner.invoke(app, ["--config", str(cfg), "serve", "--workers", "0"])
    assert result.exit_code == 1 and "at least 1" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(pid: int) -> set[int]:
    """uvicorn's worker processes (multiprocessing's resource tracker is a child too)."""
    out = subprocess.run(
        # -ww: never cut the command line (a long venv path pushed "spawn_main" past 80 columns)
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line}


def test_workers_share_one_scheduler_and_add_up_their_metrics(cfg, db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("--workers needs PostgreSQL (MOFAN_TEST_DATABASE_URL)")
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"stale")  # from a previous run
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "--config",
            str(cfg),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: two workers each import the whole bot, on a CI machine that may be busy.
        deadline = time.monotonic() + 90
        states: dict[str, int] = {}
        holder = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(base + "/readyz", timeout=2)
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.2)
                continue
            body = r.json()
            if body["leader"]["known"]:
                holder = body["leader"]["holder"]
                states[body["scheduler"]] = states.get(body["scheduler"], 0) + 1
                if sum(states.values()) >= 20:
                    break
            time.sleep(0.05)
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        assert holder is not None and int(holder.rsplit(":", 1)[1]) in workers
        # Every worker runs a scheduler; exactly one of them leads.
        assert "leading" in states and set(states) <= {"leading", "standby"}, states
        # Exactly one session holds the scheduler's advisory lock.
        engine = make_engine(db_url)
        with engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 "
                    # Advisory locks are per database: another bot on this server is not ours.
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"hi": (LOCK_KEY >> 32) & 0xFFFFFFFF, "lo": LOCK_KEY & 0xFFFFFFFF},
            ).scalar_one()
        engine.dispose()
        assert held == 1
        metrics = httpx.get(base + "/metrics", timeout=5)
        assert metrics.status_code == 200 and "mofan_outbox_depth" in metrics.text
        # Multiprocess mode: each worker writes its own files; the stale one was cleared.
        files = {p.name for p in metrics_dir.glob("*.db")}
        assert "counter_99999.db" not in files
        assert {int(n.rsplit("_", 1)[1].removesuffix(".db")) for n in files} <= workers
        assert files
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode in (0, -signal.SIGTERM), out.decode()
