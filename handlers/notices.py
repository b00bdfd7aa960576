"""Notices: 收到 (anyone), 通知 (the office), 未确认 and 催办 (the secretary, own branch).

A notice is confirmed privately, by one tap on its card (key ``收到 N``) or by saying
``收到`` — never by replying in a group. ``收到`` alone confirms the newest notice still
waiting. 催办 sends one private nudge to each member of the secretary's branch who has not
confirmed, inside the send window, and counts it against ``notices.max_nudges`` (shared with
the reminder engine's automatic nudges), so nobody is chased more than that.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlmodel import col

from bot import cards
from bot import messages as msg
from bot.broadcast import (
    NOTICE_MAX_CHARS,
    ScopeError,
    broadcast_notice,
    parse_scope,
    split_scope,
    take_deadline,
)
from bot.calendar import local_date
from bot.models import Member, Notice, Org
from bot.parse import ParseError, take_int
from bot.roles import EVERYONE, OFFICE, SECRETARIES, Role
from bot.router import Command, Context, Request
from bot.store import (
    confirm_latest,
    confirm_notice,
    confirmation_counts,
    count_nudges,
    latest_notice,
    latest_notice_for_branch,
    list_branches,
    notice_receipts,
    receipt_of,
)
from handlers.common import later_note, reply_parse_error, sees_everything, send_time


async def handle_confirm(req: Request, ctx: Context) -> None:
    notice_id, _ = take_int(req.args)
    uid = ctx.sender.id or 0
    if notice_id is None:
        done = confirm_latest(conn=ctx.connection(), member_id=uid, at=ctx.now)
        if done is None:
            ctx.reply(msg.CONFIRM_NOTHING)
            return
        ctx.reply(msg.CONFIRM_DONE.format(id=done[0], text=msg.preview(done[1])))
    else:
        notice = ctx.session.get(Notice, notice_id)
        if (
            notice is None
            or receipt_of(session=ctx.session, notice_id=notice_id, member_id=uid) is None
        ):
            ctx.reply(msg.CONFIRM_NOT_YOURS.format(id=notice_id))
            return
        if confirm_notice(session=ctx.session, notice_id=notice_id, member_id=uid, at=ctx.now):
            ctx.reply(msg.CONFIRM_DONE.format(id=notice_id, text=msg.preview(notice.text)))
        else:
            receipt = receipt_of(session=ctx.session, notice_id=notice_id, member_id=uid)
            at = msg.when(receipt.confirmed_at) if receipt and receipt.confirmed_at else ""
            ctx.reply(msg.CONFIRM_ALREADY.format(id=notice_id, at=at))
    ctx.extras["card_update"] = {"replace_name": msg.BUTTON_CONFIRMED}


async def handle_notify(req: Request, ctx: Context) -> None:
    head, body = split_scope(req.args)
    if not head:
        ctx.reply(msg.NOTIFY_EMPTY.format(example=msg.NOTIFY_EXAMPLE))
        return
    try:
        scope = parse_scope(session=ctx.session, text=head)
    except ScopeError as err:
        if err.candidates:
            ctx.reply(msg.SCOPE_AMBIGUOUS.format(token=err.token, names="、".join(err.candidates)))
        else:
            ctx.reply(msg.SCOPE_UNKNOWN.format(token=err.token, example=_example_branch(ctx)))
        return
    try:
        text, deadline = take_deadline(body, local_date(ctx.now), ctx.settings.bot.send_window[1])
    except ParseError as err:
        reply_parse_error(ctx, err, msg.NOTIFY_EXAMPLE)
        return
    if not text:
        ctx.reply(msg.NOTIFY_EMPTY.format(example=msg.NOTIFY_EXAMPLE))
        return
    if len(text) > NOTICE_MAX_CHARS:
        ctx.reply(msg.NOTIFY_TOO_LONG.format(n=len(text), max=NOTICE_MAX_CHARS))
        return
    sent = broadcast_notice(
        session=ctx.session, settings=ctx.settings, text=text, scope=scope, sender=ctx.sender,
        now=ctx.now, deadline=deadline,
    )  # fmt: skip
    if sent is None:
        ctx.reply(msg.SCOPE_EMPTY.format(scope=scope.label))
        return
    ctx.reply(
        msg.NOTIFY_DONE.format(
            id=sent.notice.id,
            n=sent.recipients,
            later=later_note(ctx, sent.due_at),
            deadline=msg.NOTIFY_DEADLINE.format(at=msg.when(deadline)) if deadline else "",
        )  # fmt: skip
    )


def _example_branch(ctx: Context) -> str:
    branches = list_branches(session=ctx.session)
    return branches[0].name if branches else "第一党支部"


def _notice_for_branch(ctx: Context, args: str) -> Notice | None:
    """Notice N from the arguments, or the newest one sent to the sender's branch."""
    notice_id, _ = take_int(args)
    if notice_id is None:
        notice = latest_notice_for_branch(session=ctx.session, branch_id=ctx.branch.id or 0)
        if notice is None:
            ctx.reply(msg.NO_NOTICE)
        return notice
    notice = ctx.session.get(Notice, notice_id)
    if notice is None:
        ctx.reply(msg.NOTICE_NOT_FOUND.format(id=notice_id))
    return notice


