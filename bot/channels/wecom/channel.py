"""``WeComChannel``: outbox batches to members through the app's ``message/send``.

A batch is up to 1000 rows with one body (the dispatcher groups them), so one call reaches
them all (``touser`` joined by ``|``). What comes back is mapped per row: ``invaliduser`` and
``81013`` are refused for good (and reported to the office once a day, see
:mod:`bot.channels.wecom.report`); 45009, -1 and configuration errors are retried by the
outbox with backoff.

**No doubles when an answer is lost.** A call may reach WeCom and its answer never come back
(a timeout, a connection reset after the request went out, a 5xx from a gateway, or the
process killed mid-call): the members may have the message or not. WeCom's
``enable_duplicate_check`` drops a resend only if the whole request is identical to the first
one — recipients in the same order, the same content, the same flags — within
``duplicate_check_interval``. So:

1. Every message/send carries ``enable_duplicate_check=1`` and the interval (at most WeCom's
   4 hours), the first try included, so that a resend can be byte-identical to it.
2. Before a call goes out its rows are marked with it (``"_call"`` in their body, see
   :func:`call_tag`: the rows' id range and a digest of their ids, and the part), and every
   later try of any of them sends that same request again — the same rows, from the outbox
   whatever their state, in id order, the same part — and keeps only the answer for the rows
   it was handed (the outbox may hand them back with other rows, or in pieces).
3. The mark also sets the rows' ``last_error`` to ``unknown since <time>: …`` (see
   :func:`unsure_reason`); an answer from WeCom replaces it, a lost answer or a crash leaves
   it, and from then on every reason of those rows keeps the prefix. So the outbox knows
   which rows may already have arrived, and since when.
4. Such rows are resent only until ``<time> + duplicate_check_interval − WINDOW_MARGIN``.
   After that a resend could arrive twice: they are settled ``unknown`` (not ``failed``) and
   listed apart in the office's daily report and in ``mofan_sends_total{result="unknown"}``.
   With ``duplicate_check_interval = 0`` nothing that may have arrived is ever resent.
   Rows whose every try was answered with a refusal (45009, -1, …) never arrived: they are
   retried on the outbox's schedule without that limit.

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
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session, col

from bot.channels.base import OutboxRow, SendOutcome
from bot.channels.limits import Pacer, split_text
from bot.channels.wecom.api import CONFIG, RETRYABLE, WeComAPI, WeComError
from bot.clock import Clock
from bot.config import Settings, WeComSettings
from bot.metrics import SENDS
from bot.models import OutboxMessage
from bot.outbox import CLAIMED, PENDING

log = logging.getLogger("mofan.wecom")

MAX_USERS_PER_CALL = 1000
TEXT_BYTES = 2048
MEMBER_WINDOWS = ((60.0, 30), (3600.0, 1000))
"""WeCom's per-app, per-member limits (wecom-api.md §3.6): over them, messages vanish."""
MEDIA_TTL_SECONDS = 2.5 * 86400
"""A media_id lives 3 days; reuse it for less than that."""
CALL = "_call"
"""The body key naming the call a row went out in (:func:`call_tag`)."""
MEDIA = "_media_id"
"""The body key keeping a file's media_id once it went out (a resend must be identical)."""
MAX_DUPLICATE_CHECK_SECONDS = 4 * 3600
"""WeCom's largest ``duplicate_check_interval`` (wecom-api.md §3.2; config enforces it too)."""
WINDOW_MARGIN = timedelta(seconds=120)
"""Kept back from the end of WeCom's duplicate window: clock skew, and the resend's own
trip (``wecom.timeout_seconds`` is at most 60 s)."""
UNSURE = "unknown since"
"""How the reason of a row that may already have arrived starts (:func:`unsure_reason`);
the outbox settles a row whose reason starts with ``unknown`` as ``unknown``."""
PACED = "paced: member over 30/min or 1000/h"
REPORT_FROM = time(6, 0)
"""The office's daily report is queued at the first send after this local time, when the
previous day's last unanswered sends have been settled."""


