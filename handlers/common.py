"""What several handlers share: scope checks, finding a member or a meeting, error replies.

Not a capability (it has no ``COMMANDS``) and not in ``HANDLERS``.
"""

from __future__ import annotations

from datetime import datetime

from bot import messages as msg
from bot.broadcast import delivery_time
from bot.models import Meeting, Member, Org
from bot.parse import ParseError
from bot.roles import Role
from bot.router import Context
from bot.store import find_members


def sees_everything(ctx: Context) -> bool:
    """The office and leaders see every branch (leaders read-only)."""
    return ctx.has(Role.OFFICE) or ctx.has(Role.LEADER)


def is_own_secretary(ctx: Context, branch_id: int) -> bool:
    return ctx.has(Role.SECRETARY) and ctx.sender.branch_id == branch_id


def reply_parse_error(ctx: Context, err: ParseError, example: str) -> None:
    """``日期看不懂：13月40日。示例：…`` and the like."""
    template = {
        "date": msg.BAD_DATE,
        "time": msg.BAD_TIME,
        "month": msg.BAD_MONTH,
    }.get(err.what)
    if err.what == "duration":
        ctx.reply(msg.BAD_DURATION.format(token=err.token))
    elif template is not None:
        ctx.reply(template.format(token=err.token, example=example))
    else:
        ctx.reply(msg.USAGE.format(usage=example))


def send_time(ctx: Context, seed: str) -> datetime:
    """When a message this command causes to *other* people goes out (the send window)."""
    return delivery_time(ctx.settings, ctx.now, seed)


def later_note(ctx: Context, due: datetime) -> str:
    return msg.NOTIFY_LATER.format(at=msg.when(due)) if due > ctx.now else ""


def member_in_branch(ctx: Context, name: str) -> Member | None:
    """The secretary's branch member called ``name`` (or with that userid); replies and returns
    None when there is none, several, or the person is in another branch (nothing changes)."""
    branch = ctx.branch
    found = find_members(session=ctx.session, name=name, branch_id=branch.id)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        listing = "、".join(f"{m.name}（{m.userid}）" for m in found)
        ctx.reply(msg.MEMBER_AMBIGUOUS.format(branch=branch.name, name=name, candidates=listing))
        return None
    if find_members(session=ctx.session, name=name):
        ctx.reply(msg.MEMBER_OTHER_BRANCH.format(name=name, branch=branch.name))
    else:
        ctx.reply(msg.MEMBER_NOT_FOUND.format(name=name))
    return None


def meeting_in_scope(ctx: Context, meeting_id: int, *, write: bool) -> Meeting | None:
    """Meeting ``meeting_id`` if the sender may see it (or change it, with ``write``)."""
    meeting = ctx.session.get(Meeting, meeting_id)
    if meeting is None:
        ctx.reply(msg.MEETING_NOT_FOUND.format(id=meeting_id))
        return None
    own = is_own_secretary(ctx, meeting.branch_id)
    if own or (not write and sees_everything(ctx)):
        return meeting
    ctx.reply(msg.MEETING_OTHER_BRANCH.format(id=meeting_id, branch=ctx.branch.name))
    return None


def branch_name(ctx: Context, branch_id: int) -> str:
    if branch_id == ctx.branch.id:
        return ctx.branch.name
    org = ctx.session.get(Org, branch_id)
    return org.name if org else ""


def place_suffix(place: str) -> str:
    return f" {place}" if place else ""
