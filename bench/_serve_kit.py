"""Shared parts of the benchmarks that drive a real ``mofan serve`` over loopback.

- a generated bureau (:func:`build_bureau`) and a config for it (:func:`write_config`);
- the bare baseline app (:func:`serve_baseline`, started by :func:`baseline_command`): it
  verifies, decrypts and encrypts a fixed reply on the same stack as ``mofan serve``;
- WeCom's side of the callback as raw HTTP/1.1 requests (:func:`requests_for`,
  :func:`message_stream`, :func:`wire`), signed and encrypted as ``WeComPlayer`` does;
- two clients on raw sockets that cost little: keep-alive connections loaded as fast as the
  server answers (:func:`load`, :class:`Server`), and one new connection per request fired
  on a schedule (:func:`burst`);
- the serve process's memory and CPU from ``/proc`` (:func:`rss`, :func:`cpu_seconds`).

Used by bench/callback_throughput.py, bench/load_serve.py and tests/test_load_serve.py.
Run as a script it serves the baseline: ``python bench/_serve_kit.py --serve-baseline PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

# FastAPI at module level: it resolves the baseline route's (string) annotations here.
from fastapi import FastAPI, Request, Response  # noqa: E402

from bot.clock import SHANGHAI  # noqa: E402
from bot.fake_wecom import (  # noqa: E402
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
    WeComPlayer,
)

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI)
MOFAN = str(Path(sys.executable).with_name("mofan"))
"""The ``mofan`` console script of the interpreter running the bench."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def db_url(target: Path | str) -> str:
    """A SQLite file (a Path) or a database URL (a str) as a URL."""
    return f"sqlite:///{target}" if isinstance(target, Path) else target


def build_bureau(target: Path | str, members: int, branches: int = 20) -> list[str]:
    """A generated bureau of ``members`` in a fresh database; returns the active userids.

    ``target``: a SQLite file, or a PostgreSQL URL whose public schema is dropped first.
    """
    from sqlalchemy import select
    from sqlmodel import Session, col

    from bot.clock import to_utc
    from bot.demo import generate_bureau
    from bot.models import Member
    from tests.fakes.database import fresh_database

    url = db_url(target)
    engine = fresh_database(url)
    with Session(engine) as session:
        generate_bureau(session=session, members=members, branches=branches, now=to_utc(NOW))
        session.commit()
        userids = list(session.scalars(select(col(Member.userid)).where(col(Member.active))))
    engine.dispose()
    return userids


def write_config(path: Path, target: Path | str, *, api_base: str | None = None) -> None:
    """A mofan.toml for the bench's bureau and the demo WeCom credentials.

    With ``api_base`` (a fake WeCom) the bot sends through it, at any hour of today: the
    send window is the whole day and today is a workday, so a broadcast goes out at once.
    """
    lines = ["[database]", f'url = "{db_url(target)}"']
    if api_base:
        today = datetime.now(SHANGHAI).date().isoformat()
        lines += [
            "[bot]",
            'channel = "wecom"',
            'send_window = ["00:00", "23:59"]',
            "[calendar]",
            f"extra_workdays = [{today}]",
        ]
    lines += [
        "[wecom]",
        f'corp_id = "{DEFAULT_CORP_ID}"',
        f"agent_id = {DEFAULT_AGENT_ID}",
        f'token = "{DEFAULT_TOKEN}"',
        f'encoding_aes_key = "{DEFAULT_AES_KEY}"',
    ]
    if api_base:
        lines += [f'secret = "{DEFAULT_SECRET}"', f'api_base = "{api_base}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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


def baseline_command(port: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)]


def serve_command(config: Path, port: int, *extra: str) -> list[str]:
    return [MOFAN, "--config", str(config), "serve", "--port", str(port), *extra]


# --- WeCom's requests --------------------------------------------------------------------


def player() -> WeComPlayer:
    """Signs and encrypts as WeCom does, and verifies and decrypts the bot's replies."""
    return WeComPlayer(
        url="http://unused",
        token=DEFAULT_TOKEN,
        encoding_aes_key=DEFAULT_AES_KEY,
        corp_id=DEFAULT_CORP_ID,
        agent_id=DEFAULT_AGENT_ID,
    )


