"""Passing things up: 意见 (anyone's complaint or suggestion to the office — the 投诉建议
channel the 2026 办法 requires), 办实事 (a deed for the branch's 我为群众办实事 ledger),
报告 (a secretary's 请示报告 to the 党委) and 已阅 (the office acknowledges a 报告; the
secretary is told).

Messages to the office go out privately inside the send window; a 报告 arrives as a card
whose 已阅 button is the same as saying ``已阅 N``.
"""

from __future__ import annotations

from bot import cards
from bot import messages as msg
from bot.models import Feedback, Member
from bot.parse import take_int
from bot.roles import EVERYONE, OFFICE, SECRETARIES
from bot.router import Command, Context, Request
from bot.store import acknowledge_feedback, office_members, record_deed, record_feedback
from handlers.common import send_time

MAX_CHARS = 1000


def _text(req: Request) -> str:
    return req.args.strip(" ：:，,")[:MAX_CHARS]


async def handle_feedback(req: Request, ctx: Context) -> None:
    text = _text(req)
    if not text:
        ctx.reply(msg.FEEDBACK_EMPTY)
        return
    row = record_feedback(
        session=ctx.session, member=ctx.sender, kind="意见", text=text, at=ctx.now
    )
    office = office_members(session=ctx.session)
    key = f"feedback:{row.id}"
    note = msg.FEEDBACK_TO_OFFICE.format(
        id=row.id, name=ctx.sender.name, branch=ctx.branch.name, text=text
    )
    ctx.send(office, note, key=key, rule="feedback", due_at=send_time(ctx, key))
    ctx.reply(msg.FEEDBACK_DONE.format(id=row.id))


async def handle_deed(req: Request, ctx: Context) -> None:
    text = _text(req)
    if not text:
        ctx.reply(msg.DEED_EMPTY)
        return
    row = record_deed(session=ctx.session, member=ctx.sender, text=text, at=ctx.now)
    ctx.reply(msg.DEED_DONE.format(branch=ctx.branch.name, id=row.id))


async def handle_report(req: Request, ctx: Context) -> None:
    text = _text(req)
    if not text:
        ctx.reply(msg.REPORT_EMPTY)
        return
    row = record_feedback(
        session=ctx.session, member=ctx.sender, kind="报告", text=text, at=ctx.now
    )
    key = f"report:{row.id}"
    body = cards.report_card(report=row, name=ctx.sender.name, branch=ctx.branch.name)
    ctx.send(
        office_members(session=ctx.session),
        key=key,
        body=body,
        rule="report",
        due_at=send_time(ctx, key),
    )
    ctx.reply(msg.REPORT_DONE.format(id=row.id))


async def handle_ack(req: Request, ctx: Context) -> None:
    report_id, _ = take_int(req.args)
    report = ctx.session.get(Feedback, report_id) if report_id is not None else None
    if report is None or report.kind != "报告":
        ctx.reply(msg.ACK_NOT_FOUND.format(id=report_id if report_id is not None else req.args))
        return
    ctx.extras["card_update"] = {"replace_name": msg.BUTTON_ACK}
    author = ctx.session.get(Member, report.member_id)
    if not acknowledge_feedback(session=ctx.session, feedback_id=report.id or 0, at=ctx.now):
        at = msg.when(report.acknowledged_at) if report.acknowledged_at else ""
        ctx.reply(msg.ACK_ALREADY.format(id=report.id, at=at))
        return
    if author is not None:
        key = f"report:{report.id}:ack"
        text = msg.ACK_TO_REPORTER.format(id=report.id, text=msg.preview(report.text, 30))
        ctx.send([author], text, key=key, rule="report", due_at=send_time(ctx, key))
    ctx.reply(msg.ACK_DONE.format(name=author.name if author else "", id=report.id))


COMMANDS = (
    Command(
        name="feedback",
        quick=True,
        keywords=("意见",),
        roles=EVERYONE,
        usage=msg.FEEDBACK_USAGE,
        handle=handle_feedback,
    ),
    Command(
        name="deed",
        quick=True,
        keywords=("办实事",),
        roles=EVERYONE,
        usage=msg.DEED_USAGE,
        handle=handle_deed,
    ),
    Command(
        name="report",
        quick=True,
        keywords=("报告",),
        roles=SECRETARIES,
        usage=msg.REPORT_USAGE,
        handle=handle_report,
    ),
    Command(
        name="ack",
        quick=True,
        keywords=("已阅",),
        roles=OFFICE,
        usage=msg.ACK_USAGE,
        handle=handle_ack,
    ),
)
