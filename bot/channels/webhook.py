"""``RobotChannel``: a branch's group chat through its group robot (群机器人 webhook).

An outbox row for a robot has ``channel="robot"`` and ``recipient`` = the **branch name**
(``Org.name``; readable in logs and in ``mofan plan``). The webhook key is looked up in
``Org.robot_key`` at send time, so a key changed by re-importing the roster's 组织 sheet
applies at once, and the key (which is the credential) is never copied into the outbox. A
``robot_key`` may also be the whole webhook URL as WeCom shows it.

Limits (wecom-api.md §4.2): 20 messages a minute per robot, paced here; text up to 2048
bytes and markdown up to 4096, longer ones sent in parts cut at line ends. A body may carry
``mentioned_list`` (userids to @-mention in text messages; markdown uses ``<@userid>``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from bot.channels.base import OutboxRow, SendOutcome
from bot.channels.limits import Pacer, split_text
from bot.clock import Clock
from bot.config import Settings
from bot.metrics import SENDS, WECOM_API_ERRORS
from bot.models import Org
from bot.outbox import Outgoing

log = logging.getLogger("mofan.robot")

ROBOT_WINDOWS = ((60.0, 20),)
TEXT_BYTES = 2048
MARKDOWN_BYTES = 4096
RETRYABLE = frozenset({-1, 45009, 45033})
INVALID_KEY = 93000


def robot_outgoing(
    branch: Org,
    text: str,
    key: str,
    due_at: datetime,
    *,
    settings: Settings | None = None,
    mentions: tuple[str, ...] | list[str] = (),
    markdown: str | None = None,
) -> Outgoing | None:
    """The outbox row that posts ``text`` in ``branch``'s group, or None.

    None when the branch has no robot key, or when ``settings`` is given and its
    ``wecom.robot_broadcast`` switch is off (callers that pass no settings have checked it).
    The row's key is ``<key>:robot:<branch id>``.
    """
    if not branch.robot_key:
        return None
    if settings is not None and not settings.wecom.robot_broadcast:
        return None
    body: dict[str, Any] = {"msgtype": "text", "text": text}
    if markdown:
        body = {"msgtype": "markdown", "markdown": markdown, "text": text}
    if mentions:
        body["mentioned_list"] = list(mentions)
    return Outgoing(
        key=f"{key}:robot:{branch.id}",
        recipient=branch.name,
        body=body,
        due_at=due_at,
        channel="robot",
        rule="robot",
    )


def rid(row: OutboxRow) -> int:
    assert row.id is not None  # rows handed to a channel come from the table
    return row.id


def webhook_url(api_base: str, robot_key: str) -> str:
    if robot_key.startswith(("http://", "https://")):
        return robot_key
    return f"{api_base.rstrip('/')}/cgi-bin/webhook/send?key={robot_key}"


def robot_payloads(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What one body becomes on the webhook, split to the byte caps; mentions go on the first."""
    kind = body.get("msgtype", "text")
    mentions = list(body.get("mentioned_list") or [])
    if kind == "markdown":
        content = str(body.get("markdown") or body.get("text") or "")
        return [
            {"msgtype": "markdown", "markdown": {"content": p}}
            for p in split_text(content, MARKDOWN_BYTES)
        ]
    text = str(body.get("text") if kind == "text" else body.get("text") or "")
    parts: list[dict[str, Any]] = [
        {"msgtype": "text", "text": {"content": p}} for p in split_text(text, TEXT_BYTES)
    ]
    if mentions:
        parts[0]["text"]["mentioned_list"] = mentions
    return parts


class RobotChannel:
    name = "robot"
    max_batch = 50

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self._client = client
        self._own_client = client is None
        self.pacer = Pacer(ROBOT_WINDOWS)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
    ) -> RobotChannel:
        from bot.clock import SystemClock
        from bot.db import make_engine

        return cls(
            settings=settings,
            engine=engine or make_engine(settings.database.url),
            clock=clock or SystemClock(),
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.wecom.timeout_seconds)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    def _keys(self, branches: set[str]) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.execute(
                select(col(Org.name), col(Org.robot_key)).where(col(Org.name).in_(branches))
            ).all()
        return {name: key for name, key in rows if key}

    async def send(self, batch: list[OutboxRow]) -> SendOutcome:
        out = SendOutcome()
        if not batch:
            return out
        keys = self._keys({r.recipient for r in batch})
        parts = robot_payloads(batch[0].body)
        now = self.clock.now()
        for row in batch:
            key = keys.get(row.recipient)
            if key is None:
                out.rejected[rid(row)] = f"branch {row.recipient!r} has no group robot key"
                continue
            if not self.pacer.take(key, now, cost=len(parts)):
                out.retry[rid(row)] = "paced: robot over 20/min"
                SENDS.labels(result="paced").inc()
                continue
            verdict = await self._post_all(key, parts)
            if verdict is None:
                out.delivered.add(rid(row))
                SENDS.labels(result="delivered").inc()
            elif verdict[0]:
                self.pacer.forget(key, len(parts))
                out.retry[rid(row)] = verdict[1]
                SENDS.labels(result="retry").inc()
            else:
                out.rejected[rid(row)] = verdict[1]
                SENDS.labels(result="rejected").inc()
        return out

    async def _post_all(self, key: str, parts: list[dict[str, Any]]) -> tuple[bool, str] | None:
        """None when every part went out, else (retry?, reason)."""
        url = webhook_url(self.settings.wecom.api_base, key)
        for part in parts:
            try:
                resp = await self.client.post(url, json=part)
                data: dict[str, Any] = (
                    resp.json()
                    if resp.status_code == 200
                    else {"errcode": -1, "errmsg": f"HTTP {resp.status_code}"}
                )
            except (httpx.HTTPError, ValueError) as exc:
                data = {"errcode": -1, "errmsg": type(exc).__name__}
            code = int(data.get("errcode", 0) or 0)
            if code == 0:
                continue
            WECOM_API_ERRORS.labels(api="webhook/send", errcode=str(code)).inc()
            reason = f"robot errcode {code}: {data.get('errmsg', '')}"[:300]
            if code == INVALID_KEY:
                log.error("group robot key refused (93000): check the 组织 sheet's 群机器人 column")
            return (code in RETRYABLE, reason)
        return None
