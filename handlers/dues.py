"""已交党费: a member records their own dues as paid; a secretary records (or, with 撤销,
corrects) a member of their branch.

``已交党费`` (this month), ``已交党费 11月``, ``已交党费 1-3月``, ``已交党费 10月、11月``;
secretary: ``已交党费 张三 [月份] [撤销]``. A month already recorded is said so and not
written twice (one row per member and month). Months up to twelve ahead may be recorded,
for members who pay in advance.
"""

from __future__ import annotations

from bot import messages as msg
from bot.calendar import local_date
from bot.models import Member
from bot.parse import ParseError, take_months
from bot.roles import EVERYONE, SECRETARIES, Role
from bot.router import Command, Context, Request
from bot.store import record_dues, remove_dues
from handlers.common import member_in_branch, reply_parse_error

UNDO_WORDS = ("撤销", "更正", "取消")
MONTHS_AHEAD = 12


async def handle(req: Request, ctx: Context) -> None:
    today = local_date(ctx.now)
    args = req.args
    undo = False
    for word in UNDO_WORDS:
        if args.endswith(word):
            undo, args = True, args[: -len(word)].strip()
    try:
        months, rest = take_months(args, today)
    except ParseError as err:
        reply_parse_error(ctx, err, msg.DUES_EXAMPLE)
        return
    member: Member | None = ctx.sender
    if rest:
        # Someone else's dues: 已交党费 张三 [月份]
        if not ctx.has(Role.SECRETARY):
            ctx.reply(msg.DUES_ONLY_SECRETARY)
            return
        name, _, tail = rest.partition(" ")
        member = member_in_branch(ctx, name)
        if member is None:
            return
        if not months:
            try:
                months, extra = take_months(tail, today)
            except ParseError as err:
                reply_parse_error(ctx, err, "已交党费 张三 11月")
                return
            if extra:
                ctx.reply(msg.BAD_MONTH.format(token=extra, example="已交党费 张三 11月"))
                return
    elif undo and not ctx.has(Role.SECRETARY):
        ctx.reply(msg.DUES_ONLY_SECRETARY)
        return
    assert member is not None
    if not months:
        months = [f"{today.year}-{today.month:02d}"]
    limit = today.year * 12 + today.month - 1 + MONTHS_AHEAD
    for m in months:
        if int(m[:4]) * 12 + int(m[5:]) - 1 > limit:
            ctx.reply(msg.DUES_TOO_FAR.format(month=msg.months([m], today.year)))
            return
    who = "" if member.id == ctx.sender.id else msg.DUES_WHO.format(name=member.name)
    if undo:
        removed = remove_dues(session=ctx.session, member=member, months=months)
        if removed:
            ctx.reply(msg.DUES_UNDONE.format(who=who, months=msg.months(removed, today.year)))
        else:
            ctx.reply(
                msg.DUES_NOTHING_TO_UNDO.format(who=who, months=msg.months(months, today.year))
            )
        return
    new = record_dues(
        session=ctx.session, member=member, months=months, at=ctx.now, recorded_by=ctx.sender
    )
    if new:
        ctx.reply(msg.DUES_DONE.format(who=who, months=msg.months(new, today.year)))
    old = [m for m in months if m not in new]
    if old:
        ctx.reply(msg.DUES_ALREADY.format(who=who, months=msg.months(old, today.year)))


COMMANDS = (
    # Two entries for one keyword: the help shows secretaries how to record for others.
    Command(
        name="dues_for_member",
        quick=True,
        keywords=("已交党费",),
        roles=SECRETARIES,
        usage=msg.DUES_USAGE_SECRETARY,
        handle=handle,
    ),
    Command(
        name="dues",
        quick=True,
        keywords=("已交党费",),
        roles=EVERYONE,
        usage=msg.DUES_USAGE,
        handle=handle,
    ),
)
