"""Callback throughput: encrypted 帮助 from 1,000 members at 50 concurrent connections.

Two servers on the same stack (uvicorn + FastAPI, the same logging), each in its own
process, loaded by the same client in this process:

- **bot**: ``mofan serve`` on a SQLite bureau of 1,000 members — verify, decrypt, dedupe
  claim, the real router and ``帮助`` handler, the stored reply, encrypt.
- **baseline**: an app that only verifies, decrypts and encrypts a fixed reply.

Every request is a new message (a fresh MsgId) from a member chosen at random. The client
is a minimal keep-alive HTTP/1.1 client on raw sockets so that it costs little. Printed:
requests/s, p50/p99 latency, the ratio bot/baseline (target ≥ 50 %, p99 < 100 ms), and the
bot process's RSS (VmRSS now, VmHWM peak; target < 200 MB).

Run:  python bench/callback_throughput.py [--requests 6000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fastapi import FastAPI, Request, Response  # noqa: E402

from bot.clock import SHANGHAI  # noqa: E402
from bot.fake_wecom import (  # noqa: E402
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_TOKEN,
    WeComPlayer,
)

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_bureau(db: Path, members: int) -> list[str]:
    from sqlalchemy import select
    from sqlmodel import Session, col

    from bot.clock import to_utc
    from bot.db import make_engine, upgrade
    from bot.demo import generate_bureau
    from bot.models import Member

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    with Session(engine) as session:
        generate_bureau(session=session, members=members, branches=20, now=to_utc(NOW))
        session.commit()
        userids = list(session.scalars(select(Member.userid).where(col(Member.active))))
    engine.dispose()
    return userids


def write_config(path: Path, db: Path) -> None:
    path.write_text(
        "\n".join(
            [
                "[database]",
                f'url = "sqlite:///{db}"',
                "[wecom]",
                f'corp_id = "{DEFAULT_CORP_ID}"',
                f"agent_id = {DEFAULT_AGENT_ID}",
                f'token = "{DEFAULT_TOKEN}"',
                f'encoding_aes_key = "{DEFAULT_AES_KEY}"',
            ]
        ),
        encoding="utf-8",
    )


def serve_baseline(port: int) -> None:
    """The bare app: verify, decrypt, parse, encrypt a fixed reply — same stack as mofan serve."""
    import uvicorn

    from bot.channels.wecom.crypto import CallbackCrypto
    from bot.channels.wecom.protocol import parse_callback, parse_envelope, text_reply_xml
    from bot.logs import setup_logging

    setup_logging()
    crypto = CallbackCrypto(DEFAULT_TOKEN, DEFAULT_AES_KEY, DEFAULT_CORP_ID)
    api = FastAPI()

    @api.post("/wecom/callback")
    async def callback(request: Request) -> Response:
        q = request.query_params
        body = await request.body()
        env = parse_envelope(body)
        msg = parse_callback(
            crypto.verify_and_decrypt(q["msg_signature"], q["timestamp"], q["nonce"], env.encrypt)
        )
        now = int(time.time())
        xml = text_reply_xml(
            to_user=msg.from_user, corp_id=DEFAULT_CORP_ID, create_time=now, content="收到"
        )
        return Response(
            crypto.envelope(xml, timestamp=str(now), nonce=q["nonce"]), media_type="application/xml"
        )

    uvicorn.run(api, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=10)


def requests_for(userids: list[str], n: int, seed: int) -> list[bytes]:
    player = WeComPlayer(
        url="http://unused",
        token=DEFAULT_TOKEN,
        encoding_aes_key=DEFAULT_AES_KEY,
        corp_id=DEFAULT_CORP_ID,
    )
    rng = random.Random(seed)
    out = []
    for i in range(n):
        xml = player.text_xml(rng.choice(userids), "帮助", msg_id=seed * 10_000_000 + i)
        params, body = player.envelope(xml)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        head = (
            f"POST /wecom/callback?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    player.close()
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def load(
    port: int, reqs: list[bytes], concurrency: int
) -> tuple[float, list[float], list[bytes], int]:
    queue = list(reversed(reqs))
    latencies: list[float] = []
    samples: list[bytes] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            req = queue.pop()
            t = time.perf_counter()
            writer.write(req)
            status, body = await _read_response(reader)
            latencies.append(time.perf_counter() - t)
            if status != 200 or not body:
                errors += 1
            elif len(samples) < 5:
                samples.append(body)
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, samples, errors


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def rss(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, log: Path) -> None:
        self.name, self.port = name, port
        with log.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, self.proc)
        self.rps: list[float] = []
        self.cpu_ms: list[float] = []
        self.latencies: list[float] = []
        self.samples: list[bytes] = []
        self.errors = 0

    def load(self, reqs: list[bytes], concurrency: int, record: bool = True) -> None:
        cpu = cpu_seconds(self.proc.pid)
        elapsed, lat, samples, errors = asyncio.run(load(self.port, reqs, concurrency))
        if not record:
            return
        self.cpu_ms.append((cpu_seconds(self.proc.pid) - cpu) / len(reqs) * 1000)
        self.rps.append(len(reqs) / elapsed)
        self.latencies += lat
        self.samples += samples
        self.errors += errors

    def stop(self) -> tuple[float, float]:
        mem = rss(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(timeout=15)
        return mem

    def report(self, mem: tuple[float, float]) -> dict:
        lat = sorted(self.latencies)
        out = {
            "rps": statistics.median(self.rps),
            "cpu_ms": statistics.median(self.cpu_ms),
            "p50": statistics.median(lat) * 1000,
            "p99": lat[int(len(lat) * 0.99) - 1] * 1000,
            "rss": mem,
        }
        print(
            f"{self.name:9s} {out['rps']:6.0f} req/s (median of rounds {', '.join(f'{r:.0f}' for r in self.rps)})  "
            f"p50 {out['p50']:6.1f} ms  p99 {out['p99']:6.1f} ms  server CPU {out['cpu_ms']:.2f} ms/req  "
            f"errors {self.errors}  RSS {mem[0]:.0f} MB (peak {mem[1]:.0f} MB)"
        )
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="per server per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--no-scheduler", action="store_true", help="serve without the scheduler")
    ap.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return
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
    mofan = str(Path(sys.executable).with_name("mofan"))
    bot_port, base_port = free_port(), free_port()
    base = Server(
        "baseline",
        [sys.executable, __file__, "--serve-baseline", str(base_port)],
        base_port,
        tmp / "baseline.log",
    )
    bot = Server(
        "bot 帮助",
        [mofan, "--config", str(cfg), "serve", "--port", str(bot_port), *args.serve_args],
        bot_port,
        tmp / "bot.log",
    )
    try:
        base.load(reqs[:500], args.concurrency, record=False)  # warm up both
        bot.load(reqs[500:1000], args.concurrency, record=False)
        for r in range(args.rounds):
            chunk = reqs[(r + 1) * n : (r + 2) * n]
            base.load(chunk, args.concurrency)  # the baseline does not dedupe: reuse is fine
            bot.load(chunk, args.concurrency)
    finally:
        base_mem, bot_mem = base.stop(), bot.stop()
    b, m = base.report(base_mem), bot.report(bot_mem)
    player = WeComPlayer(
        url="http://unused",
        token=DEFAULT_TOKEN,
        encoding_aes_key=DEFAULT_AES_KEY,
        corp_id=DEFAULT_CORP_ID,
    )
    for body in bot.samples:
        assert "帮助" in player.read(200, body.decode()).content, (
            "the bot's reply must verify and decrypt"
        )
    player.close()
    print(
        f"throughput bot/baseline: {m['rps'] / b['rps']:.0%} by req/s, {b['cpu_ms'] / m['cpu_ms']:.0%} by "
        f"server CPU per request (target >= 50%); bot p99 {m['p99']:.1f} ms (target < 100 ms); "
        f"bot RSS peak {m['rss'][1]:.0f} MB (target < 200 MB)"
    )
    load1 = os.getloadavg()[0]
    print(
        f"(machine: {os.cpu_count()} CPUs, load average {load1:.1f} — other work skews req/s, not CPU/req)"
    )


if __name__ == "__main__":
    main()
