"""A stand-in for the WeCom server API, and a player for WeCom's side of the callback.

:class:`FakeWeCom` is a small ASGI app (Starlette) with the calls the bot makes —
``gettoken``, ``message/send``, ``message/update_template_card``, ``media/upload``,
``appchat/send``, ``agent/get`` and the group robot's ``webhook/send`` — answering with
WeCom's real error codes: 40013 wrong corp id, 40001 wrong secret, 41001/40014/42001 for a
missing, unknown or expired token, 45009 over a rate limit, 81013 when every recipient is
invalid, 60020 from an untrusted IP, 93000 for an unknown robot key. It records every call
(``GET /_calls``; ``.calls`` in process) and every delivered message (``GET /_inbox``), and it
can be told to be slow, expire tokens, rate-limit or fail (constructor arguments, or
``POST /_control``): the next calls on cue (:meth:`FakeWeCom.fail`, :meth:`FakeWeCom.stall`),
or at random from a seed (:class:`Chaos`: 45009, -1, expired or unknown tokens, and answers
that come too late for a call WeCom did carry out). Like WeCom, it delivers nothing twice when
``enable_duplicate_check`` is on and the same request came within the interval, and it
silently drops a member's messages over 30 a minute (recorded as ``dropped``).

:class:`WeComPlayer` plays WeCom calling the bot: it signs and encrypts a member's text, a
menu click or a card button click, POSTs it to ``/wecom/callback``, and decrypts the reply.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.wecom.crypto import CallbackCrypto
from bot.channels.wecom.protocol import message_xml

DEFAULT_CORP_ID = "wwmofandemo0000001"
DEFAULT_SECRET = "mofan-demo-secret"
DEFAULT_AGENT_ID = 1000002
DEFAULT_TOKEN = "mofandemotoken"
DEFAULT_AES_KEY = "MofanDemoKeyMofanDemoKeyMofanDemoKeyMofanDe"  # 43 chars: demo only

ERRORS = {
    0: "ok",
    -1: "system busy",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    44004: "empty content",
    45009: "api freq out of limit",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
    93000: "invalid webhook url",
}


TIMEOUT = "timeout"
"""A :class:`Chaos` fault: WeCom carries the call out but answers only after ``stall``
seconds, when the caller has given up (so it cannot know the message went out)."""
TOKEN_FAULTS = (42001, 40014)
"""Chaos faults on the token: WeCom ended every token early (42001) or forgot them (40014)."""


@dataclass
class _Failure:
    api: str
    errcode: int | None
    """None: no error, the answer is held ``late`` seconds (:meth:`FakeWeCom.stall`)."""
    times: int
    late: float = 0.0
    match: Callable[[Any], bool] | None = None
    """Only calls whose JSON body this accepts (None: every call)."""


@dataclass
class Chaos:
    """Faults at random, reproducibly: each call to one of ``apis`` meets at most one fault,
    drawn from ``rates`` (fault → probability, summing to at most 1) by a generator seeded
    with ``seed`` — the same seed and the same sequence of calls give the same faults.

    A fault is an errcode answered instead of doing the call (45009, -1, …), a token fault
    (:data:`TOKEN_FAULTS`: every token issued so far expires, or is forgotten, and the call
    is refused for it), or :data:`TIMEOUT` (the call is carried out, then answered ``stall``
    seconds late).
    """

    rates: Mapping[int | str, float]
    seed: int = 0
    stall: float = 15.0
    apis: tuple[str, ...] = ("message/send",)

    def __post_init__(self) -> None:
        rates: dict[int | str, float] = {}
        for fault, p in self.rates.items():
            key: int | str = fault
            if isinstance(fault, str) and fault != TIMEOUT:
                try:
                    key = int(fault)  # from JSON, where keys are strings
                except ValueError:
                    raise ValueError(f"unknown fault {fault!r}") from None
            if not 0 <= float(p) <= 1:
                raise ValueError(f"the rate of {fault!r} must be within 0..1")
            rates[key] = float(p)
        if sum(rates.values()) > 1 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        self.rates = rates
        self._rng = random.Random(self.seed)

    def draw(self) -> int | str | None:
        """The next call's fault, or None (not thread-safe: the fake draws under its lock)."""
        x = self._rng.random()
        for fault, p in self.rates.items():
            if x < p:
                return fault
            x -= p
        return None


