"""Notice follow-ups: not confirmed after ``notices.nudge_after_hours`` (24 h), one private
nudge to the member; after ``notices.secretary_after_hours`` (48 h) the branch secretary
gets the list. Never outside the send window: a moment that falls outside it waits for the
next opening.

At most ``notices.max_nudges`` nudges per notice per person, counting the secretary's 催办:
the runner adds one to the receipt's count when it enqueues a nudge. A person 催办'd lately
is nudged no sooner than ``nudge_after_hours`` after that. Nothing is chased past the
notice's deadline.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from bot import messages
from bot.cards import notice_nudge_card
from bot.config import Settings
from bot.models import Notice
from schedules.base import (
    NoticeInfo,
    Person,
    PlanData,
    Reminder,
    names,
    on_day,
    place_after,
    userids,
)

NAME = "notices"
SUMMARY_CHARS = 20
FOLLOW_UP_DAYS = 7
"""A follow-up missed while the bot was down is still sent within this many days."""


def summary(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= SUMMARY_CHARS else line[:SUMMARY_CHARS] + "…"


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    cfg = settings.notices
    window = settings.bot.send_window
    out: list[Reminder] = []
    for n in data.notices:
        if not n.open_receipts:
            continue
        for r in n.open_receipts:
            person = data.members.get(r.member_id)
            if person is None or r.nudges >= cfg.max_nudges:
                continue
            nominal = n.created_at + timedelta(hours=cfg.nudge_after_hours)
            if r.last_nudged_at is not None:
                nominal = max(nominal, r.last_nudged_at + timedelta(hours=cfg.nudge_after_hours))
            at = place_after(nominal, data.cal, window)
            until = _until(n, at)
            if on_day(at, now) and at < until:
                body = nudge_card(n, r.nudges + 1)
                out.append(
                    Reminder(
                        at=at,
                        rule=NAME,
                        key=f"notice:{n.id}:nudge:member-{person.id}",
                        to=[person.userid],
                        text=str(body["text"]),
                        body=body,
                        until=until,
                        nudge_receipt=r.id,
                    )
                )
        at = place_after(
            n.created_at + timedelta(hours=cfg.secretary_after_hours), data.cal, window
        )
        until = _until(n, at)
        if on_day(at, now) and at < until:
            out.extend(_lists(n, at, until, data))
    return out


_NUDGE_KEY = re.compile(r"notice:(\d+):nudge:member-(\d+)")


def waiting_until(key: str, data: PlanData, settings: Settings) -> datetime | None:
    """Until when a nudge already in the outbox, not sent yet, still makes sense; the runner
    asks (``schedules.runner``) because enqueueing a nudge counts it on the receipt, after
    which :func:`due` plans the next one instead. A receipt confirmed meanwhile: not at all
    (the notice's creation is returned). None: not a nudge, or a notice no longer loaded."""
    m = _NUDGE_KEY.fullmatch(key)
    if m is None:
        return None
    n = next((x for x in data.notices if x.id == int(m.group(1))), None)
    if n is None:
        return None
    r = next((x for x in n.open_receipts if x.member_id == int(m.group(2))), None)
    if r is None:
        return n.created_at
    nominal = n.created_at + timedelta(hours=settings.notices.nudge_after_hours)
    at = r.last_nudged_at or place_after(nominal, data.cal, settings.bot.send_window)
    return _until(n, at)


def nudge_card(n: NoticeInfo, nudge: int) -> dict[str, Any]:
    """The notice again with its 确认收到 button (``bot.cards``), our wording as its text."""
    notice = Notice(id=n.id, text=n.text, scope="", created_at=n.created_at, deadline=n.deadline)
    return notice_nudge_card(notice=notice, sender_name=n.sender_name, nudge=nudge)


def _until(n: NoticeInfo, at: datetime) -> datetime:
    limit = at + timedelta(days=FOLLOW_UP_DAYS)
    return min(limit, n.deadline) if n.deadline is not None else limit


def _lists(n: NoticeInfo, at: datetime, until: datetime, data: PlanData) -> list[Reminder]:
    by_branch: dict[int, list[Person]] = defaultdict(list)
    for r in n.open_receipts:
        person = data.members.get(r.member_id)
        if person is not None:
            by_branch[person.branch_id].append(person)
    out = []
    for branch_id, people in sorted(by_branch.items()):
        branch = data.orgs.get(branch_id)
        if branch is None:
            continue
        people.sort(key=lambda p: p.id)
        out.append(
            Reminder(
                at=at,
                rule=NAME,
                key=f"notice:{n.id}:unconfirmed:branch-{branch_id}",
                to=userids(data.secretaries(branch_id)),
                text=messages.R_NOTICE_UNCONFIRMED.format(
                    branch=branch.name,
                    id=n.id,
                    summary=summary(n.text),
                    count=len(people),
                    names=names(people),
                ),
                until=until,
            )
        )
    return out
