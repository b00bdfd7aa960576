"""Bench: import a 10,000-member roster (.xlsx) into a fresh database.

Prints the import time and rows per second, and as the baseline the time openpyxl alone
takes to read the same workbook (read-only, values only) in the same run; the ratio says
how much our parsing, validation and writing add on top of reading the file. Also times a
re-import of a changed roster (updates, departures, newcomers). Target: under 10 s.

    python bench/import_roster.py [--members 10000] [--branches 400] [--url DATABASE_URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openpyxl  # noqa: E402

from bot.db import make_engine, session_scope, upgrade  # noqa: E402
from bot.roster import DUTIES, import_roster, write_roster_xlsx  # noqa: E402

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def make_rows(members: int, branches: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(members):
        b = i % branches
        position = i // branches
        joined = date(rng.randint(1975, 2024), rng.randint(1, 12), rng.randint(1, 28))
        rows.append(
            {
                "姓名": rng.choice("王李张刘陈杨黄赵吴周") + rng.choice("伟芳娜敏静丽强磊军洋"),
                "企业微信账号": f"user{i:05d}",
                "所在支部": f"第{b + 1:03d}党支部",
                "党小组": ("第一党小组", "第二党小组")[position % 2],
                "职务": DUTIES[position] if position < 6 else "党员",
                "角色": "党委委员" if i in (1, 2, 3) else ("党委办" if i == 0 else ""),
                "人员类别": "预备党员" if rng.random() < 0.05 else "正式党员",
                "入党日期": joined,
                "转正日期": joined + timedelta(days=365),
                "手机号": f"139{rng.randrange(10**8):08d}",
                "联系点": f"第{rng.randrange(branches) + 1:03d}党支部" if i in (1, 2, 3) else "",
            }
        )
    return rows


def read_only_baseline(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        count = sum(1 for _ in wb["党员"].iter_rows(values_only=True))
    finally:
        wb.close()
    return time.perf_counter() - start, count


def timed_import(url: str, path: Path) -> tuple[float, Any]:
    engine = make_engine(url)
    try:
        start = time.perf_counter()
        with session_scope(engine) as session:
            report = import_roster(session=session, path=path, dry_run=False, now=NOW)
        return time.perf_counter() - start, report
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=400)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        url = args.url or f"sqlite:///{tmpdir / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()

        rows = make_rows(args.members, args.branches)
        path = tmpdir / "roster.xlsx"
        start = time.perf_counter()
        write_roster_xlsx(path, rows)
        print(
            f"wrote {len(rows)} rows to xlsx in {time.perf_counter() - start:.2f} s "
            f"({path.stat().st_size / 1e6:.1f} MB)"
        )

        baseline, count = read_only_baseline(path)
        print(f"baseline: openpyxl read-only read of {count} rows: {baseline:.2f} s")

        elapsed, report = timed_import(url, path)
        assert report.ok, report.summary_lines()[:5]
        print(
            f"import into fresh {url.split(':')[0]}: {elapsed:.2f} s, "
            f"{len(rows) / elapsed:,.0f} rows/s, {elapsed / baseline:.1f}× the baseline "
            f"({len(report.added)} added, {len(report.orgs_added)} orgs)"
        )

        # A year later: 5 % changed, 1 % left, 1 % joined.
        rng = random.Random(1)
        changed = [dict(r) for r in rows if rng.random() >= 0.01]
        for r in rng.sample(changed, len(changed) // 20):
            r["手机号"] = f"138{rng.randrange(10**8):08d}"
        changed += make_rows(len(rows) // 100, args.branches, seed=2)
        for i, r in enumerate(changed[-(len(rows) // 100) :]):
            r["企业微信账号"] = f"new{i:05d}"
        write_roster_xlsx(path, changed)
        elapsed, report = timed_import(url, path)
        assert report.ok, report.summary_lines()[:5]
        print(
            f"re-import: {elapsed:.2f} s, {len(changed) / elapsed:,.0f} rows/s "
            f"({report.summary_lines()[0]})"
        )


if __name__ == "__main__":
    main()
