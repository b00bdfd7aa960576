"""Bench: the year-end 台账 for 10,000 members and a year of records (target: under 60 s,
peak memory under 500 MB).

The bureau comes from ``bot.demo.generate_bureau(year_of_data=True)`` (meetings with
attendance, study records, notices with receipts, dues) plus the campaign's five milestones
per branch with a progress note each; the export is taken on 20 December, when the year's
review happens. Each figure is measured in a fresh process, so that its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- baseline: the same run with every row computed but nothing written (the workbook's
  ``append`` and ``save`` do nothing): what the queries and the figures alone cost;
- ledger: the real export to an .xlsx file;
- the same export for a quarter of the members, to show that memory does not grow with
  the data (write-only mode streams every sheet to disk).

    python bench/ledger_10k.py [--members 10000] [--branches 300] [--small 2500] [--url URL]

``--url`` takes an empty PostgreSQL database (its tables are created; nothing is dropped).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import SHANGHAI, to_utc  # noqa: E402

NOW = datetime(2026, 12, 20, 10, 0, tzinfo=SHANGHAI)
YEAR = 2026
TARGET_SECONDS = 60
TARGET_MB = 500


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(url: str, members: int, branches: int) -> dict[str, int]:
    from sqlalchemy import insert, select, text
    from sqlmodel import col

    from bot.config import load_settings
    from bot.db import make_engine, session_scope, upgrade
    from bot.demo import generate_bureau
    from bot.models import Org, Task, TaskProgress

    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(None, env=False)
    rng = random.Random(1)
    with session_scope(engine) as session:
        counts = generate_bureau(
            session=session, members=members, branches=branches, now=NOW, year_of_data=True
        )
        ids = list(session.scalars(select(col(Org.id)).where(col(Org.kind) == "党支部")))
        tasks = [
            {"name": m.name, "branch_id": b, "due_on": due, "kind": "milestone",
             "created_at": to_utc(datetime(YEAR, 1, 5, 9, tzinfo=SHANGHAI)),
             "done_at": to_utc(datetime.combine(due - timedelta(days=rng.randint(-5, 20)),
                                                datetime.min.time(), tzinfo=SHANGHAI))
             if due < NOW.date() and rng.random() < 0.9 else None}
            for m in settings.milestones
            for due in [m.due_in(YEAR) or date(YEAR, 12, 31)]
            for b in ids
        ]  # fmt: skip
        task_ids = session.scalars(insert(Task).returning(Task.id), tasks).all()
        session.execute(
            insert(TaskProgress),
            [
                {"task_id": t, "member_id": None, "note": "按计划推进，材料已报送", "done": False,
                 "at": to_utc(datetime(YEAR, 3, 1, 10, tzinfo=SHANGHAI))}
                for t in task_ids
            ],
        )  # fmt: skip
        counts["task"] = len(task_ids)
    with engine.begin() as conn:  # planner statistics, as a live database has them
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return counts


def measure(url: str, path: str, dry: bool) -> dict[str, float]:
    from bot import xlsx
    from bot.config import load_settings
    from bot.db import make_engine, session_scope
    from bot.ledger import write_ledger

    if dry:  # every row computed, none written
        xlsx.StreamSheet._append = lambda self, cells: setattr(self, "rows", self.rows + 1)  # type: ignore[method-assign]
        xlsx.Book.save = lambda self, path: None  # type: ignore[method-assign]
    settings = load_settings(None, env=False)
    engine = make_engine(url)
    before = peak_mb()
    start = time.perf_counter()
    with session_scope(engine) as session:
        result = write_ledger(session=session, settings=settings, year=YEAR, now=NOW, path=path)
        session.rollback()
    seconds = time.perf_counter() - start
    size = 0.0 if dry else Path(path).stat().st_size / 1e6
    return {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "start_mb": before,
        "file_mb": size,
        "rows": sum(result.rows.values()),
        "meetings": result.meetings,
    }


def child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def build(url: str | None, tmp: Path, members: int, branches: int, name: str) -> tuple[str, dict]:
    db = url or f"sqlite:///{tmp / name}.db"
    started = time.perf_counter()
    counts = child("--generate", db, str(members), str(branches))
    print(f"  generated {members:,} members in {branches} branches in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()))  # fmt: skip
    return db, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=300)
    parser.add_argument("--small", type=int, default=2_500, help="members in the comparison run")
    parser.add_argument(
        "--url", help="an empty PostgreSQL database (default: a temporary SQLite file)"
    )
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        url, members, branches = args.generate
        print(json.dumps(generate(url, int(members), int(branches))))
        return
    if args.measure:
        url, path, dry = args.measure
        print(json.dumps(measure(url, path, dry == "dry")))
        return

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"台账 {YEAR} (as of {NOW:%Y-%m-%d}), {'PostgreSQL' if args.url else 'SQLite'}")
        db, _ = build(args.url, tmp, args.members, args.branches, "big")
        base = child("--measure", db, str(tmp / "base.xlsx"), "dry")
        real = child("--measure", db, str(tmp / "ledger.xlsx"), "real")
        small = None
        if args.small and not args.url:
            small_db, _ = build(
                None, tmp, args.small, max(1, args.branches * args.small // args.members), "small"
            )
            small = child("--measure", small_db, str(tmp / "small.xlsx"), "real")
    ok = real["seconds"] < TARGET_SECONDS and real["peak_mb"] < TARGET_MB
    print(f"baseline, the same rows computed and nothing written: {base['seconds']:.1f} s, "
          f"peak RSS {base['peak_mb']:.0f} MB")  # fmt: skip
    print(f"ledger, {real['meetings']:,} meetings, {real['rows']:,} rows, {real['file_mb']:.1f} MB .xlsx: "
          f"{real['seconds']:.1f} s ({real['seconds'] / max(base['seconds'], 1e-9):.1f}× the baseline), "
          f"peak RSS {real['peak_mb']:.0f} MB (at start {real['start_mb']:.0f} MB)")  # fmt: skip
    if small:
        print(f"ledger for {args.small:,} members: {small['seconds']:.1f} s, {small['rows']:,} rows, "
              f"peak RSS {small['peak_mb']:.0f} MB: {args.members / args.small:.0f}× the data costs "
              f"{real['peak_mb'] - small['peak_mb']:+.0f} MB")  # fmt: skip
    print(f"target: under {TARGET_SECONDS} s and {TARGET_MB} MB — {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
