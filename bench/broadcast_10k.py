"""A notice to 10,000 members through the fake WeCom, 50 ms per API call.

The notice is 10,000 outbox rows with one body (what a 全体 broadcast enqueues). The real
dispatcher and ``WeComChannel`` deliver them to a fake WeCom running in its own process
with 50 ms latency on every call. Printed: message/send calls (target: exactly 10, 1000
userids each), members who got it (target: all, once), the time from the dispatcher's first
claim to the last row marked sent (target < 2 s), and the dispatcher process's RSS.
Baseline from the same run: the same 10 payloads POSTed straight to the fake, one after
another (the floor set by WeCom's latency alone).

Run:  python bench/broadcast_10k.py [--members 10000] [--latency 0.05] [--batch-size N (default: the config's)]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402

from bot.fake_wecom import (  # noqa: E402
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
)

TEXT = "【通知】请各支部于12月5日前报送本年度组织生活会方案，回复「收到 12」确认。"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_fake(port: int, latency: float) -> None:
    import uvicorn

    from bot.fake_wecom import FakeWeCom

    fake = FakeWeCom(latency=latency)
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def deliver(args: argparse.Namespace, base: str, db: Path) -> float:
    from sqlmodel import Session

    from bot.channels.wecom import WeComChannel
    from bot.clock import SystemClock
    from bot.config import Settings
    from bot.db import make_engine, upgrade
    from bot.outbox import Dispatcher, Outgoing, enqueue, text_body

    settings = Settings()
    settings.database.url = f"sqlite:///{db}"
    if args.batch_size:
        settings.outbox.batch_size = args.batch_size
    w = settings.wecom
    w.corp_id, w.agent_id, w.secret, w.api_base = (
        DEFAULT_CORP_ID,
        DEFAULT_AGENT_ID,
        DEFAULT_SECRET,
        base,
    )
    w.token, w.encoding_aes_key = DEFAULT_TOKEN, DEFAULT_AES_KEY
    engine = make_engine(settings.database.url)
    upgrade(engine)
    clock = SystemClock()
    users = [f"m{i:05d}" for i in range(args.members)]
    with Session(engine) as session:
        enqueue(
            session,
            [
                Outgoing(f"notice:12:{u}", u, text_body(TEXT), clock.now(), rule="notice")
                for u in users
            ],
            now=clock.now(),
        )
        session.commit()
    channel = WeComChannel(settings=settings, engine=engine, clock=clock, office_report=False)
    dispatcher = Dispatcher(
        engine=engine, channels={"wecom": channel}, clock=clock, settings=settings.outbox
    )
    spent = _instrument(dispatcher, channel)
    try:
        await channel.api.token()  # a running bot has its token already
        cpu = time.process_time()
        started = time.perf_counter()
        report = await dispatcher.drain()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await channel.aclose()
        engine.dispose()
    print(
        f"dispatcher: claimed {report.claimed}, sent {report.sent}, "
        f"retried {report.retried}, failed {report.failed}"
    )
    print(
        f"where the time went: outbox claim {spent['claim']:.2f} s, mark {spent['mark']:.2f} s, "
        f"channel {spent['send']:.2f} s (of which waiting on the API {spent['api']:.2f} s); "
        f"CPU of this process {cpu:.2f} s"
    )
    return elapsed


def _instrument(dispatcher: Any, channel: Any) -> dict[str, float]:
    """Wrap the dispatcher's claim/mark and the channel's send/API call with timers."""
    spent = {"claim": 0.0, "mark": 0.0, "send": 0.0, "api": 0.0}

    def timed(obj: Any, name: str, key: str) -> None:
        inner = getattr(obj, name)
        if asyncio.iscoroutinefunction(inner):

            async def wrapped_async(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return await inner(*a, **k)
                finally:
                    spent[key] += time.perf_counter() - t

            setattr(obj, name, wrapped_async)
        else:

            def wrapped(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return inner(*a, **k)
                finally:
                    spent[key] += time.perf_counter() - t

            setattr(obj, name, wrapped)

    timed(dispatcher, "claim", "claim")
    timed(dispatcher, "_mark", "mark")
    timed(channel, "send", "send")
    timed(channel.api, "send_message", "api")
    return spent


async def baseline(base: str, members: int) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(
            base + "/cgi-bin/gettoken",
            params={"corpid": DEFAULT_CORP_ID, "corpsecret": DEFAULT_SECRET},
        )
        token = r.json()["access_token"]
        users = [f"b{i:05d}" for i in range(members)]
        started = time.perf_counter()
        for start in range(0, members, 1000):
            payload = {
                "touser": "|".join(users[start : start + 1000]),
                "agentid": DEFAULT_AGENT_ID,
                "msgtype": "text",
                "text": {"content": TEXT},
            }
            await client.post(
                base + "/cgi-bin/message/send", params={"access_token": token}, json=payload
            )
        return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="outbox.batch_size (rows per claim; default: the config's)",
    )
    ap.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.latency)
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(port), "--latency", str(args.latency)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/_calls", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the fake WeCom did not start") from None
                time.sleep(0.1)
        db = Path(tempfile.mkdtemp(prefix="mofan-bench-")) / "broadcast.db"
        elapsed = asyncio.run(deliver(args, base, db))
        sends = httpx.get(base + "/_calls", params={"api": "message/send"}).json()["calls"]
        inbox = httpx.get(base + "/_inbox").json()["inbox"]
        got = sum(1 for u, msgs in inbox.items() if u.startswith("m") and len(msgs) == 1)
        doubled = sum(1 for u, msgs in inbox.items() if u.startswith("m") and len(msgs) > 1)
        sizes = sorted({len(c["body"]["touser"].split("|")) for c in sends})
        floor = asyncio.run(baseline(base, args.members))
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    now_rss, peak = rss_mb()
    print(f"message/send calls: {len(sends)} (target 10), userids per call: {sizes}")
    print(f"members who got it once: {got} of {args.members}, twice or more: {doubled}")
    print(
        f"time from first claim to last sent: {elapsed:.2f} s (target < 2 s); "
        f"baseline, the same {len(sends)} calls straight to the fake: {floor:.2f} s"
    )
    print(f"dispatcher process RSS {now_rss:.0f} MB (peak {peak:.0f} MB)")


if __name__ == "__main__":
    main()
