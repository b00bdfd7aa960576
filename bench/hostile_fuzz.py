"""Hostile callbacks at bench size: 100,000+ generated requests, never a 5xx, nothing written.

The generator of tests/test_callback_fuzz.py (bad and missing signatures, truncated, padded
and bit-flipped ciphertext, wrong receive ids, malformed XML, DOCTYPE and entity expansion,
bodies over the limit, random bytes, odd query strings, replays) against the real app, in
process through httpx.ASGITransport, ``--concurrency`` requests at a time. Rows in every table
are counted after each group; nothing may change after the replayable messages are seeded.
Printed: requests, status histogram per kind, 5xx count (must be 0), unexpected statuses,
rows written (must be 0) and requests/s.

Run:  python bench/hostile_fuzz.py [--requests 100000] [--concurrency 20] [--seed 8]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.channels.console import ConsoleChannel  # noqa: E402
from bot.clock import SHANGHAI, FixedClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.db import make_engine, upgrade  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from tests.factories import small_bureau  # noqa: E402
from tests.fakes.wecom import configure_wecom  # noqa: E402
from tests.test_callback_fuzz import Fuzzer, check, row_counts, seed_replayable, send  # noqa: E402


async def fuzz(app: object, engine: object, args: argparse.Namespace) -> int:
    fuzzer = Fuzzer(seed=args.seed)
    statuses: Counter[tuple[str, int]] = Counter()
    problems: Counter[str] = Counter()
    written = 0
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        await seed_replayable(client, fuzzer, 20)
        baseline = row_counts(engine)  # type: ignore[arg-type]
        started = time.perf_counter()
        done = 0
        while done < args.requests:
            group = [fuzzer.next() for _ in range(min(args.concurrency, args.requests - done))]
            codes = await asyncio.gather(*(send(client, a) for a in group))
            for a, code in zip(group, codes, strict=True):
                statuses[(a.kind, code)] += 1
                if (p := check(a.kind, code)) is not None:
                    problems[p] += 1
            now_counts = row_counts(engine)  # type: ignore[arg-type]
            if now_counts != baseline:
                written += sum(abs(x - y) for x, y in zip(now_counts, baseline, strict=True))
                problems["rows written by " + ",".join(sorted({a.kind for a in group}))] += 1
                baseline = now_counts
            done += len(group)
        elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    five = sum(n for (_, code), n in statuses.items() if code >= 500)
    print(f"requests: {total} (+20 seeded valid messages), concurrency {args.concurrency}")
    print(
        "status histogram:",
        dict(sorted(Counter(c for (_, c), n in statuses.items() for _ in range(n)).items())),
    )
    for kind in sorted({k for k, _ in statuses}):
        row = {c: n for (k, c), n in sorted(statuses.items()) if k == kind}
        print(f"  {kind:28s} {row}")
    print(f"5xx: {five}")
    print(f"unexpected statuses: {sum(n for p, n in problems.items() if not p.startswith('rows'))}")
    print(f"rows written for rejected requests: {written}")
    print(f"elapsed: {elapsed:.1f} s, {total / elapsed:.0f} requests/s")
    for p, n in problems.most_common(10):
        print(f"  problem x{n}: {p}")
    return 0 if not problems and five == 0 and written == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # a rejected request logs at INFO; 100k of them is noise
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/fuzz.db"
        engine = make_engine(url)
        upgrade(engine)
        clock = FixedClock(datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI))
        with Session(engine, expire_on_commit=False) as session:
            small_bureau(session)
            session.commit()
        settings = load_settings(None, env=False)
        settings.database.url = url
        configure_wecom(settings, "http://127.0.0.1:9")
        console = ConsoleChannel(out=io.StringIO())  # nothing is sent; no network either
        runtime = Runtime(
            settings=settings,
            clock=clock,
            engine_override=engine,
            channels_override={"console": console, "wecom": console, "robot": console},
        )
        app = create_app(runtime, scheduler=False)
        try:
            return asyncio.run(fuzz(app, engine, args))
        finally:
            app.state.callback.close()
            engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
