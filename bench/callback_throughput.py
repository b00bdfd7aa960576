"""Callback throughput: encrypted 帮助 from 1,000 members at 50 concurrent connections.

Two servers on the same stack (uvicorn + FastAPI, the same logging), each in its own
process, loaded by the same client in this process:

- **bot**: ``mofan serve`` on a SQLite bureau of 1,000 members — verify, decrypt, dedupe
  claim, the real router and ``帮助`` handler, the stored reply, encrypt.
- **baseline**: an app that only verifies, decrypts and encrypts a fixed reply.

Every request is a new message (a fresh MsgId) from a member chosen at random. The client
is a minimal keep-alive HTTP/1.1 client on raw sockets so that it costs little. Printed:
requests/s, p50/p99 latency, the ratio bot/baseline (target ≥ 50 %), and the
bot process's RSS (VmRSS now, VmHWM peak; target < 200 MB). The bureau, the servers and the
client are bench/_serve_kit.py's (shared with bench/load_serve.py).

Latency (target p99 < 100 ms): flat out, 50 connections that each wait for their answer
see about 50 / throughput per request whatever the server does (the baseline's own p99 is
near 100 ms), so the target is measured where it means something: a paced, open-loop run
at the target's throughput (half the baseline's) from the same 50 connections, latency
counted from when each request was due to leave. Both servers get the same run.

Run:  python bench/callback_throughput.py [--requests 6000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._serve_kit import (  # noqa: E402
    Server,
    baseline_command,
    build_bureau,
    cpu_seconds,
    free_port,
    load,
    percentile,
    player,
    requests_for,
    serve_command,
    write_config,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="per server per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--no-scheduler", action="store_true", help="serve without the scheduler")
    ap.add_argument(
        "--paced-seconds",
        type=float,
        default=10,
        help="length of the open-loop run at half the baseline's throughput (0: skip)",
    )
    args = ap.parse_args()
    args.serve_args = ["--no-scheduler"] if args.no_scheduler else []

    tmp = Path(tempfile.mkdtemp(prefix="mofan-bench-"))
    db, cfg = tmp / "bench.db", tmp / "mofan.toml"
    userids = build_bureau(db, args.members)
    write_config(cfg, db)
    print(
        f"bureau: {len(userids)} members; {args.rounds} rounds of {args.requests} requests per server "
        f"at {args.concurrency} connections, servers loaded in turn"
    )
    n = args.requests
    reqs = requests_for(userids, n * (args.rounds + 1), seed=2)
    bot_port, base_port = free_port(), free_port()
    base = Server("baseline", baseline_command(base_port), base_port, tmp / "baseline.log")
    bot = Server(
        "bot 帮助", serve_command(cfg, bot_port, *args.serve_args), bot_port, tmp / "bot.log"
    )
    try:
        base.load(reqs[:500], args.concurrency, record=False)  # warm up both
        bot.load(reqs[500:1000], args.concurrency, record=False)
        for r in range(args.rounds):
            chunk = reqs[(r + 1) * n : (r + 2) * n]
            base.load(chunk, args.concurrency)  # the baseline does not dedupe: reuse is fine
            bot.load(chunk, args.concurrency)
        b_rps = statistics.median(base.rps)
        paced = {}
        if args.paced_seconds:
            # Latency at the target's throughput: both servers offered half the baseline's
            # rate, open loop, from the same 50 connections.
            rate = b_rps * 0.5
            # New messages (the bot dedupes by MsgId), as many as the run needs.
            fresh = requests_for(userids, int(rate * args.paced_seconds), seed=7)
            for server in (base, bot):
                cpu = cpu_seconds(server.proc.pid)
                got = asyncio.run(load(server.port, fresh, args.concurrency, rate=rate))
                cpu_ms = (cpu_seconds(server.proc.pid) - cpu) / max(got.count, 1) * 1000
                lat = sorted(got.latencies)
                paced[server.name] = (
                    rate,
                    got.count / got.elapsed,
                    statistics.median(lat) * 1000,
                    percentile(lat, 0.99) * 1000,
                    got.errors + got.empty,
                    cpu_ms,
                )
    finally:
        base_mem, bot_mem = base.stop(), bot.stop()
    b, m = base.report(base_mem), bot.report(bot_mem)
    for name, (rate, done, p50, p99, bad, cpu_ms) in paced.items():
        print(
            f"{name:9s} paced at {rate:.0f} req/s (half the baseline's): served {done:.0f} req/s, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, server CPU {cpu_ms:.2f} ms/req, errors {bad}"
        )
    with player() as wecom:
        for body in bot.samples:
            assert "帮助" in wecom.read(200, body.decode()).content, (
                "the bot's reply must verify and decrypt"
            )
    paced_p99 = paced.get(bot.name, (0, 0, 0, float("nan"), 0, 0))[3]
    print(
        f"throughput bot/baseline: {m['rps'] / b['rps']:.0%} by req/s, {b['cpu_ms'] / m['cpu_ms']:.0%} by "
        f"server CPU per request (target >= 50%); bot p99 {paced_p99:.1f} ms at the target "
        f"throughput, {m['p99']:.1f} ms flat out (target < 100 ms); "
        f"bot RSS peak {m['rss'][1]:.0f} MB (target < 200 MB)"
    )
    print(
        "(flat out, 50 connections each waiting for its answer see about 50 / throughput per "
        f"request: the baseline's own p99 is {b['p99']:.0f} ms; the paced run measures latency "
        "at the throughput the target asks for)"
    )
    load1 = os.getloadavg()[0]
    print(
        f"(machine: {os.cpu_count()} CPUs, load average {load1:.1f} — other work skews req/s, not CPU/req)"
    )


if __name__ == "__main__":
    main()
