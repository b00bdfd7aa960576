"""Notices and tasks to a scope: 全体, 书记, branch names joined by 、 — shared by the office's
chat commands (通知, 任务) and ``mofan notify``.

A broadcast writes the notice and one receipt per recipient (:func:`bot.store.create_notice`)
and queues one private message per recipient in the same transaction: a card with a
确认收到 button (a text message first when the notice is too long for a card). Branch
scopes also post the notice in the branch's group chat through its group robot when
``wecom.robot_broadcast`` is on and the roster names a robot; confirmation stays private.

Messages to other people go out inside the send window on a workday: a notice sent at 21:00
waits until the next workday's window opens (DESIGN §4.6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache

from sqlmodel import Session

from bot import cards
from bot import messages as msg
from bot.calendar import WorkCalendar, in_send_window, next_send_slot, spread
from bot.clock import SHANGHAI, to_utc
from bot.config import Settings
from bot.models import Member, Notice, Org
from bot.outbox import Outgoing, enqueue, text_body
from bot.parse import ParseError, take_date, take_time
from bot.store import create_notice, find_branches, list_branches, members_in_scope
from bot.text import normalize

EVERYONE_WORDS = ("全体", "全部", "所有人", "全体党员")
SECRETARY_WORDS = ("书记", "各支部书记", "支部书记")
SCOPE_SEPARATORS = re.compile(r"[、,，;；/]")
NOTICE_MAX_CHARS = 1000
"""A WeCom text message holds 2048 bytes (about 680 Chinese characters); longer notices are
split by the channel, but a notice this long belongs in a document."""
_DEADLINE = re.compile(r"(?:^|\s|[，,。；;])(?:截止|截至|截止日期|截止时间)[:：]?\s*(?P<when>.+)$")


class ScopeError(ValueError):
    """A scope word that names nothing (``token``), or several branches."""

    def __init__(self, token: str, candidates: list[str] | None = None) -> None:
        super().__init__(token)
        self.token = token
        self.candidates = candidates or []


@dataclass
class Scope:
    label: str
    everyone: bool = False
    secretaries: bool = False
    branches: list[Org] = field(default_factory=list)


def parse_scope(*, session: Session, text: str) -> Scope:
    """``全体`` / ``书记`` / branch names joined by 、 (or ，). Raises :class:`ScopeError`."""
    scope = Scope(label=normalize(text))
    for part in SCOPE_SEPARATORS.split(normalize(text)):
        part = part.strip()
        if not part:
            continue
        if part in EVERYONE_WORDS:
            scope.everyone = True
            continue
        if part in SECRETARY_WORDS:
            scope.secretaries = True
            continue
        found = find_branches(session=session, name=part)
        if not found:
            raise ScopeError(part)
        if len(found) > 1:
            raise ScopeError(part, [b.name for b in found])
        if found[0] not in scope.branches:
            scope.branches.append(found[0])
    if not (scope.everyone or scope.secretaries or scope.branches):
        raise ScopeError(text)
    return scope


def split_scope(text: str) -> tuple[str, str]:
    """``全体 请于…`` → (``全体``, ``请于…``): the first word is the scope."""
    text = normalize(text)
    head, _, rest = text.partition(" ")
    return head, rest.strip()


def scope_branches(*, session: Session, scope: Scope) -> list[Org]:
    """The branches a task scope covers: every branch for 全体 or 书记, else those named."""
    if scope.everyone or scope.secretaries:
        return list_branches(session=session)
    return list(scope.branches)


def take_deadline(text: str, today: date, default_time: time) -> tuple[str, datetime | None]:
    """Split a trailing ``截止 12月5日 [18:00]`` off a notice; raises :class:`ParseError`."""
    m = _DEADLINE.search(text)
    if not m:
        return text, None
    day, rest = take_date(m.group("when"), today)
    if day is None:
        raise ParseError("date", m.group("when"))
    span, rest = take_time(rest)
    if rest.strip(" 。.,，"):
        raise ParseError("date", m.group("when"))
    at = datetime.combine(day, span.start if span else default_time, tzinfo=SHANGHAI)
    return text[: m.start()].strip(" ，,。"), to_utc(at)


@lru_cache(maxsize=8)
def _calendar(holidays: tuple[date, ...], workdays: tuple[date, ...]) -> WorkCalendar:
    return WorkCalendar(holidays, workdays)


def calendar_for(settings: Settings) -> WorkCalendar:
    """One shared calendar per configuration (its holiday tables load once)."""
    c = settings.calendar
    return _calendar(tuple(c.extra_holidays), tuple(c.extra_workdays))


def delivery_time(settings: Settings, now: datetime, seed: str) -> datetime:
    """When a message to other people may go out: now inside the send window, else the next
    workday's window opening, moved off :00/:30."""
    window = settings.bot.send_window
    cal = calendar_for(settings)
    if in_send_window(now, window, cal):
        return now
    return spread(next_send_slot(now, window, cal), seed, window)


@dataclass(frozen=True)
class Broadcast:
    notice: Notice
    recipients: int
    due_at: datetime


def broadcast_notice(
    *,
    session: Session,
    settings: Settings,
    text: str,
    scope: Scope,
    sender: Member | None,
    now: datetime,
    deadline: datetime | None = None,
) -> Broadcast | None:
    """Record the notice and queue it to everyone in scope; None if the scope holds nobody."""
    recipients = members_in_scope(
        session=session,
        everyone=scope.everyone,
        secretaries=scope.secretaries,
        branch_ids=[b.id for b in scope.branches if b.id is not None],
    )
    if not recipients:
        return None
    notice = create_notice(
        session=session, text=text, scope=scope.label, sender=sender, recipients=recipients,
        now=now, deadline=deadline,
    )  # fmt: skip
    key = f"notice:{notice.id}"
    due = delivery_time(settings, now, key)
    body = cards.notice_card(notice=notice, sender_name=sender.name if sender else None)
    items: list[Outgoing] = []
    if not cards.notice_text_fits_card(notice):
        full = text_body(cards.notice_fallback(notice))
        items += [
            Outgoing(
                key=f"{key}:text:{m.userid}",
                recipient=m.userid,
                body=full,
                due_at=due,
                rule="notice",
            )
            for m in recipients
        ]
    items += [
        Outgoing(key=f"{key}:{m.userid}", recipient=m.userid, body=body, due_at=due, rule="notice")
        for m in recipients
    ]
    items += _robot_posts(settings, notice, scope, due)
    enqueue(session, items, now=now)
    return Broadcast(notice, len(recipients), due)


def _robot_posts(settings: Settings, notice: Notice, scope: Scope, due: datetime) -> list[Outgoing]:
    """The branch group posts, when the group-robot channel offers them (it is optional)."""
    if not scope.branches or not settings.wecom.robot_broadcast:
        return []
    try:
        from bot.channels.webhook import robot_outgoing
    except ImportError:  # the robot channel is not installed in this build
        return []
    deadline = (
        msg.NOTICE_FALLBACK_DEADLINE.format(at=msg.when(notice.deadline)) if notice.deadline else ""
    )
    text = msg.NOTICE_ROBOT.format(id=notice.id, text=notice.text, deadline=deadline)
    posts = []
    for branch in scope.branches:
        item = robot_outgoing(branch, text, f"notice:{notice.id}", due, settings=settings)
        if item is not None:
            posts.append(item)
    return posts
