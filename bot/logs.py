"""Logging: one event per line; JSON when not on a terminal. Never secrets or phone numbers."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_SECRETISH = re.compile(r"(access_token|corpsecret|secret|key)=([^&\s\"']+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask mainland mobile numbers and secret query parameters."""
    text = _PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)
    return _SECRETISH.sub(lambda m: f"{m.group(1)}=***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "userid", "outcome"):
            if hasattr(record, key):
                event[key] = getattr(record, key)
        if record.exc_info:
            event["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
