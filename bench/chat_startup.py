"""`mofan chat --as USER 帮助` end to end, cold, including interpreter start (target < 1 s).

Baseline from the same run: a bare `python -c pass` (what no Python CLI can beat).
Run: python bench/chat_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time is steadier on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "mofan.toml").write_text(
            f'[database]\nurl = "sqlite:///{cwd}/m.db"\n', encoding="utf-8"
        )
        mofan = [sys.executable, "-m", "bot"]
        subprocess.run([*mofan, "init", "--demo"], cwd=cwd, check=True, capture_output=True)
        chat = [*mofan, "chat", "--as", "zhangwei", "帮助"]
        out = subprocess.run(chat, cwd=cwd, check=True, capture_output=True, text=True).stdout
        assert "帮助" in out, out
        base = [timed([sys.executable, "-c", "pass"], cwd) for _ in range(args.runs)]
        runs = [timed(chat, cwd) for _ in range(args.runs)]
    b, r = statistics.median(w for w, _ in base), statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(
        f"mofan chat 帮助 (cold, median of {args.runs}): {r * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU"
    )
    print(f"baseline python -c pass: {b * 1000:.0f} ms; ratio {r / b:.1f}x")
    print(f"target < 1000 ms: {'met' if r < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