def wire(p: WeComPlayer, userid: str, text: str, msg_id: int, *, close: bool = False) -> bytes:
    """The raw HTTP/1.1 POST WeCom makes to the callback for a member's text message."""
    params, body = p.envelope(p.text_xml(userid, text, msg_id=msg_id))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    head = (
        f"POST /wecom/callback?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


def message_stream(
    userids: Sequence[str], seed: int, say: Callable[[random.Random], str] | None = None
) -> Iterator[bytes]:
    """Endless new messages (fresh MsgIds) from members chosen at random; ``say`` picks the
    text (帮助 when not given)."""
    p = player()
    rng = random.Random(seed)
    try:
        for i in itertools.count():
            text = say(rng) if say else "帮助"
            yield wire(p, rng.choice(userids), text, msg_id=seed * 10_000_000 + i)
    finally:
        p.close()


def requests_for(
    userids: Sequence[str], n: int, seed: int, say: Callable[[random.Random], str] | None = None
) -> list[bytes]:
    return list(itertools.islice(message_stream(userids, seed, say), n))


# --- clients -----------------------------------------------------------------------------


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


@dataclass
class Loaded:
    """What one run of :func:`load` saw."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    empty: int = 0
    """HTTP 200 with an empty body (the reply went, or goes, through the API)."""
    samples: list[bytes] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return self.count - self.statuses[200]


async def load(
    port: int,
    reqs: Iterable[bytes],
    concurrency: int,
    *,
    seconds: float | None = None,
    keep_samples: int = 5,
    rate: float | None = None,
) -> Loaded:
    """``concurrency`` keep-alive connections, each sending its next request as soon as the
    last is answered, until ``reqs`` runs out or ``seconds`` have passed.

    With ``rate`` (requests per second in all), each connection instead sends on a fixed
    schedule (``concurrency / rate`` apart, connections staggered), and a latency counts from
    when the request was due to leave, so a server that falls behind is charged for the
    wait (no coordinated omission)."""
    source = iter(reqs)
    out = Loaded()
    stop_at = time.perf_counter() + seconds if seconds else float("inf")
    gap = concurrency / rate if rate else 0.0

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        due = time.perf_counter() + gap * i / concurrency
        for req in source:
            if gap:
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                t = due
                due += gap
            else:
                t = time.perf_counter()
            writer.write(req)
            status, body = await _read_response(reader)
            out.latencies.append(time.perf_counter() - t)
            out.statuses[status] += 1
            if status == 200 and not body:
                out.empty += 1
            elif status == 200 and len(out.samples) < keep_samples:
                out.samples.append(body)
            if t >= stop_at:
                break
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    out.elapsed = time.perf_counter() - started
    return out


@dataclass(frozen=True)
class Shot:
    """One request of a burst: when it left (seconds after the burst began), what came back."""

    index: int
    sent_at: float
    latency: float
    status: int
    """0 when the connection failed."""
    body: bytes
    error: str = ""


async def burst(port: int, reqs: Sequence[bytes], within: float) -> list[Shot]:
    """Each request on its own new connection, the starts spread evenly over ``within``
    seconds (as WeCom would deliver many members' messages); latency includes the connect."""
    t0 = time.perf_counter() + 0.05
    step = within / max(len(reqs), 1)

    async def one(i: int, req: bytes) -> Shot:
        await asyncio.sleep(max(0.0, t0 + i * step - time.perf_counter()))
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(req)
            status, body = await _read_response(reader)
            writer.close()
        except (OSError, asyncio.IncompleteReadError) as exc:
            return Shot(i, started - t0, time.perf_counter() - started, 0, b"", repr(exc))
        return Shot(i, started - t0, time.perf_counter() - started, status, body)

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs))))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.999999) - 1))]


# --- the server process ------------------------------------------------------------------


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
    """(VmRSS now, VmHWM peak) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its live children (``mofan serve
    --workers N`` serves from child processes); robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


class Server:
    """A server in its own process, and what the loads recorded against it."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path) -> None:
        self.name, self.port = name, port
        with log.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, self.proc)
        self.rps: list[float] = []
        self.cpu_ms: list[float] = []
        self.latencies: list[float] = []
        self.samples: list[bytes] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.empty = 0

    def load(
        self,
        reqs: Iterable[bytes],
        concurrency: int,
        record: bool = True,
        *,
        seconds: float | None = None,
        keep_samples: int = 5,
    ) -> Loaded:
        cpu = cpu_seconds(self.proc.pid)
        got = asyncio.run(
            load(self.port, reqs, concurrency, seconds=seconds, keep_samples=keep_samples)
        )
        if not record:
            return got
        self.cpu_ms.append((cpu_seconds(self.proc.pid) - cpu) / max(got.count, 1) * 1000)
        self.rps.append(got.count / got.elapsed)
        self.latencies += got.latencies
        self.samples += got.samples
        self.statuses += got.statuses
        self.errors += got.errors + got.empty
        self.empty += got.empty
        return got

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
            "p99": percentile(lat, 0.99) * 1000,
            "rss": mem,
        }
        print(
            f"{self.name:9s} {out['rps']:6.0f} req/s (median of rounds {', '.join(f'{r:.0f}' for r in self.rps)})  "
            f"p50 {out['p50']:6.1f} ms  p99 {out['p99']:6.1f} ms  server CPU {out['cpu_ms']:.2f} ms/req  "
            f"errors {self.errors}  RSS {mem[0]:.0f} MB (peak {mem[1]:.0f} MB)"
        )
        return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Serve the bare baseline app.")
    ap.add_argument("--serve-baseline", type=int, required=True, metavar="PORT")
    serve_baseline(ap.parse_args().serve_baseline)
