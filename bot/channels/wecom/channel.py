"""``WeComChannel``: outbox batches to members through the app's ``message/send``.

A batch is up to 1000 rows with one body (the dispatcher groups them), so one call reaches
them all (``touser`` joined by ``|``). What comes back is mapped per row: ``invaliduser`` and
``81013`` are refused for good (and reported to the office once a day, see
:mod:`bot.channels.wecom.report`); 45009, -1, timeouts and configuration errors are retried
by the outbox with backoff; a retry turns on ``enable_duplicate_check`` so that a send whose
first outcome was unknown is not delivered twice.

WeCom drops messages over 30 a minute or 1000 an hour per member without an error, so each
recipient is paced here and the excess goes back to the outbox. Text and markdown over 2048
bytes are sent in parts cut at line ends. Markdown and cards do not render for members who
read WeCom inside WeChat (微工作台): with ``wecom.text_only`` every body goes as its ``text``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bot.channels.base import SendOutcome
from bot.channels.limits import Pacer, split_text
from bot.channels.wecom.api import CONFIG, RETRYABLE, WeComAPI, WeComError
from bot.clock import Clock
from bot.config import Settings, WeComSettings
from bot.metrics import SENDS
from bot.models import OutboxMessage

log = logging.getLogger("mofan.wecom")

MAX_USERS_PER_CALL = 1000
TEXT_BYTES = 2048
MEMBER_WINDOWS = ((60.0, 30), (3600.0, 1000))
"""WeCom's per-app, per-member limits (wecom-api.md §3.6): over them, messages vanish."""
MEDIA_TTL_SECONDS = 2.5 * 86400
"""A media_id lives 3 days; reuse it for less than that."""


@dataclass(frozen=True)
class _Part:
    payload: dict[str, Any]
    card: bool = False


def rid(row: OutboxMessage) -> int:
    """An outbox row's id (rows handed to a channel always come from the table)."""
    assert row.id is not None
    return row.id


def fallback_text(body: dict[str, Any]) -> str:
    """The plain text of any outbox body (cards and markdown carry one in ``text``)."""
    kind = body.get("msgtype", "text")
    value = body.get(kind)
    if kind in ("text", "markdown") and isinstance(value, str):
        return value if kind == "text" else str(body.get("text") or value)
    return str(body.get("text") or "")


_TASK_ID_UNSAFE = re.compile(r"[^0-9A-Za-z_\-@]")


def task_id_for(rows: list[OutboxMessage], part: int, prefix: str = "") -> str:
    """A card's ``task_id`` for one message/send call: unique per app, stable across retries.

    WeCom refuses a task_id it has seen, and one card to 10,000 members goes out in ten
    calls, so the caller's task_id (``notice-12``) is kept only as a readable prefix and the
    outbox ids of the call's rows (which never repeat) make it unique. Stable so that a retry
    of the same rows is byte-identical to the first try, which WeCom's duplicate check drops.
    """
    ids = ",".join(str(r.id) for r in sorted(rows, key=lambda r: r.id or 0))
    digest = hashlib.sha1(ids.encode()).hexdigest()[:16]
    head = _TASK_ID_UNSAFE.sub("", prefix)[:80] or "mofan"
    return f"{head}_{digest}_{part}"


