"""``mofan doctor``: check the config, the database and the WeCom connection, in plain Chinese.

Each check returns a :class:`Check`; the CLI prints them and exits non-zero if any failed.
WeCom's own error codes are explained (60020 untrusted IP, 40013 corp id, 40001 secret …),
because those are what a first deployment runs into.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, text

from bot import messages
from bot.config import Settings

Level = Literal["ok", "warn", "fail"]
_FROM_IP = re.compile(r"from ip:\s*([0-9a-fA-F.:]+)")


@dataclass(frozen=True)
class Check:
    level: Level
    text: str

    @property
    def mark(self) -> str:
        return {"ok": "✓", "warn": "!", "fail": "✗"}[self.level]


def explain(errcode: int, errmsg: str = "") -> str:
    """WeCom's error code in words an administrator can act on."""
    template = messages.DOCTOR_ERRCODE.get(errcode)
    if template is None:
        return messages.DOCTOR_ERRCODE_OTHER.format(errcode=errcode, errmsg=errmsg)
    ip = _FROM_IP.search(errmsg)
    return template.format(ip=f"（WeCom 看到的 IP：{ip.group(1)}）" if ip else "")


def check_database(engine: Engine, url: str) -> Check:
    from bot.db import current_revision, head_revision

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(engine)
    except Exception as exc:
        return Check("fail", messages.DOCTOR_DB_DOWN.format(url=url, error=type(exc).__name__))
    head = head_revision()
    if current is None:
        return Check("fail", messages.DOCTOR_DB_EMPTY)
    if current != head:
        return Check("fail", messages.DOCTOR_DB_BEHIND.format(current=current, head=head))
    return Check("ok", messages.DOCTOR_DB_OK.format(revision=current))


def check_callback_settings(settings: Settings) -> list[Check]:
    from bot.channels.wecom.crypto import aes_key_ok

    w = settings.wecom
    out: list[Check] = []
    for key in ("corp_id", "agent_id", "secret", "token", "encoding_aes_key"):
        if not getattr(w, key):
            where = messages.DOCTOR_WHERE[key]
            out.append(
                Check("fail", messages.DOCTOR_MISSING.format(key=f"wecom.{key}", where=where))
            )
    if w.token and not re.fullmatch(r"[A-Za-z0-9]{3,32}", w.token):
        out.append(Check("fail", messages.DOCTOR_TOKEN_BAD))
    if w.encoding_aes_key and not aes_key_ok(w.encoding_aes_key):
        out.append(Check("fail", messages.DOCTOR_AES_BAD.format(length=len(w.encoding_aes_key))))
    if not out:
        out.append(Check("ok", messages.DOCTOR_CALLBACK_OK))
    return out


async def check_api(settings: Settings, engine: Engine) -> list[Check]:
    """api_base answers, gettoken works, and a real call (agent/get) passes the IP check."""
    import httpx

    from bot.channels.wecom.api import WeComAPI, WeComError
    from bot.clock import SystemClock

    w = settings.wecom
    base = w.api_base
    async with httpx.AsyncClient(timeout=min(w.timeout_seconds, 10.0)) as client:
        try:
            await client.get(base + "/cgi-bin/gettoken")
        except httpx.HTTPError as exc:
            return [
                Check(
                    "fail", messages.DOCTOR_REACH_FAIL.format(base=base, error=type(exc).__name__)
                )
            ]
        api = WeComAPI(settings=w, engine=engine, clock=SystemClock(), client=client)
        try:
            token, _ = await api.gettoken()  # fresh, not the shared one: that is what is checked
        except WeComError as exc:
            return [Check("fail", explain(exc.errcode, exc.errmsg))]
        checks = [Check("ok", messages.DOCTOR_TOKEN_OK.format(base=base))]
        try:
            data = await api.agent_info(token)
        except WeComError as exc:
            return [*checks, Check("fail", explain(exc.errcode, exc.errmsg))]
        code = int(data.get("errcode", 0) or 0)
        if code:
            return [*checks, Check("fail", explain(code, str(data.get("errmsg", ""))))]
        name = str(data.get("name") or "")
        return [
            *checks,
            Check("ok", messages.DOCTOR_AGENT_OK.format(name=name, agent_id=w.agent_id)),
        ]


def run_checks(settings: Settings, engine: Engine) -> list[Check]:
    checks = [Check("ok", messages.DOCTOR_CONFIG_OK.format(source=settings.source))]
    checks.append(check_database(engine, _safe_url(settings.database.url)))
    w = settings.wecom
    wants_wecom = settings.bot.channel == "wecom" or any((w.corp_id, w.secret, w.token))
    if not wants_wecom:
        checks.append(Check("warn", messages.DOCTOR_CONSOLE_MODE))
        return checks
    callback = check_callback_settings(settings)
    checks += callback
    if w.corp_id and w.secret and w.agent_id:
        checks += asyncio.run(check_api(settings, engine))
    return checks


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
