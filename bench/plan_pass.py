"""One planning pass for 10,000 members in 500 branches with a year of data (target < 1 s).

The first pass after a start (nothing cached) on Friday 13 November 2026 at 09:30: two
days before the 15th's 主题党日, so every member of a branch that has not held it yet has a
reminder due (thousands of outbox rows written), plus milestone countdowns, birthdays and
the rest. Then the same pass a minute later (what ``mofan serve`` runs every minute:
everything already enqueued), and the first pass of the next Monday (the weekly digest to
every branch, Friday's remaining moments caught up), and Monday a minute later.

Baseline from the same run: reading the member table (every active member, ORM) — the least
any pass that looks at everyone has to do.

Run: python bench/plan_pass.py [--members N] [--branches N] [--url postgresql+psycopg://…]
(the default is a temporary SQLite file; a PostgreSQL URL's public schema is dropped).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlmodel import Session, col

from bot.clock import SHANGHAI
from bot.config import Settings
from bot.db import make_engine, session_scope, upgrade
from bot.demo import generate_bureau
from bot.models import Member, OutboxMessage
from schedules.data import load_plan_data
from schedules.runner import calendar_for, collect, run_pass

HEAVY = datetime(2026, 11, 13, 9, 30, tzinfo=SHANGHAI)
MONDAY = datetime(2026, 11, 16, 9, 30, tzinfo=SHANGHAI)


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=500)
    parser.add_argument("--url", default="")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine)
        settings = Settings()
        settings.database.url = url
        gen, counts = timed(lambda: _generate(engine, args.members, args.branches))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))  # a database in use has planner statistics
        print(f"generated in {gen:.1f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

        cal = calendar_for(settings.calendar)
        cal.is_workday(HEAVY.date())  # load the holiday tables outside the timings
        engine.dispose()
        engine = make_engine(url)  # nothing cached: the first pass after a start

        cold, result = timed(lambda: run_pass(engine, settings, HEAVY))
        with Session(engine) as s:
            rows = s.scalar(select(func.count()).select_from(OutboxMessage))
        steady = [
            timed(lambda i=i: run_pass(engine, settings, HEAVY + timedelta(minutes=1 + i)))[0]
            for i in range(args.runs)
        ]
        monday_first, monday = timed(lambda: run_pass(engine, settings, MONDAY))
        monday_steady = [
            timed(lambda i=i: run_pass(engine, settings, MONDAY + timedelta(minutes=1 + i)))[0]
            for i in range(args.runs)
        ]
        with Session(engine) as s:
            load, data = timed(
                lambda s=s: load_plan_data(s, settings, cal, first_day=MONDAY.date(), now=MONDAY)
            )
        rules, reminders = timed(lambda: collect(MONDAY, data, settings))
        baseline = []
        for _ in range(args.runs):
            with Session(engine) as s:
                t, _ = timed(lambda s=s: list(s.scalars(select(Member).where(col(Member.active)))))
                baseline.append(t)
        engine.dispose()

    ms = 1000
    print(f"{args.members} members, {args.branches} branches, {engine.dialect.name}")
    print(
        f"  first pass after a start, Fri 13 Nov 09:30 (主题党日 in two days): {cold * ms:.0f} ms,"
        f" enqueued {result.enqueued} messages ({rows} outbox rows)"
    )
    print(
        f"  the same a minute later (nothing new), median: {statistics.median(steady) * ms:.0f} ms"
    )
    print(
        f"  first pass of Monday 16 Nov 09:30 (weekly digest, Friday caught up): "
        f"{monday_first * ms:.0f} ms, enqueued {monday.enqueued}"
    )
    print(f"  Monday a minute later, median: {statistics.median(monday_steady) * ms:.0f} ms")
    print(
        f"  of which: snapshot load (warm) {load * ms:.0f} ms; rules {rules * ms:.0f} ms "
        f"({len(reminders)} reminders)"
    )
    print(f"  baseline, read all members (ORM): {statistics.median(baseline) * ms:.0f} ms")
    worst = max(cold, monday_first, *steady, *monday_steady)
    verdict = "OK" if worst < 1 else "MISSED"
    print(f"one planning pass: {worst:.2f} s at worst; target < 1 s: {verdict}")


def _generate(engine, members: int, branches: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return generate_bureau(
            session=s,
            members=members,
            branches=branches,
            now=HEAVY - timedelta(hours=2),
            year_of_data=True,
        )


if __name__ == "__main__":
    main()
