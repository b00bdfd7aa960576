"""Exactly once across instances: a second planner over the same minute (nothing cached, or
racing the first on another connection) writes no reminder a second time, and never a
merged message whose parts another planner took."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import Session, col

import schedules.runner as runner
from bot.clock import SHANGHAI
from bot.db import make_engine
from bot.models import OutboxMessage
from schedules.runner import MERGED, PassResult, run_pass
from tests.conftest import PG_URL

# A Friday and December's 党费日: dues reminders to every member, and the secretaries'
# personal reminder merged with the unpaid list.
DUES_DAY = datetime(2026, 12, 4, 9, 20, tzinfo=SHANGHAI)


def _outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def _assert_each_reminder_once(rows: list[OutboxMessage]) -> None:
    """Every message carries exactly the reminders whose rows point at it: a merged text of
    N reminders has N - 1 markers, all of them its own."""
    heads = {r.key: r for r in rows if r.status != MERGED}
    into = Counter(r.body["into"] for r in rows if r.status == MERGED)
    assert set(into) <= set(heads), "a marker points at a message that was never written"
    for key, row in heads.items():
        text_ = row.body.get("text", "")
        carried = int(text_[2 : text_.index("条")]) if text_.startswith("您有") else 1
        assert carried == 1 + into[key], f"{key} carries {carried} reminders, {into[key]} markers"


def test_a_second_instance_over_the_same_minute_enqueues_nothing(engine, db_url, settings, bureau):
    first = run_pass(engine, settings, DUES_DAY)
    written = _outbox(engine)
    assert first.enqueued > 0 and any(r.status == MERGED for r in written)
    other = make_engine(db_url)  # another process: no cache of what it wrote
    try:
        assert run_pass(other, settings, DUES_DAY).enqueued == 0
        assert run_pass(other, settings, DUES_DAY + timedelta(minutes=1)).enqueued == 0
    finally:
        other.dispose()
    assert [r.key for r in _outbox(engine)] == [r.key for r in written]


def _wait_for_a_lock_wait(engine: Engine, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second planner never waited for the first one's rows")


@pytest.mark.skipif(not PG_URL, reason="two writers at once need PostgreSQL (SQLite has one)")
@pytest.mark.parametrize("overlap", ["all", "part"])
def test_two_planners_racing_write_each_reminder_once(
    engine, db_url, settings, bureau, monkeypatch, overlap
):
    """Planner A has written its rows and not committed yet when planner B, on another
    connection, plans the same minute: B's insert waits for A's keys, finds them taken, and
    writes only the messages none of whose reminders A took. With ``part`` A planned
    without the dues rule (a snapshot a moment older), so some of B's merged messages hold
    a reminder A wrote alone and one A did not."""
    other = make_engine(db_url)
    written, release = threading.Event(), threading.Event()
    results: dict[str, PassResult] = {}
    errors: list[BaseException] = []
    real_set_last_pass, real_collect = runner._set_last_pass, runner.collect

    def set_last_pass_then_hold(session: Session, now: datetime) -> None:
        real_set_last_pass(session, now)
        if threading.current_thread().name == "A":  # rows written, commit next
            written.set()
            release.wait(20)

    def collect(now, data, settings_):  # type: ignore[no-untyped-def]
        found = real_collect(now, data, settings_)
        if overlap == "part" and threading.current_thread().name == "A":
            return [r for r in found if r.rule != "dues"]
        return found

    monkeypatch.setattr(runner, "_set_last_pass", set_last_pass_then_hold)
    monkeypatch.setattr(runner, "collect", collect)

    def plan(name: str, eng: Engine) -> None:
        try:
            results[name] = run_pass(eng, settings, DUES_DAY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            written.set()

    a = threading.Thread(target=plan, args=("A", engine), name="A")
    b = threading.Thread(target=plan, args=("B", other), name="B")
    try:
        a.start()
        assert written.wait(20)
        b.start()
        _wait_for_a_lock_wait(engine)
        release.set()
        a.join(20)
        b.join(20)
    finally:
        release.set()
        other.dispose()
    assert not errors, errors
    rows = _outbox(engine)
    _assert_each_reminder_once(rows)
    assert results["A"].enqueued > 0
    if overlap == "all":
        assert results["B"].enqueued == 0 and results["B"].reminders == 0
    else:
        assert results["B"].enqueued > 0  # the dues reminders A did not plan
    assert results["A"].reminders + results["B"].reminders == len(rows)
    # What B left out because A took part of it goes at the next pass, on its own.
    run_pass(engine, settings, DUES_DAY + timedelta(minutes=1))
    everything = _outbox(engine)
    _assert_each_reminder_once(everything)
    fresh = make_engine(db_url)
    try:
        assert run_pass(fresh, settings, DUES_DAY + timedelta(minutes=2)).enqueued == 0
    finally:
        fresh.dispose()
