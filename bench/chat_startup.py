"""`mofan chat --as USER 帮助` end to end, cold, including interpreter start (target < 1 s).

Baseline from the same run: a bare `python -c pass` (what no Python CLI can beat).
Run: python bench/chat_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "mofan.toml").write_text(f'[database]\nurl = "sqlite:///{cwd}/m.db"\n', encoding="utf-8")
        mofan = [sys.executable, "-m", "bot"]
        subprocess.run([*mofan, "init", "--demo"], cwd=cwd, check=True, capture_output=True)
        chat = [*mofan, "chat", "--as", "zhangwei", "帮助"]
        out = subprocess.run(chat, cwd=cwd, check=True, capture_output=True, text=True).stdout
        assert "帮助" in out, out
        base = [timed([sys.executable, "-c", "pass"], cwd) for _ in range(args.runs)]
        runs = [timed(chat, cwd) for _ in range(args.runs)]
    b, r = statistics.median(base), statistics.median(runs)
    print(f"mofan chat 帮助 (cold, median of {args.runs}): {r * 1000:.0f} ms  (max {max(runs) * 1000:.0f} ms)")
    print(f"baseline python -c pass: {b * 1000:.0f} ms; ratio {r / b:.1f}x; target < 1000 ms: "
          f"{'met' if max(runs) < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
