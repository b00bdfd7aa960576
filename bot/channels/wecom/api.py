"""The WeCom server API over httpx: token handling, the calls we use, errors as data.

``api_base`` comes from config because 政务微信 and private deployments live elsewhere
(wechatpy hard-codes the host, so its client is not used). Every call takes the shared token
(:mod:`bot.channels.wecom.tokens`); on 40014/42001 the token is fetched again and the call is
retried once — never in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from bot.channels.wecom.tokens import StoredToken, TokenStore
from bot.clock import Clock
from bot.config import WeComSettings
from bot.metrics import TOKEN_REFRESHES, WECOM_API_ERRORS, WECOM_API_SECONDS

log = logging.getLogger("mofan.wecom")

TOKEN_EXPIRED = frozenset({40014, 42001})
"""Invalid or expired access_token: fetch a new one and retry the call once."""
RETRYABLE = frozenset({-1, 45009, 45033, 45011})
"""System busy, rate limits, concurrency limit: try again later."""
CONFIG = frozenset({40001, 40013, 60020, 48002, 40056, 301002})
"""Wrong secret / corp id, untrusted IP, no permission, bad agentid: an admin must act.

The outbox retries these (with backoff) rather than failing the message, so fixing the
console brings everything through."""

TOKEN_MARGIN = timedelta(minutes=5)
"""Refresh this long before the token's stated expiry."""
REFETCH_AFTER = timedelta(seconds=60)
"""Within the margin, a token fetched less than this ago is used as it is (WeCom would hand
out the same one again): no refresh storm in a token's last minutes."""
TOKEN_SAFETY = timedelta(seconds=30)
LOCK_LEASE = timedelta(seconds=15)
LOCK_WAIT_SECONDS = 10.0