class WeComChannel:
    name = "wecom"
    max_batch = MAX_USERS_PER_CALL

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        api: WeComAPI | None = None,
        text_only: bool | None = None,
        office_report: bool = True,
    ) -> None:
        self.full_settings = settings
        self.settings: WeComSettings = settings.wecom
        self.engine = engine
        self.clock = clock
        self.api = api or WeComAPI(settings=settings.wecom, engine=engine, clock=clock)
        self.text_only = settings.wecom.text_only if text_only is None else text_only
        self.pacer = Pacer(MEMBER_WINDOWS)
        self.office_report = office_report
        self._media: dict[tuple[str, float], tuple[str, float]] = {}
        self._reported_on: date | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
    ) -> WeComChannel:
        from bot.clock import SystemClock
        from bot.db import make_engine

        return cls(
            settings=settings,
            engine=engine or make_engine(settings.database.url),
            clock=clock or SystemClock(),
        )

    async def aclose(self) -> None:
        await self.api.aclose()

    # --- payloads -------------------------------------------------------------------------

    async def _parts(self, body: dict[str, Any]) -> list[_Part]:
        """The message/send payloads (without ``touser``) this body becomes, in order."""
        kind = body.get("msgtype", "text")
        if self.text_only and kind not in ("text", "file"):
            kind, body = "text", {"msgtype": "text", "text": fallback_text(body)}
        if kind == "text":
            return [
                _Part({"msgtype": "text", "text": {"content": p}})
                for p in split_text(str(body.get("text") or ""), TEXT_BYTES)
            ]
        if kind == "markdown":
            content = str(body.get("markdown") or body.get("text") or "")
            return [
                _Part({"msgtype": "markdown", "markdown": {"content": p}})
                for p in split_text(content, TEXT_BYTES)
            ]
        if kind == "template_card":
            card = dict(body.get("template_card") or {})
            return [_Part({"msgtype": "template_card", "template_card": card}, card=True)]
        if kind == "file":
            media_id = await self._media_id(Path(str(body["path"])))
            return [_Part({"msgtype": "file", "file": {"media_id": media_id}})]
        value = body.get(kind)
        if isinstance(value, dict):  # textcard, news … passed through as WeCom spells them
            return [_Part({"msgtype": kind, kind: value})]
        raise ValueError(f"cannot send a {kind!r} body")

    async def _media_id(self, path: Path) -> str:
        stat = path.stat()
        cache_key = (str(path), stat.st_mtime)
        now = self.clock.now().timestamp()
        hit = self._media.get(cache_key)
        if hit and now - hit[1] < MEDIA_TTL_SECONDS:
            return hit[0]
        media_id = await self.api.upload_media(path)
        self._media[cache_key] = (media_id, now)
        return media_id

    # --- sending --------------------------------------------------------------------------

    async def send(self, batch: list[OutboxMessage]) -> SendOutcome:
        out = SendOutcome()
        if not batch:
            return out
        if self.office_report:
            self._report_invalid()
        body = batch[0].body
        try:
            if body.get("msgtype") == "update_template_card":
                for row in batch:
                    out.merge(await self._update_card(row))
            else:
                out = await self._send_message(batch, body)
        finally:
            self._count(out)
        return out

    async def _send_message(self, batch: list[OutboxMessage], body: dict[str, Any]) -> SendOutcome:
        out = SendOutcome()
        try:
            parts = await self._parts(body)
        except (OSError, KeyError) as exc:  # the file is gone: retrying will not bring it back
            return SendOutcome(rejected={rid(r): f"cannot send: {exc}" for r in batch})
        except WeComError as exc:
            return SendOutcome(retry={rid(r): str(exc) for r in batch})
        except ValueError as exc:
            return SendOutcome(rejected={rid(r): str(exc) for r in batch})
        now = self.clock.now()
        ready: list[OutboxMessage] = []
        for row in batch:
            if self.pacer.take(row.recipient.lower(), now, cost=len(parts)):
                ready.append(row)
            else:
                out.retry[rid(row)] = "paced: member over 30/min or 1000/h"
        if not ready:
            return out
        retrying = any(r.attempts > 1 for r in batch)
        pending = list(ready)
        for i, part in enumerate(parts):
            if not pending:
                break
            payload: dict[str, Any] = {
                "touser": "|".join(r.recipient for r in pending),
                "agentid": self.settings.agent_id,
                **part.payload,
            }
            if part.card:
                payload["template_card"] = {
                    **payload["template_card"],
                    "task_id": task_id_for(
                        pending, i, str(payload["template_card"].get("task_id") or "")
                    ),
                }
            if retrying:
                payload["enable_duplicate_check"] = 1
                payload["duplicate_check_interval"] = self.settings.duplicate_check_interval
            pending = self._read_answer(
                await self._call_send(payload), pending, out, now, len(parts)
            )
        out.delivered |= {rid(r) for r in pending}
        return out

    async def _call_send(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.api.send_message(payload)
        except WeComError as exc:
            return {"errcode": exc.errcode, "errmsg": exc.errmsg}

    def _read_answer(
        self,
        data: dict[str, Any],
        rows: list[OutboxMessage],
        out: SendOutcome,
        now: datetime,
        cost: int,
    ) -> list[OutboxMessage]:
        """Mark what this answer settles; return the rows still on track for delivery."""
        code = int(data.get("errcode", 0) or 0)
        msg = str(data.get("errmsg", ""))
        if code == 0:
            refused = _userids(data.get("invaliduser")) | _userids(data.get("unlicenseduser"))
            still = []
            for r in rows:
                if r.recipient.lower() in refused:
                    out.rejected[rid(r)] = "invaliduser: 不在应用可见范围或账号无效"
                else:
                    still.append(r)
            return still
        if code == 81013:
            out.rejected.update({rid(r): "81013: 全部接收人无效或不在可见范围" for r in rows})
            return []
        if code in RETRYABLE or code in CONFIG or code in (40014, 42001):
            if code in CONFIG:
                log.error("wecom message/send refused by configuration: errcode %s %s", code, msg)
            for r in rows:
                self.pacer.forget(r.recipient.lower(), cost)
            out.retry.update({rid(r): f"errcode {code}: {msg}"[:300] for r in rows})
            return []
        out.rejected.update({rid(r): f"errcode {code}: {msg}"[:300] for r in rows})
        return []

    async def _update_card(self, row: OutboxMessage) -> SendOutcome:
        body = row.body
        payload: dict[str, Any] = {
            "userids": [row.recipient],
            "agentid": self.settings.agent_id,
            "response_code": body.get("response_code", ""),
        }
        if body.get("button"):
            payload["button"] = body["button"]
        else:
            payload["template_card"] = body.get("template_card") or {}
        try:
            data = await self.api.update_template_card(payload)
        except WeComError as exc:
            data = {"errcode": exc.errcode, "errmsg": exc.errmsg}
        out = SendOutcome()
        self._read_answer(data, [row], out, self.clock.now(), 0)
        if not out.rejected and not out.retry:
            out.delivered.add(rid(row))
        return out

    @staticmethod
    def _count(out: SendOutcome) -> None:
        if out.delivered:
            SENDS.labels(result="delivered").inc(len(out.delivered))
        if out.rejected:
            SENDS.labels(result="rejected").inc(len(out.rejected))
        paced = sum(1 for r in out.retry.values() if r.startswith("paced"))
        if paced:
            SENDS.labels(result="paced").inc(paced)
        if len(out.retry) - paced:
            SENDS.labels(result="retry").inc(len(out.retry) - paced)

    def _report_invalid(self) -> None:
        """On the first send of each day (per process): queue the office's summary of the
        recipients WeCom refused on earlier days; the report's key makes repeats no-ops."""
        from bot.calendar import local_date
        from bot.channels.wecom.report import enqueue_invalid_report

        today = local_date(self.clock.now())
        if self._reported_on == today:
            return
        try:
            enqueue_invalid_report(self.engine, settings=self.full_settings, now=self.clock.now())
            self._reported_on = today
        except Exception:  # a report must never break delivery
            log.exception("could not queue the invalid-recipient report")


def _userids(value: Any) -> set[str]:
    if not value:
        return set()
    return {u.strip().lower() for u in str(value).split("|") if u.strip()}