def _unconfirmed_in_branch(ctx: Context, notice: Notice) -> tuple[list[Member], int] | None:
    """(members of the sender's branch yet to confirm, how many it was sent to there)."""
    rows = notice_receipts(session=ctx.session, notice_id=notice.id or 0, branch_id=ctx.branch.id)
    if not rows:
        ctx.reply(msg.NOTICE_NOT_IN_BRANCH.format(id=notice.id, branch=ctx.branch.name))
        return None
    return [m for m, r in rows if r.confirmed_at is None], len(rows)


async def handle_unconfirmed(req: Request, ctx: Context) -> None:
    if sees_everything(ctx):
        await _bureau_unconfirmed(req, ctx)
        return
    notice = _notice_for_branch(ctx, req.args)
    if notice is None:
        return
    found = _unconfirmed_in_branch(ctx, notice)
    if found is None:
        return
    waiting, total = found
    nid = notice.id or 0
    ctx.reply(
        msg.UNCONFIRMED_BRANCH.format(
            id=nid,
            text=msg.preview(notice.text),
            branch=ctx.branch.name,
            confirmed=total - len(waiting),
            total=total,
        )  # fmt: skip
    )
    if waiting:
        ctx.reply(msg.UNCONFIRMED_NAMES.format(names=msg.names([m.name for m in waiting]), id=nid))
    else:
        ctx.reply(msg.UNCONFIRMED_NONE)


async def _bureau_unconfirmed(req: Request, ctx: Context) -> None:
    """The office's view: confirmations per branch, counts only (names stay with secretaries)."""
    notice_id, _ = take_int(req.args)
    if notice_id is None:
        notice = latest_notice(session=ctx.session)
    else:
        notice = ctx.session.get(Notice, notice_id)
    if notice is None:
        ctx.reply(msg.NOTICE_NOT_FOUND.format(id=notice_id) if notice_id else msg.NO_NOTICE)
        return
    counts = confirmation_counts(session=ctx.session, notice_ids=[notice.id or 0])
    names = {i: n for i, n in ctx.session.execute(select(col(Org.id), col(Org.name))).all()}
    confirmed = sum(c for c, _ in counts.values())
    total = sum(t for _, t in counts.values())
    lines = [
        msg.UNCONFIRMED_BUREAU.format(
            id=notice.id, text=msg.preview(notice.text), confirmed=confirmed, total=total
        )
    ]
    for (_, b), (c, t) in sorted(counts.items(), key=lambda kv: kv[0][1]):
        lines.append(
            msg.UNCONFIRMED_BUREAU_LINE.format(branch=names.get(b, ""), confirmed=c, total=t)
        )
    ctx.reply("\n".join(lines))


async def handle_nudge(req: Request, ctx: Context) -> None:
    notice = _notice_for_branch(ctx, req.args)
    if notice is None:
        return
    found = _unconfirmed_in_branch(ctx, notice)
    if found is None:
        return
    waiting, _ = found
    nid = notice.id or 0
    if not waiting:
        ctx.reply(msg.NUDGE_NONE.format(id=nid))
        return
    cap = ctx.settings.notices.max_nudges
    counted = count_nudges(
        session=ctx.session,
        notice_id=nid,
        member_ids=[m.id or 0 for m in waiting],
        at=ctx.now,
        cap=cap,
    )
    by_round: dict[int, list[Member]] = defaultdict(list)
    for m in waiting:
        if (m.id or 0) in counted:
            by_round[counted[m.id or 0]].append(m)
    sender = ctx.session.get(Member, notice.sender_id) if notice.sender_id else None
    due = send_time(ctx, f"notice:{nid}:nudge")
    for n, people in sorted(by_round.items()):
        # The nudge's number is in the key: a second 催办 is a new message, a retried one is not.
        body = cards.notice_nudge_card(
            notice=notice, sender_name=sender.name if sender else None, nudge=n
        )
        ctx.send(people, key=f"notice:{nid}:nudge{n}", body=body, rule="notice_nudge", due_at=due)
    sent = sum(len(p) for p in by_round.values())
    if sent:
        ctx.reply(msg.NUDGE_DONE.format(n=sent, later=later_note(ctx, due)))
    capped = len(waiting) - sent
    if capped:
        ctx.reply(msg.NUDGE_CAPPED.format(n=capped, cap=cap))


COMMANDS = (
    Command(
        name="confirm",
        quick=True,
        keywords=("收到",),
        roles=EVERYONE,
        usage=msg.CONFIRM_USAGE,
        handle=handle_confirm,
    ),
    Command(
        name="notify",
        keywords=("通知",),
        roles=OFFICE,
        usage=msg.NOTIFY_USAGE,
        handle=handle_notify,
    ),
    Command(
        name="unconfirmed",
        keywords=("未确认",),
        roles=frozenset({Role.SECRETARY, Role.OFFICE, Role.LEADER}),
        usage=msg.UNCONFIRMED_USAGE,
        handle=handle_unconfirmed,
    ),
    Command(
        name="nudge",
        keywords=("催办",),
        roles=SECRETARIES,
        usage=msg.NUDGE_USAGE,
        handle=handle_nudge,
    ),
)
