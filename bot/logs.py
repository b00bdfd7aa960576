"""Logging: one event per line; JSON when not on a terminal. Never secrets or phone numbers.

Every HTTP request gets a request id (the caller's ``X-Request-ID`` when it is a plain token,
else a fresh one). :class:`RequestIdMiddleware` keeps it in a context variable for the
request's duration and echoes it in the response; every log line written meanwhile carries
it, uvicorn's access line included, so one grep finds all a request did.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# A mainland mobile number, alone or after +86/0086, also written 139-1234-5678 or 139 1234 5678.
_PHONE = re.compile(r"(?:(?<!\d)|(?<=86))1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
_SECRETISH = re.compile(r"(access_token|corpsecret|secret|key)=([^&\s\"']+)", re.IGNORECASE)
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._-]{1,64}")

REQUEST_ID: ContextVar[str | None] = ContextVar("mofan_request_id", default=None)
"""The id of the HTTP request being served in this context, if any."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def redact(text: str) -> str:
    """Mask mainland mobile numbers and secret query parameters."""
    text = _PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)
    return _SECRETISH.sub(lambda m: f"{m.group(1)}=***", text)


def new_request_id() -> str:
    # Not a secret, only unique enough to find one request's lines: no system call for it.
    return f"{random.getrandbits(64):016x}"


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record that passes (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get() or "-"
        return True


class RequestIdMiddleware:
    """ASGI middleware: a request id per HTTP request, in the context and the response."""

    def __init__(self, app: ASGIApp, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope.get("headers", ()):
            if name == self.header:
                candidate = value.decode("latin-1")
                # A caller's id is kept only when it cannot smuggle anything into a log line.
                if _REQUEST_ID_OK.fullmatch(candidate):
                    rid = candidate
                break
        rid = rid or new_request_id()
        token = REQUEST_ID.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (self.header, rid.encode("latin-1"))]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = getattr(record, "request_id", None)
        if rid in (None, "-"):
            rid = REQUEST_ID.get()
        if rid:
            event["request_id"] = rid
        for key in ("userid", "outcome"):
            if hasattr(record, key):
                event[key] = redact(str(getattr(record, key)))
        if record.exc_info:
            event["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.INFO, *, json_lines: bool | None = None) -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (or ``json_lines`` says)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every run of the 5-second dispatch job at INFO: keep its warnings only.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
