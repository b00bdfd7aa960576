"""Restart across due times (issue 8, item 5): the bot down for 2 s, 60 s, 30 min and 8 h,
stopped at many moments of a working day.

The engine of ``mofan serve`` (the scheduler's plan and dispatch jobs, the leader election,
the planner and the outbox dispatcher, into a console channel) runs in process on a
frozen clock over two workdays of a bureau with reminders due all day (``build_bureau`` in
``tests/test_restart_due.py``, which holds the harness). For each stop time and downtime:
run to the stop, die, leave the clock to move on by the downtime, restart with fresh
objects on the same database and run to the end of the next day. Stop times: every
``--step`` minutes of the window, and a second before each due moment of the day; plus,
at each due moment, a death between the planner's commit and the send (``mid-tick``).

Checked against the same two days without a stop (``mofan simulate``, the baseline): no
key sent twice; every reminder due before the stop sent then; every reminder missed while
down sent at the first pass after the restart if still relevant (``relevant_until`` ahead),
else not sent and named by a ``dropped`` log line; nothing else sent, nothing outside the
send window. Printed: one line per downtime (scenarios, reminders missed, caught up,
dropped, sent, duplicated, violations, catch-up delay), and the time per scenario.

Run:  python bench/restart_due.py [--step 60] [--downtimes 2s,60s,30min,8h] [--no-mid-tick]
      [--url postgresql+psycopg://…  (emptied first; default: a temporary SQLite file)]
Exits non-zero on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from bot.clock import local  # noqa: E402
from tests.test_restart_due import (  # noqa: E402
    DAY,
    DOWNTIMES,
    Baseline,
    Outcome,
    baseline,
    build_bureau,
    day_settings,
    run_scenario,
    sh,
)


def stops(base: Baseline, step: int) -> list[tuple[datetime, bool]]:
    """(stop time, killed between planning and sending) over :data:`DAY`'s window."""
    out: list[tuple[datetime, bool]] = []
    at = sh(DAY, 8, 30)
    while at < sh(DAY, 18, 0):
        out.append((at, False))
        at += timedelta(minutes=step)
    moments = [m for m in base.moments() if local(m).date() == DAY]
    out += [(m - timedelta(seconds=1), False) for m in moments]
    return sorted(set(out))


class Databases:
    """A fresh copy of the bureau for every scenario: a SQLite file copied from a template
    (the backup API), or the PostgreSQL database emptied and built again."""

    def __init__(self, tmp: Path, url: str | None) -> None:
        from sqlmodel import Session

        from tests.fakes.database import fresh_database

        self.tmp, self.pg, self.n = tmp, url, 0
        self.template = tmp / "template.db"
        engine = fresh_database(url or f"sqlite:///{self.template}")
        if not url:
            with Session(engine, expire_on_commit=False) as session:
                build_bureau(session)
        engine.dispose()

    def fresh(self) -> str:
        if self.pg:
            from sqlalchemy import text
            from sqlmodel import Session, SQLModel

            from bot.db import make_engine

            engine = make_engine(self.pg)
            tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            with Session(engine, expire_on_commit=False) as session:
                build_bureau(session)
            engine.dispose()
            return self.pg
        self.n += 1
        path = self.tmp / f"run{self.n}.db"
        with sqlite3.connect(self.template) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        return f"sqlite:///{path}"

    def done(self, url: str) -> None:
        if not self.pg:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", type=int, default=60, help="minutes between stop times")
    ap.add_argument(
        "--downtimes", default=",".join(DOWNTIMES), help="among " + ", ".join(DOWNTIMES)
    )
    ap.add_argument("--no-mid-tick", action="store_true", help="skip the mid-tick deaths")
    ap.add_argument("--url", help="a PostgreSQL database to use (emptied); default SQLite")
    args = ap.parse_args()
    downs = [d.strip() for d in args.downtimes.split(",") if d.strip()]
    unknown = [d for d in downs if d not in DOWNTIMES]
    if unknown:
        raise SystemExit(f"unknown downtime {unknown}; choose among {', '.join(DOWNTIMES)}")

    from bot.config import load_settings

    with tempfile.TemporaryDirectory(prefix="mofan-restart-") as tmp:
        dbs = Databases(Path(tmp), args.url)
        settings = load_settings(None, env=False)
        settings.database.url = dbs.fresh()
        settings = day_settings(settings)
        t0 = time.perf_counter()
        base = baseline(settings)
        dbs.done(settings.database.url)
        print(
            f"baseline (the two days without a stop, mofan simulate): {len(base.due)} reminder "
            f"deliveries at {len(base.moments())} moments, {time.perf_counter() - t0:.1f} s"
        )
        cases = stops(base, args.step)
        if not args.no_mid_tick:
            cases += [(m, True) for m in base.moments() if local(m).date() == DAY]
        print(
            f"{len(cases)} stop times × {len(downs)} downtimes = {len(cases) * len(downs)} "
            f"scenarios ({'SQLite' if not args.url else 'PostgreSQL'})"
        )
        results: dict[str, list[Outcome]] = {d: [] for d in downs}
        walls: list[float] = []
        cpus: list[float] = []
        failed = 0
        for down in downs:
            for stop, mid in cases:
                url = dbs.fresh()
                w, c = time.perf_counter(), time.process_time()
                out = asyncio.run(
                    run_scenario(url, settings, base, stop, DOWNTIMES[down], mid_tick=mid)
                )
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
                dbs.done(url)
                results[down].append(out)
                if out.violations:
                    failed += 1
                    how = "killed mid-tick" if mid else "stopped"
                    print(f"VIOLATION {how} {local(stop):%H:%M:%S}, down {down}:")
                    for v in out.violations[:10]:
                        print("  " + v)

    print()
    print(
        f"{'downtime':>8}  {'scenarios':>9}  {'missed':>6}  {'caught up':>9}  {'dropped':>7}  "
        f"{'sent':>6}  {'duplicated':>10}  {'violations':>10}  catch-up delay p50 / max"
    )
    for down, outs in results.items():
        delays = sorted(d for o in outs for d in o.delays)
        shown = f"{_span(statistics.median(delays))} / {_span(delays[-1])}" if delays else "—"
        print(
            f"{down:>8}  {len(outs):>9}  {sum(o.missed for o in outs):>6}  "
            f"{sum(o.caught_up for o in outs):>9}  {sum(o.dropped for o in outs):>7}  "
            f"{sum(o.sent for o in outs):>6}  {sum(o.duplicated for o in outs):>10}  "
            f"{sum(1 for o in outs if o.violations):>10}  {shown}"
        )
    print(
        f"per scenario (two days of ticks, a death and a restart): median {statistics.median(walls):.2f} s "
        f"wall, {statistics.median(cpus):.2f} s CPU; all {sum(walls):.0f} s wall, {sum(cpus):.0f} s CPU"
    )
    print("no violation" if not failed else f"{failed} scenarios with violations")
    sys.exit(1 if failed else 0)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
