"""The outbox state machine (tests/test_outbox_machine.py) at bench size: 10,000+ steps.

Enqueue, claim, stalled passes, crashes between send and mark, lease expiry, ok / retryable /
timed-out / rejected sends, restarts under new worker ids and clock jumps (forward and back),
against a fake WeCom that applies the duplicate check and counts real deliveries. Printed:
steps run, examples, invariant violations (must be 0) and steps/s.

Run:  python bench/outbox_machine.py [--examples 250] [--steps 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bot.db import make_engine, upgrade  # noqa: E402
from tests.test_outbox_machine import OutboxMachine, run_machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=250)
    ap.add_argument("--steps", type=int, default=50, help="stateful_step_count per example")
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/outbox.db"
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        violations, detail = 0, ""
        try:
            run_machine(engine, examples=args.examples, steps=args.steps)
        except BaseException as exc:  # hypothesis reports the minimal failing sequence
            if isinstance(exc, KeyboardInterrupt):
                raise
            notes = "\n".join(getattr(exc, "__notes__", []))
            violations, detail = 1, f"{type(exc).__name__}: {exc}\n{notes}"
        elapsed = time.perf_counter() - started
        engine.dispose()
    steps = OutboxMachine.total_steps
    print(f"backend: {url.split(':', 1)[0]}")
    print(f"examples: {args.examples} x up to {args.steps} steps")
    print(f"steps run: {steps}")
    print(f"invariant violations: {violations}")
    print(f"elapsed: {elapsed:.1f} s ({steps / elapsed:.0f} steps/s)")
    if detail:
        print(detail[:4000])
    return 0 if violations == 0 and steps >= 10_000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
