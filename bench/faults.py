"""A notice to every member while everything goes wrong (issue 8 item 2).

The office sends ``通知 全体 …`` through the encrypted callback of a real ``mofan serve``
process; the notice goes out through the fake WeCom on loopback, which answers 45009, -1,
expired and unknown tokens and late answers to calls it did carry out at random (seeded).
Meanwhile the server is killed with SIGKILL and restarted twice (once while WeCom holds the
answer to a call of the notice), and the database is unavailable for a few seconds while
another answer is on its way (PostgreSQL: a TCP proxy drops every connection and refuses new
ones, as in a restart; SQLite: another connection holds the write lock). The scenario is
``tests/test_faults.py``'s, at bench size.

Printed: members who got the notice exactly once (target: all), twice or more (target: 0),
rows left waiting in the outbox (target: 0; rows given up must carry their reason), the time
from the 通知 to the last member's copy and until the outbox drained, message/send calls and
how many WeCom's duplicate check swallowed, outbox attempts, the faults injected, and the CPU
of the bot processes. Baseline from the same run: the same broadcast with no fault at all.
Exit status 1 on any violation.

Run:  python bench/faults.py [--members 1000] [--database-url postgresql+psycopg://…]
(the default database is a temporary SQLite file; a PostgreSQL URL's public schema is dropped)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


from tests.fakes.database import fresh_database  # noqa: E402
from tests.test_faults import RATES, Outcome, Plan, run_scenario  # noqa: E402


def run(plan: Plan, url: str | None, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True)
    db = url or f"sqlite:///{workdir / 'bench.db'}"
    fresh_database(db).dispose()
    return run_scenario(plan, db, workdir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="outbox.batch_size (default: a fifth of the members, so five dispatcher passes)",
    )
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--outage", type=float, default=5.0, help="seconds the database is away")
    ap.add_argument("--lease", type=int, default=10, help="outbox.lease_seconds")
    ap.add_argument("--api-timeout", type=float, default=2.0, help="wecom.timeout_seconds")
    ap.add_argument(
        "--dispatch-seconds",
        type=float,
        default=0.0,
        help="the dispatcher's tick (default: as shipped, 5 s)",
    )
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds allowed to drain")
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    ap.add_argument("--no-baseline", action="store_true", help="skip the fault-free run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()

    def plan(faults: bool) -> Plan:
        return Plan(
            members=args.members,
            seed=args.seed,
            faults=faults,
            rates=dict(RATES),
            outage=args.outage,
            batch_size=args.batch_size or max(20, args.members // 5),
            lease_seconds=args.lease,
            api_timeout=args.api_timeout,
            latency=0.05,
            dispatch_seconds=args.dispatch_seconds,
            deadline=args.deadline,
        )

    work = Path(tempfile.mkdtemp(prefix="mofan-faults-"))
    cpu = time.process_time()
    started = time.perf_counter()
    base = None if args.no_baseline else run(plan(False), args.database_url, work / "baseline")
    hurt = run(plan(True), args.database_url, work / "faults")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    p = plan(True)
    print(
        f"settings: batch_size {p.batch_size}, lease {p.lease_seconds} s, api timeout "
        f"{p.api_timeout} s, fake latency {p.latency * 1000:.0f} ms/call, dispatcher tick "
        f"{p.dispatch_seconds or 5:g} s, fault rates {p.rates}, seed {p.seed}"
    )
    print("-- with faults")
    for line in hurt.lines():
        print(line)
    if base is not None:
        print("-- baseline: the same broadcast, no faults")
        for line in base.lines()[:5]:
            print(line)
        ratio = hurt.seconds / base.seconds if base.seconds else float("nan")
        print(
            f"time to deliver with faults {hurt.seconds:.1f} s vs {base.seconds:.1f} s "
            f"without ({ratio:.1f}x)"
        )
    print(f"bench wall {elapsed:.0f} s; this process's CPU (fake WeCom, proxy) {cpu:.1f} s")
    violations = hurt.violations + (base.violations if base else [])
    for v in violations:
        print("VIOLATION:", v)
    print(f"violations: {len(violations)}")
    if args.keep or violations:
        print(f"logs: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
