"""``mofan simulate`` and ``mofan plan``: the whole engine on a virtual clock.

A year over the demo bureau and over a generated 200-member one (the 1,000-member year runs
with ``MOFAN_SLOW_TESTS=1``, about 25 s, and in ``bench/simulate_year.py``) must give: nothing
outside the window or on a day off, no reminder twice to anyone, every campaign milestone to
every responsible secretary at each offset, every branch its 主题党日 each month, and every
member their 政治生日 greeting on the day or the workday before.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col
from typer.testing import CliRunner

import bot.cli_schedule  # noqa: F401  (registers plan and simulate on the app)
from bot.calendar import in_send_window, local_date
from bot.cli import app
from bot.clock import SHANGHAI, local
from bot.config import Settings
from bot.db import session_scope
from bot.demo import generate_bureau, load_demo
from bot.models import Member, Org, OutboxMessage
from bot.roles import is_secretary_proper
from bot.simulate import Message, simulate
from bot.store import create_notice
from schedules.base import anniversary, countdown, daily
from schedules.runner import calendar_for

SLOW = os.environ.get("MOFAN_SLOW_TESTS") == "1"


def check_year(messages: list[Message], settings: Settings, engine, first: date, last: date):  # type: ignore[no-untyped-def]
    """The invariants every simulation must keep; returns (part key, userid) -> day."""
    cal = calendar_for(settings.calendar)
    window = settings.bot.send_window
    got: dict[tuple[str, str], date] = {}
    for m in messages:
        assert in_send_window(m.at, window, cal), f"{m.key} at {local(m.at)} is outside the window"
        assert local(m.at).minute not in (0, 30), m.key
        assert first <= local_date(m.at) <= last
        assert m.text.strip()
        for part in m.parts:
            for userid in m.to:
                assert (part["key"], userid) not in got, f"{part['key']} sent twice to {userid}"
                got[(part["key"], userid)] = local_date(m.at)

    with Session(engine) as s:
        members = list(s.scalars(select(Member).where(col(Member.active))))
        branches = [
            o
            for o in s.scalars(select(Org).where(col(Org.kind) == "党支部"))
            if any(p.branch_id == o.id for p in members)
        ]
    by_branch = defaultdict(list)
    for p in members:
        by_branch[p.branch_id].append(p)

    # Every campaign milestone, to every responsible secretary, at each offset.
    for ms in settings.milestones:
        due = ms.due_in(first.year)
        if due is None:
            continue
        for step in countdown(due, settings.tasks.days_before, settings, cal):
            if not first <= local_date(step.at) <= last:
                continue
            for b in branches:
                key = f"milestone:{ms.name}:branch-{b.id}:T-{step.offset}:{due}"
                for sec in (p for p in by_branch[b.id] if is_secretary_proper(p)):
                    assert got.get((key, sec.userid)) == local_date(step.at), (key, sec.userid)

    # Every branch, every month: its 主题党日 to every member.
    month = first.replace(day=1)
    while month <= last:
        day = month.replace(day=settings.theme_day_for(b.name) if branches else 15)
        for b in branches:
            day = month.replace(day=settings.theme_day_for(b.name))
            send = local_date(
                daily(day - timedelta(days=settings.theme_day.member_days_before), settings, cal)
            )
            if not first <= send <= last:
                continue
            key = f"theme-day:branch-{b.id}:{month:%Y-%m}:members"
            for p in by_branch[b.id]:
                assert got.get((key, p.userid)) == send, (key, p.userid)
        month = (month + timedelta(days=32)).replace(day=1)

    # Every member: the 政治生日 greeting on the day or the workday before.
    greeted = 0
    for p in members:
        if p.joined_on is None:
            continue
        for year in (first.year, first.year + 1):
            day = anniversary(p.joined_on, year)
            send = cal.workday_on_or_before(day)
            if year <= p.joined_on.year or not first <= send <= last:
                continue
            assert got.get((f"birthday:{year}:member-{p.id}", p.userid)) == send, (p.userid, day)
            greeted += 1
    assert greeted
    return got


def test_a_year_over_the_demo_bureau(engine, settings):
    with session_scope(engine) as s:
        load_demo(session=s, now=datetime(2026, 1, 1, 8, 0, tzinfo=SHANGHAI))
        office = s.scalar(select(Member).where(col(Member.userid) == "office"))
        assert office is not None
        create_notice(
            session=s,
            sender=office,
            text="请于6月底前报送党建工作半年总结。",
            scope="全体",
            recipients=list(s.scalars(select(Member))),
            now=datetime(2026, 6, 10, 10, 7, tzinfo=SHANGHAI),
            deadline=None,
        )
    with Session(engine) as s:
        before = s.scalar(select(func.count()).select_from(OutboxMessage))
    days: list[date] = []
    messages = simulate(settings, date(2026, 1, 1), date(2026, 12, 31), progress=days.append)
    assert days[0] == date(2026, 1, 1) and days[-1] == date(2026, 12, 31) and len(days) == 365
    got = check_year(messages, settings, engine, date(2026, 1, 1), date(2026, 12, 31))
    rules = {part["rule"] for m in messages for part in m.parts}
    assert rules >= {
        "cadence",
        "meetings",
        "theme_day",
        "dues",
        "birthdays",
        "milestones",
        "notices",
        "study",
        "digest",
        "terms",
        "leaders",
    }
    assert any(m.rule == "merged" and len(m.parts) > 1 for m in messages)
    # 国庆 week: nothing from 1 to 7 October; the 调休 Saturday 10 October is a workday.
    assert not any(date(2026, 10, 1) <= local_date(m.at) <= date(2026, 10, 7) for m in messages)
    assert any(d == date(2026, 10, 10) for d in got.values())
    # The real database was not touched.
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == before


def test_a_year_over_a_generated_bureau(engine, settings):
    # 200 members in 10 branches with a year of history (the 1,000-member year: below).
    with session_scope(engine) as s:
        generate_bureau(
            session=s,
            members=200,
            branches=10,
            year_of_data=True,
            seed=7,
            now=datetime(2026, 1, 1, 8, 0, tzinfo=SHANGHAI),
        )
    first, last = date(2026, 1, 1), date(2026, 12, 31)
    messages = simulate(settings, first, last)
    got = check_year(messages, settings, engine, first, last)
    assert sum(1 for key, _ in got if key.startswith("dues:2026-10:member-")) > 0
    assert not any(date(2026, 10, 1) <= day <= date(2026, 10, 7) for day in got.values())


@pytest.mark.skipif(
    not SLOW, reason="about 25 s: set MOFAN_SLOW_TESTS=1 (or run bench/simulate_year.py)"
)
def test_a_year_over_a_thousand_members(engine, settings):
    with session_scope(engine) as s:
        generate_bureau(
            session=s,
            members=1000,
            branches=50,
            year_of_data=True,
            now=datetime(2026, 1, 1, 8, 0, tzinfo=SHANGHAI),
        )
    messages = simulate(settings, date(2026, 1, 1), date(2026, 12, 31))
    check_year(messages, settings, engine, date(2026, 1, 1), date(2026, 12, 31))


# The commands -------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "mofan.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def mofan(cfg: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--config", str(cfg), *args])


@pytest.fixture
def demo(engine):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        load_demo(session=s, now=datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI))


def test_simulate_json_lines(cfg, demo):
    result = mofan(cfg, "simulate", "--from", "2026-12-01", "--to", "2026-12-07", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines
    for line in lines:
        assert {"at", "rule", "key", "to", "text"} <= set(line)
        at = datetime.fromisoformat(line["at"])
        assert line["at"].endswith("+08:00") and at.tzinfo is not None
        assert isinstance(line["to"], list) and line["to"]
    assert any(line["rule"] == "dues" for line in lines)


def test_simulate_table_and_bad_input(cfg, demo):
    result = mofan(cfg, "simulate", "--from", "2026-12-04", "--to", "2026-12-04")
    assert result.exit_code == 0, result.output
    assert "2026-12-04 周五" in result.stdout and "党费" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("共 ")
    bad = mofan(cfg, "simulate", "--from", "2026-12-40", "--to", "2026-12-04")
    assert bad.exit_code == 1 and "--from" in bad.output
    backwards = mofan(cfg, "simulate", "--from", "2026-12-05", "--to", "2026-12-04")
    assert backwards.exit_code == 1 and "before" in backwards.output


def test_plan_json_and_table(cfg, demo):
    result = mofan(cfg, "plan", "--from", "2026-12-01", "--days", "10", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys))
    assert any(k.startswith("dues:2026-12:member-") for k in keys)
    for line in lines:
        assert line["at"].endswith("+08:00") and line["to"] and line["text"]
        assert date(2026, 12, 1) <= datetime.fromisoformat(line["at"]).date() <= date(2026, 12, 10)
    table = mofan(cfg, "plan", "--from", "2026-12-04", "--days", "1")
    assert table.exit_code == 0 and "dues" in table.stdout and "党费" in table.stdout
