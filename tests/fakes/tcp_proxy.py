"""A TCP proxy on loopback that can play a database restart (Toxiproxy's ``down`` toxic).

``TcpProxy(("127.0.0.1", 5432))`` listens on a free loopback port and forwards every
connection to the upstream. :meth:`TcpProxy.cut` drops every open connection (both ends are
reset, so the server ends those sessions and their advisory locks) and stops listening, so
new connections are refused, as while PostgreSQL restarts; :meth:`TcpProxy.restore` listens
again on the same port. :meth:`TcpProxy.outage` does both, ``seconds`` apart. The shared
PostgreSQL server itself is never touched.

It runs its own asyncio loop in a daemon thread; every method is safe to call from any
other thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    accepted: int = 0
    """Connections forwarded to the upstream."""
    dropped: int = 0
    """Open connections reset by :meth:`TcpProxy.cut`."""
    outages: int = 0


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self.host = host
        self.port = port
        self.stats = ProxyStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        """(client, upstream) of every open connection."""
        self._restore_at: threading.Timer | None = None

    # --- control --------------------------------------------------------------------------

    def start(self) -> int:
        """Listen; returns the port (a free one unless given)."""
        self._thread.start()
        self._call(self._listen())
        return self.port

    @property
    def listening(self) -> bool:
        return self._server is not None

    def cut(self) -> None:
        """Reset every connection and refuse new ones until :meth:`restore`."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen())

    def outage(self, seconds: float, *, wait: bool = False) -> None:
        """:meth:`cut` now and :meth:`restore` ``seconds`` later (in the background unless
        ``wait``)."""
        self.cut()
        self.stats.outages += 1
        if wait:
            time.sleep(seconds)
            self.restore()
            return
        self._restore_at = threading.Timer(seconds, self.restore)
        self._restore_at.daemon = True
        self._restore_at.start()

    def close(self) -> None:
        if self._restore_at is not None:
            self._restore_at.cancel()
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inside the loop ------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        for attempt in range(50):
            try:
                self._server = await asyncio.start_server(
                    self._link, self.host, self.port, reuse_address=True
                )
                break
            except OSError:
                if attempt == 49 or not self.port:
                    raise
                await asyncio.sleep(0.1)
        assert self._server is not None
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links):
            for writer in link:
                _reset(writer)
            self.stats.dropped += 1
        self._links.clear()
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0.05)  # let the pumps see it and end

    async def _link(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)
            return
        if self._server is None:  # cut while we were connecting
            _reset(client_w)
            _reset(up_w)
            return
        self.stats.accepted += 1
        link = (client_w, up_w)
        self._links.add(link)
        try:
            await asyncio.gather(self._pump(client_r, up_w), self._pump(up_r, client_w))
        finally:
            self._links.discard(link)
            for w in link:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end the other, so the server sees its session close.
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed server's peer would see."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
