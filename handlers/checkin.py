"""签到 and 请假: a member's answer to a meeting, typed or tapped on the meeting card.

签到 is open from ``meetings.checkin_minutes_before`` the start until the end of a meeting
the member is an attendee of; ``签到 N`` (the card's button) names the meeting. A second
签到 changes nothing and says when the first one was. 请假 applies to the member's next
meeting not yet ended (or ``请假 N``); the branch secretary is told privately, inside the
send window. Both leave the card's button showing what was done.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from bot import messages as msg
from bot.models import Meeting
from bot.parse import take_int
from bot.roles import EVERYONE
from bot.router import Command, Context, Request
from bot.store import (
    LEAVE,
    SIGNED_IN,
    ask_leave,
    attendance_of,
    branch_secretaries,
    is_in_audience,
    open_meetings_for,
    sign_in,
    upcoming_meetings_for,
)
from handlers.common import place_suffix, send_time


def _window(ctx: Context) -> timedelta:
    return timedelta(minutes=ctx.settings.meetings.checkin_minutes_before)


def _named_meeting(ctx: Context, meeting_id: int) -> Meeting | None:
    meeting = ctx.session.get(Meeting, meeting_id)
    if meeting is None:
        ctx.reply(msg.MEETING_NOT_FOUND.format(id=meeting_id))
        return None
    if (
        not is_in_audience(meeting, ctx.sender)
        and attendance_of(session=ctx.session, meeting_id=meeting_id, member_id=ctx.sender.id or 0)
        is None
    ):
        ctx.reply(msg.MEETING_NOT_YOURS.format(id=meeting_id))
        return None
    if meeting.status == "cancelled":
        ctx.reply(msg.MEETING_CANCELLED.format(id=meeting_id))
        return None
    return meeting


async def handle_checkin(req: Request, ctx: Context) -> None:
    meeting_id, _ = take_int(req.args)
    before = _window(ctx)
    minutes = ctx.settings.meetings.checkin_minutes_before
    if meeting_id is not None:
        meeting = _named_meeting(ctx, meeting_id)
        if meeting is None:
            return
        if ctx.now < meeting.starts_at - before:
            ctx.reply(
                msg.CHECKIN_TOO_EARLY.format(
                    kind=meeting.kind,
                    when=msg.when(meeting.starts_at),
                    opens=msg.when(meeting.starts_at - before),
                )  # fmt: skip
            )
            return
        if ctx.now > meeting.ends_at:
            ctx.reply(msg.CHECKIN_ENDED.format(kind=meeting.kind, when=msg.when(meeting.starts_at)))
            return
    else:
        open_now = open_meetings_for(
            session=ctx.session, member=ctx.sender, now=ctx.now, before=before
        )
        if not open_now:
            ctx.reply(msg.CHECKIN_NONE_NOW.format(minutes=minutes))
            upcoming = upcoming_meetings_for(
                session=ctx.session, member=ctx.sender, now=ctx.now, limit=1
            )
            if upcoming:
                m = upcoming[0]
                ctx.reply(
                    msg.CHECKIN_NEXT.format(
                        kind=m.kind, when=msg.when(m.starts_at), place=place_suffix(m.place)
                    )
                )
            return
        # Two meetings open at once (one ending as the next opens): the one nearest now.
        meeting = min(open_now, key=lambda m: abs((m.starts_at - ctx.now).total_seconds()))
    mid, uid = meeting.id or 0, ctx.sender.id or 0
    if sign_in(session=ctx.session, meeting_id=mid, member_id=uid, at=ctx.now):
        ctx.reply(
            msg.CHECKIN_DONE.format(
                kind=meeting.kind,
                when=msg.when(meeting.starts_at),
                place=place_suffix(meeting.place),
            )
        )
    else:
        row = attendance_of(session=ctx.session, meeting_id=mid, member_id=uid)
        at = msg.when(row.at) if row is not None else ""
        ctx.reply(msg.CHECKIN_ALREADY.format(at=at, kind=meeting.kind))
    ctx.extras["card_update"] = {"replace_name": msg.BUTTON_CHECKED_IN}


async def handle_leave(req: Request, ctx: Context) -> None:
    meeting_id, reason = take_int(req.args)
    reason = reason.strip(" ：:，,。")
    if meeting_id is not None:
        meeting = _named_meeting(ctx, meeting_id)
        if meeting is None:
            return
        if meeting.ends_at <= ctx.now:
            ctx.reply(msg.LEAVE_ENDED.format(kind=meeting.kind, when=msg.when(meeting.starts_at)))
            return
    else:
        upcoming = upcoming_meetings_for(
            session=ctx.session, member=ctx.sender, now=ctx.now, limit=1
        )
        if not upcoming:
            ctx.reply(msg.LEAVE_NONE)
            return
        meeting = upcoming[0]
    mid, uid = meeting.id or 0, ctx.sender.id or 0
    before = attendance_of(session=ctx.session, meeting_id=mid, member_id=uid)
    if before is not None and before.status == SIGNED_IN:
        ctx.reply(msg.LEAVE_ALREADY_SIGNED_IN.format(kind=meeting.kind))
        return
    was_on_leave = before is not None and before.status == LEAVE
    old_reason = before.reason if before is not None else ""
    if not ask_leave(session=ctx.session, meeting_id=mid, member_id=uid, reason=reason, at=ctx.now):
        ctx.reply(msg.LEAVE_ALREADY_SIGNED_IN.format(kind=meeting.kind))  # signed in meanwhile
        return
    ctx.extras["card_update"] = {"replace_name": msg.BUTTON_ON_LEAVE}
    if was_on_leave:
        if reason and reason != old_reason:
            _tell_secretaries(ctx, meeting, reason)
            ctx.reply(msg.LEAVE_UPDATED.format(reason=reason))
        else:
            ctx.reply(msg.LEAVE_DONE.format(kind=meeting.kind, when=msg.when(meeting.starts_at)))
        return
    told = _tell_secretaries(ctx, meeting, reason)
    ctx.reply(msg.LEAVE_DONE.format(kind=meeting.kind, when=msg.when(meeting.starts_at)))
    if told:
        ctx.reply(msg.LEAVE_TOLD.format(who=told))
    if not reason:
        ctx.reply(msg.LEAVE_ADD_REASON.format(id=mid))


def _tell_secretaries(ctx: Context, meeting: Meeting, reason: str) -> str:
    """Tell the branch's secretaries (not the asker) privately; returns who was told."""
    people = [
        m
        for m in branch_secretaries(session=ctx.session, branch_id=meeting.branch_id)
        if m.id != ctx.sender.id
    ]
    if not people:
        return ""
    # A changed reason is a new message; the same reason again is the same key (sent once).
    digest = hashlib.sha1(reason.encode()).hexdigest()[:8]
    key = f"leave:{meeting.id}:{ctx.sender.id}:{digest}"
    text = msg.LEAVE_TO_SECRETARY.format(
        name=ctx.sender.name, kind=meeting.kind, when=msg.when(meeting.starts_at),
        reason=reason or msg.LEAVE_REASON_NONE,
    )  # fmt: skip
    ctx.send(people, text, key=key, rule="leave", due_at=send_time(ctx, key))
    return "、".join(m.name for m in people)


COMMANDS = (
    Command(
        name="checkin",
        quick=True,
        keywords=("签到",),
        roles=EVERYONE,
        usage=msg.CHECKIN_USAGE,
        handle=handle_checkin,
    ),
    Command(
        name="leave",
        quick=True,
        keywords=("请假",),
        roles=EVERYONE,
        usage=msg.LEAVE_USAGE,
        handle=handle_leave,
    ),
)