class WeComError(Exception):
    """WeCom answered with a non-zero errcode (or could not be reached: errcode -1).

    ``unknown``: no answer came back although the request may have reached WeCom (a timeout
    or a dropped connection after it was sent, a 5xx from a gateway): WeCom may have carried
    the call out. Without ``unknown`` the call certainly did nothing (WeCom said so, or the
    request never left: no connection, no token).
    """

    def __init__(self, errcode: int, errmsg: str, api: str = "", *, unknown: bool = False) -> None:
        super().__init__(f"{api} errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.unknown = unknown

    @property
    def retryable(self) -> bool:
        return self.errcode in RETRYABLE or self.errcode in CONFIG or self.errcode in TOKEN_EXPIRED


NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
"""Transport errors raised before the request could leave: WeCom cannot have seen it. Every
other one (read/write timeouts, resets, a broken answer) leaves the outcome unknown."""


def _holder() -> str:
    """Who holds the refresh lease: host, process and a per-client nonce."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class WeComAPI:
    """One app (corp id + agent id + secret) on one ``api_base``."""

    def __init__(
        self,
        *,
        settings: WeComSettings,
        engine: Engine,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.base = settings.api_base.rstrip("/")
        self.store = TokenStore(engine, corp_id=settings.corp_id, agent_id=settings.agent_id)
        self._client = client
        self._own_client = client is None
        self._token: str | None = None
        self._expires_at = clock.now()
        self._fetched_at: Any = None
        self._lock: asyncio.Lock | None = None
        self.holder = _holder()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.timeout_seconds, connect=5.0),
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    # --- token ----------------------------------------------------------------------------

    async def gettoken(self) -> tuple[str, int]:
        """A fresh token from WeCom (no cache); raises :class:`WeComError`."""
        data = await self._request(
            "GET",
            "/cgi-bin/gettoken",
            params={"corpid": self.settings.corp_id, "corpsecret": self.settings.secret},
            api="gettoken",
        )
        if data.get("errcode", 0) != 0 or not data.get("access_token"):
            raise WeComError(int(data.get("errcode", -1)), str(data.get("errmsg", "")), "gettoken")
        return str(data["access_token"]), int(data.get("expires_in") or 7200)

    def _fresh(
        self, token: str | None, expires_at: Any, fetched_at: Any, stale: str | None
    ) -> bool:
        if not token or token == stale:
            return False
        now = self.clock.now()
        if expires_at - TOKEN_MARGIN > now:
            return True
        recent = fetched_at is not None and now - fetched_at < REFETCH_AFTER
        return recent and expires_at - TOKEN_SAFETY > now

    async def token(self, *, stale: str | None = None) -> str:
        """The shared token; ``stale`` names one WeCom just refused, so it is not reused."""
        known = self._token
        if known is not None and self._fresh(known, self._expires_at, self._fetched_at, stale):
            return known
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one refresher per process; the lease covers the others
            known = self._token
            if known is not None and self._fresh(known, self._expires_at, self._fetched_at, stale):
                return known
            holder = self.holder
            started = time.monotonic()
            while True:
                stored = self.store.read()
                if stored and self._usable(stored, stale):
                    return stored.token
                if self.store.try_lock(holder, now=self.clock.now(), lease=LOCK_LEASE):
                    try:
                        stored = self.store.read()  # someone may have finished just before us
                        if stored and self._usable(stored, stale):
                            return stored.token
                        token, expires_in = await self.gettoken()
                        now = self.clock.now()
                        expires_at = now + timedelta(seconds=expires_in)
                        self.store.write(token, expires_at=expires_at, fetched_at=now)
                        TOKEN_REFRESHES.inc()
                        log.info("wecom token fetched, valid %d s", expires_in)
                    finally:
                        self.store.unlock(holder)
                    self._token, self._expires_at, self._fetched_at = token, expires_at, now
                    return token
                if time.monotonic() - started > LOCK_WAIT_SECONDS:
                    raise WeComError(-1, "another worker holds the token refresh lock", "gettoken")
                await asyncio.sleep(0.1)

    def _usable(self, stored: StoredToken, stale: str | None) -> bool:
        if not self._fresh(stored.token, stored.expires_at, stored.fetched_at, stale):
            return False
        self._token, self._expires_at = stored.token, stored.expires_at
        self._fetched_at = stored.fetched_at
        return True

    # --- calls ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        api: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            resp = await self.client.request(
                method, self.base + path, params=params, json=json, files=files
            )
        except httpx.HTTPError as exc:
            WECOM_API_ERRORS.labels(api=api, errcode="transport").inc()
            sent = not isinstance(exc, NOT_SENT)
            what = "no answer from" if sent else "cannot reach"
            raise WeComError(
                -1, f"{type(exc).__name__}: {what} {self.base}", api, unknown=sent
            ) from None
        finally:
            WECOM_API_SECONDS.labels(api=api).observe(time.perf_counter() - started)
        if resp.status_code != 200:
            WECOM_API_ERRORS.labels(api=api, errcode=f"http{resp.status_code}").inc()
            # A 5xx may come from a gateway after WeCom did the work; a 4xx never reached it.
            raise WeComError(-1, f"HTTP {resp.status_code}", api, unknown=resp.status_code >= 500)
        try:
            data = resp.json()
        except ValueError:
            raise WeComError(-1, "answer is not JSON", api, unknown=True) from None
        if not isinstance(data, dict):
            raise WeComError(-1, "answer is not a JSON object", api, unknown=True)
        code = int(data.get("errcode", 0) or 0)
        if code:
            WECOM_API_ERRORS.labels(api=api, errcode=str(code)).inc()
        return data

    async def call(
        self,
        method: str,
        path: str,
        *,
        api: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
    ) -> dict[str, Any]:
        """One API call with the token; the raw answer (callers read ``errcode`` themselves).

        Raises :class:`WeComError` only when WeCom could not be reached or the token could not
        be had.
        """
        token = await self.token()
        query = {**(params or {}), "access_token": token}
        data = await self._request(method, path, api=api, params=query, json=json, files=files)
        if int(data.get("errcode", 0) or 0) in TOKEN_EXPIRED:
            log.info(
                "wecom %s: token refused (errcode %s), fetching a new one", api, data["errcode"]
            )
            token = await self.token(stale=token)
            query["access_token"] = token
            data = await self._request(method, path, api=api, params=query, json=json, files=files)
        return data

    async def send_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/cgi-bin/message/send", api="message/send", json=payload)

    async def update_template_card(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.call(
            "POST",
            "/cgi-bin/message/update_template_card",
            api="message/update_template_card",
            json=payload,
        )

    async def upload_media(self, path: Path, kind: str = "file") -> str:
        """Upload a file (valid 3 days on WeCom's side); returns its ``media_id``."""
        content = path.read_bytes()
        data = await self.call(
            "POST",
            "/cgi-bin/media/upload",
            api="media/upload",
            params={"type": kind},
            files={"media": (path.name, content, "application/octet-stream")},
        )
        code = int(data.get("errcode", 0) or 0)
        if code or not data.get("media_id"):
            raise WeComError(code or -1, str(data.get("errmsg", "no media_id")), "media/upload")
        return str(data["media_id"])

    async def agent_info(self, token: str | None = None) -> dict[str, Any]:
        """``agent/get`` for this app: a harmless call that proves the IP is trusted.

        With ``token`` (``mofan doctor``) the shared token in the database is not touched.
        """
        params: dict[str, Any] = {"agentid": self.settings.agent_id}
        if token is None:
            return await self.call("GET", "/cgi-bin/agent/get", api="agent/get", params=params)
        params["access_token"] = token
        return await self._request("GET", "/cgi-bin/agent/get", api="agent/get", params=params)
