"""The console channel: prints each message, and optionally appends it as a JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from bot.channels.base import OutboxRow, SendOutcome


def render_body(body: dict) -> str:
    """The text a person reads, for any body the outbox holds (cards fall back to text)."""
    kind = body.get("msgtype", "text")
    if kind in ("text", "markdown"):
        return str(body.get(kind) or body.get("text") or "")
    if kind == "file":
        return f"[文件] {body.get('path', '')}"
    return str(body.get("text") or body.get("fallback") or json.dumps(body, ensure_ascii=False))


class ConsoleChannel:
    name = "console"
    max_batch = 1000

    def __init__(self, *, log_path: str | Path | None = None, out: TextIO | None = None) -> None:
        self.log_path = Path(log_path) if log_path else None
        self.out = out
        self.sent: list[OutboxRow] = []

    async def send(self, batch: list[OutboxRow]) -> SendOutcome:
        out = self.out or sys.stdout
        if not batch:
            return SendOutcome()
        text = render_body(batch[0].body)
        who = "、".join(m.recipient for m in batch[:10])
        if len(batch) > 10:
            who += f" 等 {len(batch)} 人"
        print(f"→ {who}：{text}", file=out, flush=True)
        if self.log_path:
            with self.log_path.open("a", encoding="utf-8") as fh:
                for m in batch:
                    row = {"key": m.key, "rule": m.rule, "to": m.recipient, "text": text}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.sent.extend(batch)
        return SendOutcome(delivered={m.id for m in batch if m.id is not None})

    async def aclose(self) -> None:
        return None