@dataclass
class FakeWeCom:
    """The fake's state; ``app`` serves it. Thread-safe: tests read while uvicorn serves."""

    corp_id: str = DEFAULT_CORP_ID
    secret: str = DEFAULT_SECRET
    agent_id: int = DEFAULT_AGENT_ID
    latency: float = 0.0
    """Seconds every API call waits before answering."""
    token_ttl: float = 7200.0
    invalid_users: set[str] = field(default_factory=set)
    """Userids WeCom does not know (they come back in ``invaliduser``)."""
    robot_keys: set[str] | None = None
    """Known robot keys; None accepts any key."""
    trusted: bool = True
    """False: every call but gettoken fails with 60020, as from an IP not in 企业可信IP."""
    member_per_minute: int = 30
    robot_per_minute: int = 20
    echo: bool = False
    """Print each delivered message (``mofan fake-wecom``)."""
    now: Callable[[], float] = time.monotonic
    """The fake's clock in seconds (tests may tie it to their FixedClock)."""
    chaos: Chaos | None = None
    """Faults at random (:class:`Chaos`); None: none."""

    def __post_init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.robot_inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dropped: list[tuple[str, dict[str, Any]]] = []
        self.media: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, float] = {}
        self._failures: list[_Failure] = []
        self._recent: dict[str, float] = {}
        self._rates: dict[str, deque[float]] = defaultdict(deque)
        self.faults: Counter[str] = Counter()
        """Faults met so far, by name ("45009", "42001", "timeout", "held", …)."""
        self.held = 0
        """Answers being held back right now (a stall or a chaos timeout in progress)."""
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.app = self._build_app()

    # --- control (in process, or POST /_control) ------------------------------------------

    def fail(
        self,
        api: str,
        errcode: int,
        times: int = 1,
        *,
        match: Callable[[Any], bool] | None = None,
    ) -> None:
        """The next ``times`` calls to ``api`` (e.g. "message/send") answer ``errcode``;
        with ``match``, only calls whose JSON body it accepts."""
        with self._lock:
            self._failures.append(_Failure(api, errcode, times, match=match))

    def stall(
        self,
        api: str,
        seconds: float,
        times: int = 1,
        *,
        match: Callable[[Any], bool] | None = None,
    ) -> None:
        """The next ``times`` calls to ``api`` (that ``match`` accepts) that are carried out
        (not refused) are answered ``seconds`` late (``held`` counts them meanwhile: a test
        can kill the caller while it waits)."""
        with self._lock:
            self._failures.append(_Failure(api, None, times, late=seconds, match=match))

    def set_chaos(self, chaos: Chaos | None) -> None:
        with self._lock:
            self.chaos = chaos

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (WeCom ended them early)."""
        with self._lock:
            for t in self._tokens:
                self._tokens[t] = 0.0

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.inbox.clear()
            self.robot_inbox.clear()
            self.dropped.clear()
            self._failures.clear()
            self._recent.clear()
            self._rates.clear()
            self.faults.clear()

    def control(self, **changes: Any) -> None:
        for name in ("latency", "token_ttl", "trusted", "member_per_minute", "robot_per_minute"):
            if name in changes:
                setattr(self, name, type(getattr(self, name))(changes[name]))
        if "invalid_users" in changes:
            self.invalid_users = {str(u).lower() for u in changes["invalid_users"]}
        if "robot_keys" in changes:
            keys = changes["robot_keys"]
            self.robot_keys = None if keys is None else set(keys)
        if changes.get("expire_tokens"):
            self.expire_tokens()
        for f in changes.get("fail", []):
            self.fail(str(f["api"]), int(f["errcode"]), int(f.get("times", 1)))
        for f in changes.get("stall", []):
            self.stall(str(f["api"]), float(f["seconds"]), int(f.get("times", 1)))
        if "chaos" in changes:
            c = changes["chaos"]
            self.set_chaos(
                None
                if c is None
                else Chaos(
                    rates=dict(c.get("rates") or {}),
                    seed=int(c.get("seed", 0)),
                    stall=float(c.get("stall", 15.0)),
                    apis=tuple(c.get("apis") or ("message/send",)),
                )
            )
        if changes.get("reset"):
            self.reset()

    # --- reading what happened ------------------------------------------------------------

    def calls_to(self, api: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["api"] == api]

    def received(self, userid: str) -> list[dict[str, Any]]:
        """Messages delivered to ``userid``, oldest first."""
        with self._lock:
            return list(self.inbox.get(userid.lower(), []))

    def texts(self, userid: str) -> list[str]:
        return [readable(m) for m in self.received(userid)]

    def copies(self, match: Callable[[dict[str, Any]], bool]) -> Counter[str]:
        """How many messages ``match`` accepts each member was delivered (members with none
        left out): what their phones show, duplicate check and rate limits applied."""
        with self._lock:
            return Counter(
                {u: n for u, box in self.inbox.items() if (n := sum(1 for m in box if match(m)))}
            )

    # --- the API --------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        late = self._answered_late
        routes = [
            Route("/cgi-bin/gettoken", late(self._gettoken), methods=["GET"]),
            Route("/cgi-bin/message/send", late(self._message_send), methods=["POST"]),
            Route(
                "/cgi-bin/message/update_template_card", late(self._update_card), methods=["POST"]
            ),
            Route("/cgi-bin/media/upload", late(self._media_upload), methods=["POST"]),
            Route("/cgi-bin/appchat/send", late(self._appchat_send), methods=["POST"]),
            Route("/cgi-bin/agent/get", late(self._agent_get), methods=["GET"]),
            Route("/cgi-bin/webhook/send", late(self._webhook_send), methods=["POST"]),
            Route("/_calls", self._calls, methods=["GET", "DELETE"]),
            Route("/_inbox", self._inbox, methods=["GET"]),
            Route("/_control", self._control, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    def _answered_late(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint, with its answer held back when the call was told to stall."""

        async def wrapped(request: Request) -> Response:
            response = await endpoint(request)
            late = getattr(request.state, "late", 0.0)
            if late:
                with self._lock:
                    self.held += 1
                try:
                    await asyncio.sleep(late)
                finally:
                    with self._lock:
                        self.held -= 1
            return response

        return wrapped

    def _record(self, api: str, request: Request, body: Any, answer: dict[str, Any]) -> None:
        params = {
            k: ("***" if k in ("access_token", "corpsecret", "key") else v)
            for k, v in request.query_params.items()
        }
        with self._lock:
            self.calls.append(
                {
                    "seq": next(self._seq),
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "api": api,
                    "params": params,
                    "body": body,
                    "errcode": answer.get("errcode", 0),
                    "answer": answer,
                    "fault": getattr(request.state, "fault", None),
                }
            )

    def _injected(self, api: str, request: Request, body: Any) -> int | None:
        """The errcode told for this call (``fail``, or a chaos fault), if any; a chaos
        timeout only marks the request to be answered late."""
        with self._lock:
            f = self._next_failure(api, body, stall=False)
            if f is not None and f.errcode is not None:
                return self._fault(request, str(f.errcode), f.errcode)
            chaos = self.chaos
            fault = chaos.draw() if chaos is not None and api in chaos.apis else None
            if fault is None or chaos is None:
                return None
            if fault == TIMEOUT:
                request.state.late = chaos.stall
                return self._fault(request, TIMEOUT)
            if fault == 42001:
                for t in self._tokens:
                    self._tokens[t] = 0.0
                return self._fault(request, "42001")  # the token check answers it
            if fault == 40014:
                self._tokens.clear()
                return self._fault(request, "40014")
            return self._fault(request, str(fault), int(fault))

    def _next_failure(self, api: str, body: Any, *, stall: bool) -> _Failure | None:
        """Take one of the next failures told for ``api`` (a stall, or an errcode); the lock
        is held."""
        for f in self._failures:
            if (
                f.api == api
                and f.times > 0
                and (f.errcode is None) == stall
                and (f.match is None or f.match(body))
            ):
                f.times -= 1
                return f
        return None

    def _stalled(self, api: str, request: Request, body: Any) -> None:
        """A call about to be carried out: held back if a stall was told for it."""
        with self._lock:
            f = self._next_failure(api, body, stall=True)
            if f is not None:
                request.state.late = f.late
                self._fault(request, "held")

    def _fault(self, request: Request, name: str, errcode: int | None = None) -> int | None:
        """Count a fault (the lock is held) and note it on the call's record."""
        self.faults[name] += 1
        request.state.fault = name
        return errcode

    def _check_token(self, request: Request) -> int:
        token = request.query_params.get("access_token")
        if not token:
            return 41001
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None:
            return 40014
        if expires <= self.now():
            return 42001
        return 60020 if not self.trusted else 0

    async def _begin(self, api: str, request: Request, *, token: bool = True) -> int:
        """Latency, then the first error this call meets (0 if none)."""
        if self.latency:
            await asyncio.sleep(self.latency)
        body = await self._json(request) if request.method == "POST" else None
        injected = self._injected(api, request, body)
        if injected is not None:
            return injected
        code = self._check_token(request) if token else 0
        if not code:
            self._stalled(api, request, body)
        return code

    def _answer(self, api: str, request: Request, body: Any, code: int, **extra: Any) -> Response:
        answer = {"errcode": code, "errmsg": ERRORS.get(code, "error"), **extra}
        if code == 60020:
            host = request.client.host if request.client else "?"
            answer["errmsg"] = f"not allow to access from your ip, from ip: {host}"
        self._record(api, request, body, answer)
        return JSONResponse(answer)

    async def _gettoken(self, request: Request) -> Response:
        api = "gettoken"
        code = await self._begin(api, request, token=False)
        q = request.query_params
        if not code and q.get("corpid") != self.corp_id:
            code = 40013
        if not code and q.get("corpsecret") != self.secret:
            code = 40001
        if code:
            return self._answer(api, request, None, code)
        now = self.now()
        with self._lock:
            # Within its validity WeCom hands out the same token again (wecom-api.md §3.1),
            # here with the time it has left.
            live = [t for t, exp in self._tokens.items() if exp > now]
            token = live[0] if live else "fake_" + secrets.token_hex(16)
            self._tokens.setdefault(token, now + self.token_ttl)
            ttl = int(self._tokens[token] - now)
        return self._answer(api, request, None, 0, access_token=token, expires_in=ttl)

    async def _json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (ValueError, ClientDisconnect):  # not JSON, or the caller is gone (killed)
            return None

    def _duplicate(self, body: dict[str, Any]) -> bool:
        """``enable_duplicate_check``: the same request inside the interval is not delivered."""
        plain = {
            k: v
            for k, v in body.items()
            if k not in ("enable_duplicate_check", "duplicate_check_interval")
        }
        fingerprint = json.dumps(plain, sort_keys=True, ensure_ascii=False)
        now = self.now()
        with self._lock:
            seen = self._recent.get(fingerprint)
            self._recent[fingerprint] = now
        if not body.get("enable_duplicate_check") or seen is None:
            return False
        return now - seen < float(body.get("duplicate_check_interval") or 1800)

    def _deliver(self, userids: list[str], message: dict[str, Any]) -> None:
        now = self.now()
        delivered = []
        with self._lock:
            for userid in userids:
                q = self._rates[userid]
                while q and q[0] <= now - 60:
                    q.popleft()
                if len(q) >= self.member_per_minute:
                    self.dropped.append((userid, message))  # WeCom drops it without an error
                    continue
                q.append(now)
                self.inbox[userid].append(message)
                delivered.append(userid)
        if self.echo and delivered:
            who = "、".join(delivered[:5]) + (
                f" 等 {len(delivered)} 人" if len(delivered) > 5 else ""
            )
            print(f"→ {who}：{readable(message)}", flush=True)  # noqa: T201

    async def _message_send(self, request: Request) -> Response:
        api = "message/send"
        code = await self._begin(api, request)
        body = await self._json(request)
        if code:
            return self._answer(api, request, body, code)
        if not isinstance(body, dict) or "msgtype" not in body:
            return self._answer(api, request, body, 40058)
        if int(body.get("agentid") or 0) != self.agent_id:
            return self._answer(api, request, body, 40056)
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        if not users or len(users) > 1000:
            return self._answer(api, request, body, 40058)
        kind = body["msgtype"]
        content = body.get(kind)
        if kind in ("text", "markdown") and not (content or {}).get("content"):
            return self._answer(api, request, body, 44004)
        invalid = [u.lower() for u in users if u.lower() in self.invalid_users]
        if len(invalid) == len(users):
            return self._answer(api, request, body, 81013)
        extra: dict[str, Any] = {"invaliduser": "|".join(invalid), "msgid": secrets.token_hex(8)}
        if kind == "template_card":
            extra["response_code"] = "rc_" + secrets.token_hex(8)
        if not self._duplicate(body):
            message: dict[str, Any] = {"msgtype": kind, kind: content}
            text = str((content or {}).get("content") or "") if isinstance(content, dict) else ""
            if kind in ("text", "markdown") and len(text.encode()) > 2048:
                message["truncated"] = True  # WeCom cuts text beyond 2048 bytes
            self._deliver(
                [u.lower() for u in users if u.lower() not in self.invalid_users], message
            )
        else:
            extra["duplicate"] = True  # not a WeCom field: lets tests see the suppression
        return self._answer(api, request, body, 0, **extra)

    async def _update_card(self, request: Request) -> Response:
        api = "message/update_template_card"
        code = await self._begin(api, request)
        body = await self._json(request)
        if code:
            return self._answer(api, request, body, code)
        if not isinstance(body, dict) or not body.get("response_code"):
            return self._answer(api, request, body, 40058)
        users = [str(u).lower() for u in body.get("userids") or []]
        self._deliver(users, {"msgtype": "update_template_card", **body})
        return self._answer(api, request, body, 0, invaliduser=[])

    async def _media_upload(self, request: Request) -> Response:
        api = "media/upload"
        code = await self._begin(api, request)
        raw = await request.body()
        name = re.search(rb'filename="([^"]*)"', raw)
        info = {
            "filename": name.group(1).decode(errors="replace") if name else "",
            "size": len(raw),
        }
        if code:
            return self._answer(api, request, info, code)
        media_id = "media_" + secrets.token_hex(8)
        with self._lock:
            self.media[media_id] = info
        return self._answer(
            api, request, info, 0, type=request.query_params.get("type", "file"), media_id=media_id
        )

    async def _appchat_send(self, request: Request) -> Response:
        api = "appchat/send"
        code = await self._begin(api, request)
        body = await self._json(request)
        if code:
            return self._answer(api, request, body, code)
        if not isinstance(body, dict) or not body.get("chatid"):
            return self._answer(api, request, body, 40058)
        with self._lock:
            self.robot_inbox["chat:" + str(body["chatid"])].append(body)
        return self._answer(api, request, body, 0)

    async def _agent_get(self, request: Request) -> Response:
        api = "agent/get"
        code = await self._begin(api, request)
        if not code and request.query_params.get("agentid") != str(self.agent_id):
            code = 40056
        if code:
            return self._answer(api, request, None, code)
        return self._answer(
            api, request, None, 0, agentid=self.agent_id, name="模范机关党建助手", close=0
        )

    async def _webhook_send(self, request: Request) -> Response:
        api = "webhook/send"
        code = await self._begin(api, request, token=False)
        body = await self._json(request)
        key = request.query_params.get("key", "")
        if not code and (not key or (self.robot_keys is not None and key not in self.robot_keys)):
            code = 93000
        if code:
            return self._answer(api, request, body, code)
        if not isinstance(body, dict) or body.get("msgtype") not in ("text", "markdown"):
            return self._answer(api, request, body, 40058)
        kind = body["msgtype"]
        content = str((body.get(kind) or {}).get("content") or "")
        cap = 4096 if kind == "markdown" else 2048
        if len(content.encode()) > cap:
            return self._answer(api, request, body, 40058)
        now = self.now()
        with self._lock:
            q = self._rates["robot:" + key]
            while q and q[0] <= now - 60:
                q.popleft()
            limited = len(q) >= self.robot_per_minute
            if not limited:
                q.append(now)
                self.robot_inbox[key].append(body)
        if limited:
            return self._answer(api, request, body, 45009)
        if self.echo:
            print(f"→ [群机器人 {key[:6]}…]：{content}", flush=True)  # noqa: T201
        return self._answer(api, request, body, 0)

    # --- for people and tests -------------------------------------------------------------

    async def _calls(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset()
            return JSONResponse({"ok": True})
        api = request.query_params.get("api")
        with self._lock:
            calls = [c for c in self.calls if api is None or c["api"] == api]
        return JSONResponse({"calls": calls})

    async def _inbox(self, request: Request) -> Response:
        user = request.query_params.get("user")
        with self._lock:
            if user:
                data: Any = {user: self.inbox.get(user.lower(), [])}
            else:
                data = dict(self.inbox)
            robots = dict(self.robot_inbox)
        return JSONResponse({"inbox": data, "robots": robots, "dropped": len(self.dropped)})

    async def _control(self, request: Request) -> Response:
        changes = await self._json(request)
        if not isinstance(changes, dict):
            return JSONResponse({"ok": False, "error": "expected a JSON object"}, status_code=400)
        self.control(**changes)
        return JSONResponse({"ok": True})


def readable(message: dict[str, Any]) -> str:
    kind = message.get("msgtype")
    value = message.get(kind) if isinstance(kind, str) else None
    if isinstance(value, dict):
        if "content" in value:
            return str(value["content"])
        if kind == "template_card":
            title = (value.get("main_title") or {}).get("title", "")
            buttons = "、".join(b.get("text", "") for b in value.get("button_list") or [])
            return f"[卡片] {title} {value.get('sub_title_text', '')} [{buttons}]".strip()
        if kind == "file":
            return f"[文件] {value.get('media_id', '')}"
    if kind == "update_template_card":
        return f"[卡片更新] {message.get('button') or message.get('template_card')}"
    return json.dumps(message, ensure_ascii=False)


# --- playing WeCom's side of the callback --------------------------------------------------


@dataclass(frozen=True)
class PlayedReply:
    """What the bot answered: HTTP status, the decrypted reply XML (if any) and its parts."""

    status: int
    xml: str | None = None
    content: str = ""
    button: str | None = None
    raw: str = ""

    @property
    def empty(self) -> bool:
        return self.status == 200 and self.xml is None


class WeComPlayer:
    """Signs, encrypts and POSTs what WeCom would, to a bot's ``/wecom/callback``."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        encoding_aes_key: str,
        corp_id: str,
        agent_id: int = DEFAULT_AGENT_ID,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.crypto = CallbackCrypto(token, encoding_aes_key, corp_id)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.client = httpx.Client(timeout=timeout)
        self._ids = itertools.count(int(time.time() * 1000) * 1000)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> WeComPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # XML as WeCom sends it

    def text_xml(
        self, userid: str, text: str, *, msg_id: int | None = None, create_time: int | None = None
    ) -> str:
        return message_xml(
            {
                "ToUserName": self.corp_id,
                "FromUserName": userid,
                "CreateTime": create_time or int(time.time()),
                "MsgType": "text",
                "Content": text,
                "MsgId": msg_id or next(self._ids),
                "AgentID": self.agent_id,
            }
        )

    def event_xml(
        self,
        userid: str,
        event: str,
        *,
        key: str | None = None,
        create_time: int | None = None,
        task_id: str | None = None,
        response_code: str | None = None,
        card_type: str | None = None,
    ) -> str:
        return message_xml(
            {
                "ToUserName": self.corp_id,
                "FromUserName": userid,
                "CreateTime": create_time or int(time.time()),
                "MsgType": "event",
                "Event": event,
                "EventKey": key,
                "TaskId": task_id,
                "CardType": card_type,
                "ResponseCode": response_code,
                "AgentID": self.agent_id,
            }
        )

    def card_click_xml(
        self,
        userid: str,
        key: str,
        *,
        task_id: str = "task_1",
        response_code: str | None = None,
        create_time: int | None = None,
    ) -> str:
        return self.event_xml(
            userid,
            "template_card_event",
            key=key,
            task_id=task_id,
            response_code=response_code or "rc_" + secrets.token_hex(8),
            card_type="button_interaction",
            create_time=create_time,
        )

    # the request

    def envelope(
        self, plaintext: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Query parameters and body of the POST WeCom would make for ``plaintext``."""
        ts = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**9))
        encrypted = self.crypto.encrypt(plaintext)
        params = {
            "msg_signature": self.crypto.sign(ts, nonce, encrypted),
            "timestamp": ts,
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{self.agent_id}]]></AgentID></xml>"
        )
        return params, body.encode()

    def post(
        self, plaintext: str, *, params: dict[str, str] | None = None, body: bytes | None = None
    ) -> PlayedReply:
        """POST ``plaintext`` (or a hand-made request) and decrypt what comes back."""
        if params is None or body is None:
            p, b = self.envelope(plaintext)
            params, body = params or p, body if body is not None else b
        resp = self.client.post(self.url, params=params, content=body)
        return self.read(resp.status_code, resp.text)

    def read(self, status: int, text: str) -> PlayedReply:
        """Verify and decrypt a reply as WeCom would; raises if its signature is wrong."""
        if status != 200 or not text.strip():
            return PlayedReply(status=status, raw=text)
        root = SafeET.fromstring(text)
        encrypted = root.findtext("Encrypt") or ""
        self.crypto.check(
            root.findtext("MsgSignature") or "",
            root.findtext("TimeStamp") or "",
            root.findtext("Nonce") or "",
            encrypted,
        )
        xml = self.crypto.decrypt(encrypted)
        inner = SafeET.fromstring(xml)
        return PlayedReply(
            status=status,
            xml=xml,
            content=inner.findtext("Content") or "",
            button=inner.findtext("Button/ReplaceName"),
            raw=text,
        )

    def say(self, userid: str, text: str) -> PlayedReply:
        return self.post(self.text_xml(userid, text))

    def click(self, userid: str, key: str, **kw: Any) -> PlayedReply:
        return self.post(self.card_click_xml(userid, key, **kw))

    def menu(self, userid: str, key: str) -> PlayedReply:
        return self.post(self.event_xml(userid, "click", key=key))

    def verify_url(self, echo: str | None = None) -> tuple[int, str, str]:
        """The GET WeCom makes when the admin saves the callback URL: (status, body, expected)."""
        plain = echo or str(secrets.randbelow(10**18))
        encrypted = self.crypto.encrypt(plain)
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        params = {
            "msg_signature": self.crypto.sign(ts, nonce, encrypted),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": encrypted,
        }
        resp = self.client.get(self.url, params=params)
        return resp.status_code, resp.text, plain
