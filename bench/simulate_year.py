"""``mofan simulate`` over a whole year (1 January – 31 December 2026).

Targets: the demo bureau under 30 s; a generated 1,000-member bureau (50 branches, a year of
data before 1 January) under 3 minutes; memory under 300 MB. Each scenario runs in its own
process so that its peak memory (max RSS) is its own.

Baseline from the same run: simulating one ordinary week of the same bureau (what every
other day costs is the same machinery), and a bare interpreter's max RSS.

Run: python bench/simulate_year.py [--members N] [--only demo|generated]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

FIRST, LAST = date(2026, 1, 1), date(2026, 12, 31)
WEEK = (date(2026, 3, 2), date(2026, 3, 8))


def scenario(kind: str, members: int, span: tuple[date, date]) -> dict[str, float]:
    from bot.clock import SHANGHAI
    from bot.config import Settings
    from bot.db import make_engine, session_scope, upgrade
    from bot.demo import generate_bureau, load_demo
    from bot.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        start = datetime(2026, 1, 1, 8, 0, tzinfo=SHANGHAI)
        with session_scope(engine) as s:
            if kind == "demo":
                load_demo(session=s, now=start)
            else:
                generate_bureau(
                    session=s,
                    members=members,
                    branches=max(1, members // 20),
                    now=start,
                    year_of_data=True,
                )
        engine.dispose()
        settings = Settings()
        settings.database.url = url
        t0, c0 = time.perf_counter(), time.process_time()
        messages = simulate(settings, *span)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parts = sum(len(m.parts) * len(m.to) for m in messages)
    return {
        "seconds": wall,
        "cpu": cpu,
        "messages": len(messages),
        "deliveries": parts,
        "rss_mb": rss,
    }


def run_child(kind: str, members: int, span: tuple[date, date]) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--members",
            str(members),
            "--from",
            str(span[0]),
            "--to",
            str(span[1]),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--only", choices=("demo", "generated"))
    parser.add_argument("--child")
    parser.add_argument("--from", dest="first", default=str(FIRST))
    parser.add_argument("--to", dest="last", default=str(LAST))
    args = parser.parse_args()
    if args.child:
        span = (date.fromisoformat(args.first), date.fromisoformat(args.last))
        print(json.dumps(scenario(args.child, args.members, span)))
        return

    bare = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(f"baseline: a bare interpreter's max RSS {int(bare) / 1024:.0f} MB")
    targets = {"demo": 30.0, "generated": 180.0}
    for kind in ("demo", "generated"):
        if args.only and kind != args.only:
            continue
        label = "demo bureau (30 members)" if kind == "demo" else f"{args.members} members"
        week = run_child(kind, args.members, WEEK)
        year = run_child(kind, args.members, (FIRST, LAST))
        ok = year["seconds"] < targets[kind] and year["rss_mb"] < 300
        print(
            f"{label}: a year in {year['seconds']:.1f} s (cpu {year['cpu']:.1f} s), "
            f"{year['messages']:.0f} messages / {year['deliveries']:.0f} reminder deliveries, "
            f"max RSS {year['rss_mb']:.0f} MB; target < {targets[kind]:.0f} s and < 300 MB: "
            f"{'OK' if ok else 'MISSED'}"
        )
        print(
            f"  baseline, one week (2–8 March) of the same bureau: {week['seconds']:.1f} s, "
            f"max RSS {week['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
