"""``/healthz`` and ``/readyz`` as ops see them, and the request id on every response and log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from bot.app import create_app
from bot.config import ConfigError, Settings, load_settings
from bot.leader import Leader, make_leader
from bot.logs import JsonFormatter, RequestIdFilter
from bot.outbox import Outgoing, enqueue, text_body
from bot.runtime import Runtime
from tests.fakes.live import LiveServer


@contextmanager
def serving(runtime: Runtime) -> Iterator[httpx.Client]:
    """The app on a loopback port (lifespan included), without a scheduler."""
    with (
        LiveServer(create_app(runtime, scheduler=False)) as url,
        httpx.Client(base_url=url, timeout=10) as c,
    ):
        yield c


def _unreachable(tmp_path: Path) -> Runtime:
    settings = Settings()
    settings.database.url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    return Runtime(settings=settings)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    with serving(runtime) as c:
        yield c


@pytest.fixture
def leader(runtime: Runtime) -> Iterator[Leader]:
    """Another instance leads the scheduler (its lease row says so)."""
    elected = make_leader(runtime.engine, holder="other-host:4242")
    assert elected.ensure(runtime.clock.now())
    yield elected
    elected.release(runtime.clock.now())


def _due(runtime: Runtime, minutes_ago: float) -> None:
    now = runtime.clock.now()
    with Session(runtime.engine) as s:
        enqueue(
            s,
            [
                Outgoing(
                    key="t:1",
                    recipient="u1",
                    body=text_body("hi"),
                    due_at=now - timedelta(minutes=minutes_ago),
                )
            ],
            now=now,
        )
        s.commit()


def test_healthz_is_alive_without_touching_anything(tmp_path):
    # A database that cannot even be opened does not make the process "dead".
    with serving(_unreachable(tmp_path)) as c:
        r = c.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_when_everything_is_fine(client, leader):
    r = client.get("/readyz")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["ready"] is True and body["failing"] == []
    assert body["database"] == "ok" and body["migrations"] == "head"
    assert body["schema_revision"] == "0001"
    assert body["leader"] == {"known": True, "holder": leader.holder, "this_process": False}
    assert body["scheduler"] == "off"  # this process runs none: the other one sends
    assert body["outbox_pending"] == 0 and body["outbox_oldest_age_seconds"] is None
    assert body["outbox_max_age_seconds"] == 600


def test_not_ready_without_a_scheduler_leader(client):
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["failing"] == ["leader"] and r.json()["leader"]["known"] is False


def test_an_expired_leader_lease_is_no_leader(client, runtime, leader):
    runtime.clock.advance(minutes=5)  # the holder stopped renewing
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["failing"] == ["leader"]


def test_a_stuck_outbox_makes_it_unready_after_the_configured_age(client, runtime, leader):
    _due(runtime, minutes_ago=9)
    ok = client.get("/readyz").json()
    assert ok["ready"] and ok["outbox_pending"] == 1
    assert ok["outbox_oldest_age_seconds"] == pytest.approx(540, abs=1)

    runtime.clock.advance(minutes=2)
    leader.ensure(runtime.clock.now())  # the leader renews; its dispatcher is what is stuck
    stuck = client.get("/readyz")
    assert stuck.status_code == 503 and stuck.json()["failing"] == ["outbox_age"]

    runtime.settings.health.max_outbox_age_seconds = 3600
    assert client.get("/readyz").status_code == 200


def test_not_ready_on_a_schema_behind_the_code(client, leader, monkeypatch):
    monkeypatch.setattr("bot.db.head_revision", lambda: "0002")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["migrations"] == "behind (0001 < 0002)"
    assert r.json()["failing"] == ["migrations"]


def test_an_unreachable_database_is_reported_not_raised(tmp_path):
    with serving(_unreachable(tmp_path)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["database"].startswith("error: ")
    assert r.json()["failing"] == ["database"]


def test_max_outbox_age_is_a_config_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[health]\nmax_outbox_age_seconds = 1800\n", encoding="utf-8")
    assert load_settings(path, env=False).health.max_outbox_age_seconds == 1800
    path.write_text("[health]\nmax_outbox_age_seconds = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="health.max_outbox_age_seconds"):
        load_settings(path, env=False)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_every_response_and_log_line_carries_a_request_id(tmp_path, json_log):
    # Readiness logs a warning when the database is unreachable: that line is checked.
    with serving(_unreachable(tmp_path)) as c:
        first = c.get("/readyz")
        second = c.get("/readyz", headers={"X-Request-ID": "lb-7f3a.1"})
        hostile = c.get("/readyz", headers={"X-Request-ID": 'x" injected\\n'})
    ids = [r.headers["x-request-id"] for r in (first, second, hostile)]
    assert len(ids[0]) == 16 and ids[1] == "lb-7f3a.1"
    assert ids[2] not in ('x" injected\\n', ids[0]) and len(ids[2]) == 16
    events = [json.loads(line) for line in json_log.getvalue().splitlines()]
    warned = [e for e in events if e["logger"] == "mofan.health"]
    assert [e["request_id"] for e in warned] == ids
    assert all(e["level"] == "warning" for e in warned)
