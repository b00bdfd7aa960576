"""Outbox bodies with WeCom template cards, each carrying its text fallback.

Body shape (the contract with the channels): ``{"msgtype": "template_card", "template_card":
{…WeCom template_card JSON…}, "text": fallback}``. The WeCom channel sends the card; the
console channel, the group robot and members reading WeCom inside WeChat (微工作台, which
shows no cards) get ``text``.

Every button's ``key`` is the reply keyword itself (``收到 12``, ``签到 5``, ``请假 5``,
``已阅 3``): the router treats a click's EventKey as text, so a click has exactly the effect
of typing those words, and the fallback text tells card-less readers to type them.

All cards are ``button_interaction``: WeCom's ``text_notice`` card has no buttons (its body
only opens a URL, with no callback), so a one-tap 确认收到 needs the button card.
``task_id`` must be unique per app ([0-9a-zA-Z_-@], ≤128 bytes): callers pass one per send
purpose (``notice-12``, ``meeting-5-invite`` …).
"""

from __future__ import annotations

from typing import Any

from bot import messages as msg
from bot.models import Feedback, Meeting, Notice

TITLE_MAX = 26
DESC_MAX = 30
SUBTITLE_MAX = 112
"""WeCom's suggested lengths; longer text is cut by the client."""
NOTICE_IN_CARD_MAX = 100
"""A notice longer than this goes out as a text message first and the card refers to it."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card_body(card: dict[str, Any], fallback: str) -> dict[str, Any]:
    return {"msgtype": "template_card", "template_card": card, "text": fallback}


def button_card(
    *,
    task_id: str,
    title: str,
    desc: str = "",
    subtitle: str = "",
    fields: list[tuple[str, str]] | None = None,
    buttons: list[tuple[str, str, int]],
    source: str = "",
) -> dict[str, Any]:
    """A ``button_interaction`` card; ``buttons`` are (text, key, style) with style 1–4."""
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "task_id": task_id,
        "main_title": {"title": _cut(title, TITLE_MAX), "desc": _cut(desc, DESC_MAX)},
        "button_list": [{"text": t, "key": k, "style": s} for t, k, s in buttons[:6]],
    }
    if source:
        card["source"] = {"desc": _cut(source, 13)}
    if subtitle:
        card["sub_title_text"] = _cut(subtitle, SUBTITLE_MAX)
    if fields:
        card["horizontal_content_list"] = [
            {"keyname": _cut(k, 5), "value": _cut(v, 26)} for k, v in fields[:6]
        ]
    return card


def notice_text_fits_card(notice: Notice) -> bool:
    return len(notice.text) <= NOTICE_IN_CARD_MAX


def notice_fallback(notice: Notice) -> str:
    deadline = (
        msg.NOTICE_FALLBACK_DEADLINE.format(at=msg.when(notice.deadline)) if notice.deadline else ""
    )
    return msg.NOTICE_FALLBACK.format(id=notice.id, text=notice.text, deadline=deadline)


def notice_card(
    *, notice: Notice, sender_name: str | None, task_id: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """The notice with a 确认收到 button (key ``收到 N``)."""
    fields = []
    if notice.deadline:
        fields.append((msg.NOTICE_CARD_DEADLINE, msg.when(notice.deadline)))
    subtitle = notice.text if notice_text_fits_card(notice) else msg.NOTICE_SEE_ABOVE
    card = button_card(
        task_id=task_id or f"notice-{notice.id}",
        title=title or f"通知{notice.id}",
        desc=msg.NOTICE_CARD_DESC.format(
            sender=sender_name or msg.NOTICE_SENDER_DEFAULT,
            date=msg.md(msg.local(notice.created_at).date()),
        ),
        subtitle=subtitle,
        fields=fields,
        buttons=[(msg.BUTTON_CONFIRM, f"收到 {notice.id}", 1)],
    )
    return card_body(card, notice_fallback(notice))


def notice_nudge_card(*, notice: Notice, sender_name: str | None, nudge: int) -> dict[str, Any]:
    """A reminder of an unconfirmed notice, with the same 确认收到 button."""
    body = notice_card(
        notice=notice,
        sender_name=sender_name,
        task_id=f"notice-{notice.id}-nudge{nudge}",
        title=msg.NUDGE_TITLE.format(id=notice.id),
    )
    body["text"] = msg.R_NOTICE_NUDGE.format(id=notice.id, summary=msg.preview(notice.text, 20))
    return body


def meeting_fallback(meeting: Meeting, *, checkin_minutes: int) -> str:
    return msg.MEETING_FALLBACK.format(
        kind=meeting.kind,
        span=msg.span(meeting.starts_at, meeting.ends_at),
        place=f"，{meeting.place}" if meeting.place else "",
        topic=f"，{meeting.topic}" if meeting.topic else "",
        minutes=checkin_minutes,
        id=meeting.id,
    )


def meeting_card(
    *,
    meeting: Meeting,
    branch_name: str,
    task_id: str,
    checkin_minutes: int,
    text: str | None = None,
) -> dict[str, Any]:
    """A meeting with 签到 and 请假 buttons (keys ``签到 N`` and ``请假 N``).

    ``text`` replaces the fallback (the reminder engine's wording, say).
    """
    fields = [(msg.MEETING_CARD_WHEN, msg.span(meeting.starts_at, meeting.ends_at))]
    if meeting.place:
        fields.append((msg.MEETING_CARD_PLACE, meeting.place))
    card = button_card(
        task_id=task_id,
        title=meeting.kind,
        desc=msg.MEETING_CARD_DESC.format(branch=branch_name),
        subtitle=meeting.topic,
        fields=fields,
        buttons=[
            (msg.BUTTON_CHECKIN, f"签到 {meeting.id}", 1),
            (msg.BUTTON_LEAVE, f"请假 {meeting.id}", 2),
        ],
    )
    return card_body(card, text or meeting_fallback(meeting, checkin_minutes=checkin_minutes))


def report_card(*, report: Feedback, name: str, branch: str) -> dict[str, Any]:
    """A 请示报告 for the office with a 已阅 button (key ``已阅 N``)."""
    card = button_card(
        task_id=f"report-{report.id}",
        title=msg.REPORT_CARD_TITLE.format(id=report.id),
        desc=f"{branch} {name}",
        subtitle=report.text,
        buttons=[(msg.BUTTON_ACK, f"已阅 {report.id}", 1)],
    )
    fallback = msg.REPORT_FALLBACK.format(id=report.id, branch=branch, name=name, text=report.text)
    return card_body(card, fallback)
