"""Hostile requests to ``/wecom/callback`` (issue 8 item 3): never a 5xx, nothing written.

A seeded generator makes requests the way an attacker or a broken proxy would: missing and
wrong signatures, truncated, padded and bit-flipped ciphertext, someone else's receive id,
malformed XML outside and inside the envelope, DOCTYPEs and entity expansion, bodies over the
size limit, random bytes, odd query strings, and replays of messages already answered. None
of them may get a 5xx or change a row in any table. The app is driven in process through
``httpx.ASGITransport``; ``bench/hostile_fuzz.py`` runs the same generator at 100,000+.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, literal, select, union_all
from sqlmodel import SQLModel

from bot.app import create_app
from bot.channels.wecom.crypto import CallbackCrypto
from bot.channels.wecom.protocol import (
    DEDUPE_KEY_MAX,
    MAX_BODY_BYTES,
    message_xml,
    parse_callback,
)
from bot.fake_wecom import DEFAULT_AES_KEY, DEFAULT_AGENT_ID, DEFAULT_CORP_ID, DEFAULT_TOKEN
from tests.factories import small_bureau
from tests.fakes.wecom import configure_wecom

URL = "/wecom/callback"
MEMBER = "zhangsan"
"""An active member of ``small_bureau``: messages from them would be handled (and written)."""


@dataclass(frozen=True)
class Attack:
    kind: str
    method: str
    params: dict[str, str]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@functools.cache
def _count_all() -> Any:
    return union_all(
        *(
            select(literal(i), func.count()).select_from(t)
            for i, t in enumerate(SQLModel.metadata.sorted_tables)
        )
    )


def row_counts(engine: Engine) -> tuple[int, ...]:
    """Rows in every table, in one round trip."""
    with engine.connect() as conn:
        return tuple(n for _, n in sorted(conn.execute(_count_all()).all()))


class Fuzzer:
    """Generates hostile requests from a seed; ``replayable`` holds requests already answered."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.crypto = CallbackCrypto(DEFAULT_TOKEN, DEFAULT_AES_KEY, DEFAULT_CORP_ID)
        self.other = CallbackCrypto(DEFAULT_TOKEN, DEFAULT_AES_KEY, "wwsomeoneelse")
        self.replayable: list[Attack] = []
        self.msg_ids = iter(range(10**12, 10**13))
        self.kinds: list[tuple[str, Callable[[], Attack]]] = [
            (name[len("_k_") :], getattr(self, name))
            for name in sorted(dir(self))
            if name.startswith("_k_")
        ]

    # building blocks

    def text_xml(self, user: str = MEMBER, content: str = "学习 30分钟 党章") -> str:
        return message_xml(
            {
                "ToUserName": DEFAULT_CORP_ID,
                "FromUserName": user,
                "CreateTime": 1764036000,
                "MsgType": "text",
                "Content": content,
                "MsgId": next(self.msg_ids),
                "AgentID": DEFAULT_AGENT_ID,
            }
        )

    def signed(
        self, encrypted: str, crypto: CallbackCrypto | None = None, *, skew: int | None = None
    ) -> dict[str, str]:
        # Sent now, give or take a few minutes of clock difference (unless told otherwise).
        offset = skew if skew is not None else self.rng.randint(-300, 300)
        ts, nonce = str(int(time.time()) + offset), str(self.rng.randrange(10**9))
        sig = (crypto or self.crypto).sign(ts, nonce, encrypted)
        return {"msg_signature": sig, "timestamp": ts, "nonce": nonce}

    @staticmethod
    def envelope(encrypted: str) -> bytes:
        return (
            f"<xml><ToUserName><![CDATA[{DEFAULT_CORP_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{DEFAULT_AGENT_ID}]]></AgentID></xml>"
        ).encode()

    def post(self, kind: str, encrypted: str, **kw: Any) -> Attack:
        return Attack(kind, "POST", self.signed(encrypted), self.envelope(encrypted), **kw)

    def junk(self, n: int) -> str:
        alphabet = "abcXYZ019+/=<>&;%\"' \n\t\x00中文\ufeff"
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def valid(self) -> tuple[dict[str, str], bytes, str]:
        encrypted = self.crypto.encrypt(self.text_xml())
        return self.signed(encrypted), self.envelope(encrypted), encrypted

    # attacks (each picked with equal chance)

    def _k_missing_params(self) -> Attack:
        params, body, _ = self.valid()
        drop = self.rng.sample(sorted(params), self.rng.randint(1, 3))
        return Attack(
            "missing_params", "POST", {k: v for k, v in params.items() if k not in drop}, body
        )

    def _k_bad_signature(self) -> Attack:
        params, body, _ = self.valid()
        params["msg_signature"] = self.rng.choice(
            ["", "0" * 40, f"{self.rng.getrandbits(160):040x}", self.junk(self.rng.randint(1, 80))]
        )
        return Attack("bad_signature", "POST", params, body)

    def _k_signature_of_other_fields(self) -> Attack:
        params, body, _ = self.valid()
        field_ = self.rng.choice(["timestamp", "nonce"])
        params[field_] = params[field_] + "1"  # the signature no longer covers what is sent
        return Attack("signature_of_other_fields", "POST", params, body)

    def _k_bit_flip(self) -> Attack:
        params, _, encrypted = self.valid()
        raw = bytearray(base64.b64decode(encrypted))
        i = self.rng.randrange(len(raw))
        raw[i] ^= 1 << self.rng.randrange(8)
        return Attack("bit_flip", "POST", params, self.envelope(base64.b64encode(raw).decode()))

    def _k_truncated_ciphertext(self) -> Attack:
        _, _, encrypted = self.valid()
        raw = base64.b64decode(encrypted)
        cut = self.rng.choice([self.rng.randrange(len(raw)), (len(raw) // 16 - 1) * 16, 16, 0])
        text = self.rng.choice(
            [
                base64.b64encode(raw[:cut]).decode(),
                encrypted[: self.rng.randrange(1, len(encrypted))],
            ]
        )
        return self.post("truncated_ciphertext", text or "A")

    def _k_padded_ciphertext(self) -> Attack:
        """Blocks appended to a message already answered.

        wechatpy's unpadding reads only the last byte (PKCS#7 over 32-byte blocks, the other
        pad bytes unchecked), so about 1 in 256 random extra blocks decrypts to the original
        message: re-signed, that is the same message again, and must be a harmless replay.
        """
        if self.replayable:
            encrypted = _encrypt_of(self.rng.choice(self.replayable).body)
        else:
            encrypted = self.valid()[2]
        raw = base64.b64decode(encrypted)
        extra = self.rng.choice(
            [bytes(16), self.rng.randbytes(16), self.rng.randbytes(self.rng.randrange(1, 40))]
        )
        # (Text after the base64 padding is not an attack: the decoder ignores it, so it is
        # the same, validly signed ciphertext.)
        text = base64.b64encode(raw + extra).decode()
        return self.post("padded_ciphertext", text)

    def _k_not_base64(self) -> Attack:
        return self.post(
            "not_base64", self.junk(self.rng.randint(1, 200)).replace("]]>", "") or "!"
        )

    def _k_wrong_receive_id(self) -> Attack:
        encrypted = self.other.encrypt(self.text_xml())
        return self.post("wrong_receive_id", encrypted)

    def _k_malformed_envelope(self) -> Attack:
        params, body, encrypted = self.valid()
        variants = [
            body[: self.rng.randrange(len(body))],
            body.replace(b"<xml>", b"<root>").replace(b"</xml>", b"</root>"),
            body.replace(b"Encrypt", b"Encrypted"),
            b"<xml><Encrypt></Encrypt></xml>",
            b"<xml><Encrypt><Encrypt>" + encrypted.encode() + b"</Encrypt></Encrypt></xml>",
            b"\xff\xfe" + body,
            body + b"<xml/>",
            b"",
            self.junk(self.rng.randint(1, 300)).encode(),
        ]
        return Attack("malformed_envelope", "POST", params, self.rng.choice(variants))

    def _k_entity_envelope(self) -> Attack:
        params, _, encrypted = self.valid()
        laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
            for p, c in zip("abcdefgh", "bcdefghi", strict=False)
        )
        variants = [
            f"<!DOCTYPE xml [{laughs}]><xml><Encrypt>&i;</Encrypt></xml>",
            '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>',
            f'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><Encrypt>{encrypted}</Encrypt></xml>',
            f'<?xml version="1.0"?><!DOCTYPE xml><xml><Encrypt>{encrypted}</Encrypt></xml>',
        ]
        return Attack("entity_envelope", "POST", params, self.rng.choice(variants).encode())

    def _k_hostile_plaintext(self) -> Attack:
        """Properly signed and encrypted, but the XML inside is broken or dangerous."""
        good = self.text_xml()
        variants = [
            good[: self.rng.randrange(len(good))],
            '<!DOCTYPE xml [<!ENTITY x "x">]>' + good.replace("党章", "&x;"),
            good.replace("FromUserName", "From"),
            good.replace("MsgType", "Type"),
            "<xml><MsgType>text</MsgType><FromUserName><a>b</a></FromUserName></xml>",
            self.junk(self.rng.randint(0, 200)),
            "",
        ]
        return self.post("hostile_plaintext", self.crypto.encrypt(self.rng.choice(variants)))

    def _k_harmless_strangers(self) -> Attack:
        """Well-formed and signed, from nobody on the roster or of a kind nothing records."""
        user = self.rng.choice(["nobody", "", " ", "zhangsan\x00", "<x>", "a" * 300])
        xml = self.rng.choice(
            [
                self.text_xml(user or "nobody", self.junk(30)),
                self.text_xml(MEMBER).replace("[CDATA[text]]", "[CDATA[image]]"),
                message_xml(
                    {"ToUserName": DEFAULT_CORP_ID, "FromUserName": MEMBER, "CreateTime": 1,
                     "MsgType": "event", "Event": self.rng.choice(["enter_agent", "view", "LOCATION"]),
                     "AgentID": DEFAULT_AGENT_ID}
                ),
            ]
        )  # fmt: skip
        return self.post("harmless_strangers", self.crypto.encrypt(xml))

    def _k_huge_body(self) -> Attack:
        params, body, _ = self.valid()
        size = self.rng.choice([MAX_BODY_BYTES + 1, MAX_BODY_BYTES * 2, 1 << 20])
        pad = b" " * (size - len(body))
        huge = self.rng.choice([body[:-6] + pad + b"</xml>", b"A" * size])
        headers = {}
        if self.rng.random() < 0.3:  # a lying Content-Length must not help
            headers["content-length"] = str(self.rng.choice([10, MAX_BODY_BYTES]))
        return Attack("huge_body", "POST", params, huge, headers=headers)

    def _k_random_bytes(self) -> Attack:
        params, _, _ = self.valid()
        return Attack("random_bytes", "POST", params, self.rng.randbytes(self.rng.randint(0, 2048)))

    def _k_odd_query(self) -> Attack:
        params, body, _ = self.valid()
        key = self.rng.choice(sorted(params))
        params[key] = self.rng.choice(
            ["中文", "%00", "a" * 5000, "\ufeff" + params[key], params[key] + " "]
        )
        return Attack("odd_query", "POST", params, body)

    def _k_bad_verify(self) -> Attack:
        echo = self.crypto.encrypt("echo-" + self.junk(8))
        params = self.signed(echo)
        params["echostr"] = echo
        broken = self.rng.choice(["sig", "echo", "missing", "corp", "truncated"])
        if broken == "sig":
            params["msg_signature"] = "f" * 40
        elif broken == "echo":
            params["echostr"] = echo[:-4] + "AAAA"
        elif broken == "missing":
            params.pop(self.rng.choice(sorted(params)))
        elif broken == "truncated":
            params["echostr"] = echo[:20]
            params.update(self.signed(echo[:20]))
        else:
            other = self.other.encrypt("echo")
            params = {**self.signed(other), "echostr": other}
        return Attack("bad_verify", "GET", params)

    def _k_stale_timestamp(self) -> Attack:
        """A well-formed, correctly signed message whose timestamp is days away from now: a
        replay of a captured request (the claim that would dedupe it may be long pruned)."""
        _, body, encrypted = self.valid()
        days = self.rng.choice([-400, -31, -2, 2, 3650])
        skew = days * 86400 + self.rng.randint(-3600, 3600)
        return Attack("stale_timestamp", "POST", self.signed(encrypted, skew=skew), body)

    def _k_replay(self) -> Attack:
        if not self.replayable:
            return self._k_bad_signature()
        old = self.rng.choice(self.replayable)
        if self.rng.random() < 0.5:
            return Attack("replay", old.method, old.params, old.body)
        # WeCom's own retry: the same message, signed afresh.
        return Attack("replay", old.method, self.signed(_encrypt_of(old.body)), old.body)

    def next(self) -> Attack:
        return self.rng.choice(self.kinds)[1]()


def _encrypt_of(body: bytes) -> str:
    start = body.index(b"<Encrypt><![CDATA[") + len(b"<Encrypt><![CDATA[")
    return body[start : body.index(b"]]>", start)].decode()


ALLOWED = {
    "replay": {200},
    "padded_ciphertext": {200, 400, 403},
    "harmless_strangers": {200, 400},
    "bad_signature": {400, 403},
    "signature_of_other_fields": {403},
    "bit_flip": {403},
    "wrong_receive_id": {403},
    "huge_body": {400},
    "entity_envelope": {400},
    "stale_timestamp": {400},
}
"""Kinds whose answer is known exactly; every other kind must be a 400 or 403."""


async def send(client: httpx.AsyncClient, a: Attack) -> int:
    if a.method == "GET":
        return (await client.get(URL, params=a.params)).status_code
    resp = await client.post(URL, params=a.params, content=a.body, headers=a.headers)
    return resp.status_code


async def seed_replayable(client: httpx.AsyncClient, fuzzer: Fuzzer, n: int) -> None:
    """Real messages from a member, answered once: later sends of them are replays."""
    for i in range(n):
        params, body, _ = fuzzer.valid()
        if i % 2:
            body = fuzzer.envelope(fuzzer.crypto.encrypt(fuzzer.text_xml(content="帮助")))
            params = fuzzer.signed(_encrypt_of(body))
        assert await send(client, Attack("seed", "POST", params, body)) == 200
        fuzzer.replayable.append(Attack("seed", "POST", params, body))


def check(kind: str, status: int) -> str | None:
    """What is wrong with ``status`` as the answer to ``kind``, if anything."""
    if status >= 500:
        return f"{kind}: server error {status}"
    if status not in ALLOWED.get(kind, {400, 403}):
        return f"{kind}: unexpected {status}"
    return None


# --- tests --------------------------------------------------------------------------------


@pytest.fixture
def client(runtime, settings, session, engine) -> Iterator[httpx.AsyncClient]:
    small_bureau(session)
    session.commit()
    configure_wecom(settings, "http://127.0.0.1:9")  # the API is never called here
    app = create_app(runtime, scheduler=False)
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")
    app.state.callback.close()


def test_thousands_of_hostile_requests_get_4xx_and_write_nothing(client, engine):
    fuzzer = Fuzzer(seed=8)
    problems: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()

    async def go() -> None:
        async with client:
            await seed_replayable(client, fuzzer, 6)
            for _ in range(2000):
                attack = fuzzer.next()
                before = row_counts(engine)
                status = await send(client, attack)
                statuses[(attack.kind, status)] += 1
                if (problem := check(attack.kind, status)) is not None:
                    problems.append(problem)
                if row_counts(engine) != before:
                    problems.append(f"{attack.kind} ({status}) wrote rows")

    asyncio.run(go())
    assert not problems, problems[:20]
    kinds = {k for k, _ in statuses}
    assert kinds == {name for name, _ in fuzzer.kinds}, "every attack was tried"


def test_replays_get_the_first_answer_again_and_run_nothing(client, engine):
    fuzzer = Fuzzer(seed=1)

    async def go() -> list[bytes]:
        async with client:
            params, body, _ = fuzzer.valid()
            bodies = []
            for _ in range(3):
                resp = await client.post(URL, params=params, content=body)
                assert resp.status_code == 200
                bodies.append(resp.content)
                if len(bodies) == 1:
                    after_first = row_counts(engine)
                else:
                    assert row_counts(engine) == after_first
            return bodies

    bodies = asyncio.run(go())
    replies = {fuzzer.crypto.decrypt(_encrypt_of(b)) for b in bodies}
    assert len(replies) == 1 and "学习" in replies.pop()  # the same stored reply, each time


def test_a_non_ascii_signature_is_a_403_not_a_500(client, engine):
    """Regression: hmac.compare_digest raised TypeError on non-ASCII str, which was a 500."""
    fuzzer = Fuzzer(seed=2)
    params, body, _ = fuzzer.valid()
    params["msg_signature"] = "签名" + params["msg_signature"][2:]
    before = row_counts(engine)

    async def go() -> int:
        async with client:
            return await send(client, Attack("bad_signature", "POST", params, body))

    assert asyncio.run(go()) == 403
    assert row_counts(engine) == before


def test_over_long_userids_and_event_keys_are_answered_not_500(client, engine):
    """Regression: on PostgreSQL a userid over 64 characters, or an event's dedupe key over
    200, overflowed its column in the claim and the callback answered 500."""
    fuzzer = Fuzzer(seed=3)
    stranger = fuzzer.crypto.encrypt(fuzzer.text_xml(user="a" * 300))
    click = message_xml(
        {"ToUserName": DEFAULT_CORP_ID, "FromUserName": MEMBER, "CreateTime": 1764036000,
         "MsgType": "event", "Event": "click", "EventKey": "帮助" + "k" * 190,
         "AgentID": DEFAULT_AGENT_ID}
    )  # fmt: skip
    clicked = fuzzer.crypto.encrypt(click)
    before = row_counts(engine)

    async def go() -> list[int]:
        async with client:
            first = await send(client, fuzzer.post("stranger", stranger))
            assert row_counts(engine) == before  # a stranger writes nothing
            return [first] + [await send(client, fuzzer.post("click", clicked)) for _ in range(2)]

    assert asyncio.run(go()) == [200, 200, 200]
    key = parse_callback(click).dedupe_key
    assert len(key) <= DEDUPE_KEY_MAX and key == parse_callback(click).dedupe_key
