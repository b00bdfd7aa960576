"""Limits the WeCom side enforces silently, enforced here first: byte caps and send rates.

WeCom truncates text over its byte cap and *drops* messages over its per-member rate
without an error (wecom-api.md §0.7), so the channels split long text on line boundaries and
pace each recipient themselves; whatever exceeds a rate goes back to the outbox as a retry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-8 bytes, cut at line ends where possible.

    A single line longer than the cap is cut between characters (never inside one).
    """
    if len(text.encode("utf-8")) <= limit:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in _cut_long_lines(text.split("\n"), limit):
        n = len(line.encode("utf-8"))
        extra = n + (1 if current else 0)
        if current and size + extra > limit:
            parts.append("\n".join(current))
            current, size = [line], n
        else:
            current.append(line)
            size += extra
    if current:
        parts.append("\n".join(current))
    return [p for p in parts if p.strip()] or [text[:1]]


def _cut_long_lines(lines: Iterable[str], limit: int) -> Iterable[str]:
    for line in lines:
        if len(line.encode("utf-8")) <= limit:
            yield line
            continue
        chunk: list[str] = []
        size = 0
        for ch in line:
            n = len(ch.encode("utf-8"))
            if size + n > limit:
                yield "".join(chunk)
                chunk, size = [], 0
            chunk.append(ch)
            size += n
        if chunk:
            yield "".join(chunk)


class Pacer:
    """Sliding-window rate limits per key (a member, a robot), in one process.

    ``windows`` are ``(seconds, most sends)`` pairs, e.g. WeCom's per-member 30 a minute and
    1000 an hour. A key's history older than the longest window is forgotten.
    """

    def __init__(self, windows: Iterable[tuple[float, int]]) -> None:
        self.windows = sorted(windows)
        self.horizon = max(s for s, _ in self.windows)
        self.tightest = min(most for _, most in self.windows)
        self._sent: dict[str, deque[float]] = {}

    def _history(self, key: str, now: float) -> deque[float]:
        q = self._sent.setdefault(key, deque())
        while q and q[0] <= now - self.horizon:
            q.popleft()
        return q

    def allows(self, key: str, now: datetime, cost: int = 1) -> bool:
        """Whether ``cost`` more sends to ``key`` now stay inside every window."""
        t = now.timestamp()
        q = self._history(key, t)
        if len(q) + cost <= self.tightest:
            return True  # fewer sends in the longest window than the tightest cap allows
        for seconds, most in self.windows:
            recent = sum(1 for s in q if s > t - seconds) if seconds < self.horizon else len(q)
            if recent + cost > most:
                return False
        return True

    def record(self, key: str, now: datetime, cost: int = 1) -> None:
        q = self._history(key, now.timestamp())
        q.extend([now.timestamp()] * cost)

    def take(self, key: str, now: datetime, cost: int = 1) -> bool:
        """Record ``cost`` sends if they fit; False (nothing recorded) if they do not."""
        if not self.allows(key, now, cost):
            return False
        self.record(key, now, cost)
        return True

    def forget(self, key: str, cost: int = 1) -> None:
        """Undo the last ``cost`` sends to ``key`` (the call did not go out)."""
        q = self._sent.get(key)
        while q and cost > 0:
            q.pop()
            cost -= 1