@dataclass(frozen=True)
class _Part:
    payload: dict[str, Any]
    card: bool = False


def rid(row: OutboxRow) -> int:
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


def task_id_for(rows: list[OutboxRow], part: int, prefix: str = "") -> str:
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


def call_tag(rows: list[OutboxRow], part: int = 0) -> str:
    """The name of a message/send call over ``rows``: their id range (where to look for
    them again), a digest of their ids, and which part of the body it carried."""
    ids = sorted(rid(r) for r in rows)
    digest = hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()[:12]
    return f"{ids[0]}-{ids[-1]}-{digest}-{part}"


def tag_part(tag: str) -> int:
    """The part a :func:`call_tag` names (0 for a tag written without one)."""
    pieces = tag.split("-")
    return int(pieces[3]) if len(pieces) > 3 and pieces[3].isdigit() else 0


_UNSURE_AT = re.compile(UNSURE + r" (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")


def unsure_reason(since: datetime, detail: str) -> str:
    """The reason of a row whose send may have arrived since ``since`` (WeCom did not say)."""
    return f"{UNSURE} {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}: {detail}"[:300]


def unsure_since(reason: str | None) -> datetime | None:
    """When a send of the row may first have arrived, from its reason; None if WeCom
    answered every try (so none arrived)."""
    found = _UNSURE_AT.search(reason or "")
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


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
            media_id = str(body.get(MEDIA) or "") or await self._media_id(Path(str(body["path"])))
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

    async def send(self, batch: list[OutboxRow]) -> SendOutcome:
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
                self._give_up_unsure(batch, out)
        finally:
            self._count(out)
        return out

    def _give_up_unsure(self, batch: list[OutboxRow], out: SendOutcome) -> None:
        """Rows that may have arrived and have no try left are settled ``unknown`` here (the
        outbox would do it too), so that the metrics count them."""
        last = self.full_settings.outbox.max_attempts
        for row in batch:
            why = out.retry.get(rid(row))
            if why and why.startswith(UNSURE) and row.attempts >= last:
                del out.retry[rid(row)]
                out.rejected[rid(row)] = f"{why}; gave up after {row.attempts} tries"[:500]

    async def _send_message(self, batch: list[OutboxRow], body: dict[str, Any]) -> SendOutcome:
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
        tag = body.get(CALL)
        if isinstance(tag, str):
            return await self._send_again(batch, tag, parts, now)
        ready: list[OutboxRow] = []
        for row in sorted(batch, key=rid):
            if self.pacer.take(row.recipient.lower(), now, cost=len(parts)):
                ready.append(row)
            else:
                out.retry[rid(row)] = PACED
        if not ready:
            return out
        out.merge(await self._call(ready, body, parts, 0, now, cost=len(parts)))
        return out

    def _window(self) -> timedelta:
        """How long after a send that may have arrived its identical resend is still dropped
        by WeCom (negative: never)."""
        interval = min(self.settings.duplicate_check_interval, MAX_DUPLICATE_CHECK_SECONDS)
        return timedelta(seconds=interval) - WINDOW_MARGIN if interval > 0 else -WINDOW_MARGIN

    def _settle_unknown(
        self, rows: list[OutboxRow], since: datetime, detail: str
    ) -> dict[int, str]:
        interval = min(self.settings.duplicate_check_interval, MAX_DUPLICATE_CHECK_SECONDS)
        why = unsure_reason(
            since,
            f"{detail}; not resent: WeCom's duplicate check ({interval} s) no longer covers it",
        )
        log.warning("wecom: %d sends settled unknown (no answer since %s)", len(rows), since)
        return {rid(r): why for r in rows}

    async def _send_again(
        self, batch: list[OutboxRow], tag: str, parts: list[_Part], now: datetime
    ) -> SendOutcome:
        """Rows that went out before: that call again, word for word, answered for ``batch``;
        or, when it may have arrived and WeCom's duplicate window is over, not at all."""
        mine = sorted(batch, key=rid)
        since = min((s for r in mine if (s := unsure_since(r.last_error))), default=None)
        if since is not None and now >= since + self._window():
            return SendOutcome(rejected=self._settle_unknown(mine, since, "no answer"))
        rows = self._call_rows(tag) or mine
        part = min(tag_part(tag), len(parts) - 1)
        out = SendOutcome()
        cost = 0  # what may have arrived has been counted already
        if since is None:  # every try so far was refused: pace it like a first one
            cost = len(parts) - part
            taken: list[OutboxRow] = []
            for r in mine:
                if not self.pacer.take(r.recipient.lower(), now, cost=cost):
                    for t in taken:
                        self.pacer.forget(t.recipient.lower(), cost)
                    return SendOutcome(retry={rid(x): PACED for x in mine})
                taken.append(r)
            self._note_in_flight([rid(r) for r in rows], now)
        answered = await self._call(rows, None, parts, part, now, cost=0, since=since, last=part)
        ids = {rid(r) for r in mine}
        out.rejected = {i: why for i, why in answered.rejected.items() if i in ids}
        out.retry = {i: why for i, why in answered.retry.items() if i in ids}
        for r in mine:  # refused: it did not go out (the others' budget is not ours to undo)
            if cost and not out.retry.get(rid(r), UNSURE).startswith(UNSURE):
                self.pacer.forget(r.recipient.lower(), cost)
        going = [r for r in mine if rid(r) in answered.delivered]
        if going and part + 1 < len(parts):  # the rest of the body, for these rows only
            rest = max(cost - 1, 0)
            out.merge(await self._call(going, batch[0].body, parts, part + 1, now, cost=rest))
        else:
            out.delivered = {rid(r) for r in going}
        for r in mine:  # the call's rows are all in ``rows``; never leave one unanswered
            if rid(r) not in out.delivered | out.rejected.keys() | out.retry.keys():
                out.retry[rid(r)] = f"not in its earlier call {tag}"
        return out

    async def _call(
        self,
        rows: list[OutboxRow],
        body: dict[str, Any] | None,
        parts: list[_Part],
        first: int,
        now: datetime,
        *,
        cost: int,
        since: datetime | None = None,
        last: int | None = None,
    ) -> SendOutcome:
        """message/send for parts ``first``…``last`` to ``rows`` (in id order), as far as the
        answers allow. Each call is first marked on its rows (with ``body``; None: the rows
        carry their call's mark already). ``since``: the rows may have arrived since then."""
        out = SendOutcome()
        pending = sorted(rows, key=rid)
        for i in range(first, len(parts) if last is None else last + 1):
            if not pending:
                break
            payload = self._payload(pending, parts[i], i)
            if body is not None:
                self._mark_call(pending, body, parts, i, now)
            try:
                data = await self.api.send_message(payload)
            except WeComError as exc:
                if not (exc.unknown and exc.api == "message/send"):
                    data = {"errcode": exc.errcode, "errmsg": exc.errmsg}
                else:  # it may have arrived: resend this very request, or settle (docstring)
                    at = since or now
                    detail = f"no answer: {exc.errmsg}"
                    if self.clock.now() >= at + self._window():
                        out.rejected.update(self._settle_unknown(pending, at, detail))
                    else:
                        out.retry.update({rid(r): unsure_reason(at, detail) for r in pending})
                    return out
            pending = self._read_answer(data, pending, out, now, cost)
            if since is not None:  # a refusal now does not undo an earlier lost answer
                for mid, why in out.retry.items():
                    if not why.startswith(UNSURE):
                        out.retry[mid] = unsure_reason(since, why)
        out.delivered |= {rid(r) for r in pending}
        return out

    def _payload(self, rows: list[OutboxRow], part: _Part, index: int) -> dict[str, Any]:
        """The message/send request of one call: the same rows and part give the same bytes."""
        payload: dict[str, Any] = {
            "touser": "|".join(r.recipient for r in rows),
            "agentid": self.settings.agent_id,
            **part.payload,
        }
        if part.card:
            card = payload["template_card"]
            prefix = str(card.get("task_id") or "")
            payload["template_card"] = {**card, "task_id": task_id_for(rows, index, prefix)}
        interval = min(self.settings.duplicate_check_interval, MAX_DUPLICATE_CHECK_SECONDS)
        if interval > 0:
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = interval
        return payload

    def _mark_call(
        self,
        rows: list[OutboxRow],
        body: dict[str, Any],
        parts: list[_Part],
        part: int,
        now: datetime,
    ) -> None:
        """Write the call's name into its rows' body, and "no answer yet" into their reason,
        before it goes out (module docstring)."""
        marked = {k: v for k, v in body.items() if k not in (CALL, MEDIA)}
        marked[CALL] = call_tag(rows, part)
        if body.get("msgtype") == "file" and "file" in parts[part].payload:
            marked[MEDIA] = parts[part].payload["file"]["media_id"]
        with Session(self.engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_([rid(r) for r in rows]),
                    col(OutboxMessage.status).in_((PENDING, CLAIMED)),
                )
                .values(body=marked, last_error=unsure_reason(now, "sent, no answer yet"))
            )
            session.commit()

    def _note_in_flight(self, ids: list[int], now: datetime) -> None:
        """Before a call is repeated for rows WeCom answered so far: from now on it may arrive."""
        with Session(self.engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_(ids),
                    col(OutboxMessage.status).in_((PENDING, CLAIMED)),
                    or_(
                        col(OutboxMessage.last_error).is_(None),
                        col(OutboxMessage.last_error).not_like(UNSURE + "%"),
                    ),
                )
                .values(last_error=unsure_reason(now, "sent again, no answer yet"))
            )
            session.commit()

    def _call_rows(self, tag: str) -> list[OutboxRow]:
        """Every row of the call ``tag`` names, in id order (whatever their status now)."""
        try:
            lo, hi = (int(x) for x in tag.split("-")[:2])
        except ValueError:
            return []
        with Session(self.engine, expire_on_commit=False) as session:
            found = session.scalars(
                select(OutboxMessage)
                .where(col(OutboxMessage.id).between(lo, hi))
                .order_by(col(OutboxMessage.id))
            ).all()
        return [r for r in found if isinstance(r.body, dict) and r.body.get(CALL) == tag]

    def _read_answer(
        self,
        data: dict[str, Any],
        rows: list[OutboxRow],
        out: SendOutcome,
        now: datetime,
        cost: int,
    ) -> list[OutboxRow]:
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

    async def _update_card(self, row: OutboxRow) -> SendOutcome:
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
        """``mofan_sends_total`` by result: delivered; rejected (refused for good); unknown
        (settled without knowing whether it arrived); paced; unanswered (no answer: the very
        same request goes again); retry (refused for now)."""
        unknown = sum(1 for r in out.rejected.values() if r.startswith(UNSURE))
        paced = sum(1 for r in out.retry.values() if r.startswith("paced"))
        unanswered = sum(1 for r in out.retry.values() if r.startswith(UNSURE))
        counts = {
            "delivered": len(out.delivered),
            "rejected": len(out.rejected) - unknown,
            "unknown": unknown,
            "paced": paced,
            "unanswered": unanswered,
            "retry": len(out.retry) - paced - unanswered,
        }
        for result, n in counts.items():
            if n:
                SENDS.labels(result=result).inc(n)

    def _report_invalid(self) -> None:
        """On the first send of each day after :data:`REPORT_FROM` (per process): queue the
        office's summary of the recipients WeCom refused, and of the sends settled unknown,
        on earlier days; the report's key makes repeats no-ops."""
        from bot.calendar import local_date
        from bot.channels.wecom.report import enqueue_invalid_report
        from bot.clock import local

        now = self.clock.now()
        today = local_date(now)
        if self._reported_on == today or local(now).time() < REPORT_FROM:
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
