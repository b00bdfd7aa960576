"""The callback protocol: the encrypted envelope, the decrypted message, passive replies.

The outer envelope is parsed with defusedxml (no DOCTYPE, no entities) *before* anything is
trusted; the decrypted message with wechatpy's parser, whose raw fields we read ourselves,
because wechatpy turns ``template_card_event`` into an ``UnknownMessage`` (wecom-api.md §5.4).
Passive replies are rendered here rather than with wechatpy's ``TextReply``, which does not
escape ``]]>`` inside CDATA.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from wechatpy.enterprise import parse_message

MAX_BODY_BYTES = 64 * 1024
"""DESIGN §4.3: a callback body over 64 KiB is refused (WeCom's are a few hundred bytes)."""
DEDUPE_KEY_MAX = 200
"""``InboundMessage.dedupe_key``'s column length."""

PASSIVE_TEXT_BYTES = 2048
"""A passive text reply's ``Content`` is cut by WeCom beyond 2048 bytes (wecom-api.md §2.4)."""

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class MalformedError(Exception):
    """Not a callback we can read: bad XML, a DOCTYPE or entity, a missing field (HTTP 400)."""


@dataclass(frozen=True)
class Envelope:
    encrypt: str
    to_user: str | None
    agent_id: str | None


def parse_envelope(body: bytes) -> Envelope:
    """The outer ``<xml><Encrypt>…`` of a POST; no DTD or entity is ever expanded."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedError(f"envelope: {type(exc).__name__}") from None
    encrypt = root.findtext("Encrypt")
    if root.tag != "xml" or not encrypt:
        raise MalformedError("envelope: no <Encrypt>")
    return Envelope(encrypt.strip(), root.findtext("ToUserName"), root.findtext("AgentID"))


@dataclass(frozen=True)
class CallbackMessage:
    """One decrypted message or event, with the raw fields a router needs."""

    msg_type: str
    from_user: str
    create_time: str
    to_user: str = ""
    agent_id: str = ""
    content: str = ""
    msg_id: str | None = None
    event: str | None = None
    """Lower-case event name: click, enter_agent, subscribe, template_card_event …"""
    event_key: str | None = None
    task_id: str | None = None
    card_type: str | None = None
    response_code: str | None = None

    @property
    def dedupe_key(self) -> str:
        """WeCom's retry identity: MsgId, or FromUserName+CreateTime+Event+EventKey for events."""
        if self.msg_id:
            key = f"msg:{self.msg_id}"
        else:
            key = (
                f"evt:{self.from_user}:{self.create_time}:{self.event or ''}:{self.event_key or ''}"
            )
        if len(key) > DEDUPE_KEY_MAX:
            # A long EventKey (up to 128 bytes) from a long userid can exceed the column
            # (PostgreSQL refuses the insert: a 500): keep a prefix and a digest of the whole.
            key = key[: DEDUPE_KEY_MAX - 41] + ":" + hashlib.sha1(key.encode()).hexdigest()
        return key


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def parse_callback(plaintext: str) -> CallbackMessage:
    """The decrypted XML as a :class:`CallbackMessage`; raises :class:`MalformedError`."""
    if _DTD.search(plaintext):
        raise MalformedError("message: DOCTYPE or ENTITY")
    try:
        msg = parse_message(plaintext)
        data: dict[str, Any] = dict(msg._data) if msg is not None else {}
    except Exception as exc:  # xmltodict/expat errors, or a missing MsgType
        raise MalformedError(f"message: {type(exc).__name__}") from None
    msg_type = (_text(data, "MsgType") or "").lower()
    from_user = _text(data, "FromUserName")
    if not msg_type or not from_user:
        raise MalformedError("message: no MsgType or FromUserName")
    event = _text(data, "Event")
    return CallbackMessage(
        msg_type=msg_type,
        from_user=from_user,
        create_time=_text(data, "CreateTime") or "",
        to_user=_text(data, "ToUserName") or "",
        agent_id=_text(data, "AgentID") or "",
        content=_text(data, "Content") or "",
        msg_id=_text(data, "MsgId"),
        event=event.lower() if event else None,
        event_key=_text(data, "EventKey"),
        task_id=_text(data, "TaskId"),
        card_type=_text(data, "CardType"),
        response_code=_text(data, "ResponseCode"),
    )


def cdata(value: str) -> str:
    """``value`` as CDATA, with any ``]]>`` inside split so it cannot close the section."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(*, to_user: str, corp_id: str, create_time: int, content: str) -> str:
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(corp_id)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def update_button_xml(*, to_user: str, corp_id: str, create_time: int, replace_name: str) -> str:
    """Passive 模板卡片更新: the clicked card's button shows ``replace_name`` (greyed out)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(corp_id)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[update_button]]></MsgType>"
        f"<Button><ReplaceName>{cdata(replace_name)}</ReplaceName></Button></xml>"
    )


def message_xml(fields: dict[str, str | int | None]) -> str:
    """A flat callback message as WeCom sends it (used by the fake WeCom and the tests)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        inner = str(value) if isinstance(value, int) else cdata(str(value))
        parts.append(f"<{key}>{inner}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"
