"""导出 台账 [年份]: the year's 台账 (:mod:`bot.ledger`) as an Excel file, sent to whoever asked.

Who gets what (exporting changes nothing, so it is open to every role that may read a
branch's records):

- the office (党委办) and leaders (党委委员, read-only): every branch, with 学时 as branch
  aggregates only — per-person 学时 is private to the member and their secretary;
- a secretary or committee member: their own branch, with the per-member study register.

The workbook is written into ``[ledger] export_dir`` and sent through the outbox as a file
body ``{"msgtype": "file", "path": ..., "text": ...}``: the WeCom channel uploads it, the
console channel prints the path (and the reply names it too). Exports older than
``[ledger] keep_days`` are deleted at the next export. The year defaults to this one
(reported up to now); a past year is reported whole.
"""

from __future__ import annotations

import re

from bot import messages as msg
from bot.calendar import local_date
from bot.roles import Role
from bot.router import Command, Context, Request
from bot.store import list_branches
from handlers.common import sees_everything

EXPORT_ROLES = frozenset({Role.SECRETARY, Role.OFFICE, Role.LEADER})
RELATIVE_YEARS = {"今年": 0, "本年": 0, "去年": 1, "上年": 1, "前年": 2}
FIRST_YEAR = 2000


def parse_year(args: str, this_year: int) -> int | None:
    """``2025``, ``2025年``, ``今年``, ``去年``, or nothing (this year); None if unreadable."""
    text = args.strip().removesuffix("年度").removesuffix("年").strip()
    if not text:
        return this_year
    word = args.strip().removesuffix("度")
    if word in RELATIVE_YEARS:
        return this_year - RELATIVE_YEARS[word]
    if re.fullmatch(r"\d{4}", text):
        return int(text)
    return None


async def handle_export(req: Request, ctx: Context) -> None:
    this_year = local_date(ctx.now).year
    year = parse_year(req.args, this_year)
    if year is None or year < FIRST_YEAR:
        ctx.reply(msg.LEDGER_BAD_YEAR.format(token=req.args))
        return
    if year > this_year:
        ctx.reply(msg.LEDGER_FUTURE_YEAR.format(year=year))
        return
    everything = sees_everything(ctx)
    branches = list_branches(session=ctx.session) if everything else [ctx.branch]
    if not branches:
        ctx.reply(msg.LEDGER_NO_BRANCH)
        return
    scope = msg.LEDGER_SCOPE_ALL if everything else ctx.branch.name
    # openpyxl is imported only when someone exports: every other command starts faster.
    from bot.ledger import export_path, prune_exports, write_ledger

    path = export_path(ctx.settings, year=year, scope=scope, now=ctx.now)
    try:
        prune_exports(ctx.settings, now=ctx.now)
        result = write_ledger(
            session=ctx.session,
            settings=ctx.settings,
            year=year,
            now=ctx.now,
            path=path,
            branches=branches,
            member_study=not everything,
        )
    except OSError as exc:
        ctx.reply(msg.LEDGER_FAILED.format(error=exc.strerror or exc))
        return
    body = {
        "msgtype": "file",
        "path": str(result.path),
        "text": msg.LEDGER_FILE_TEXT.format(year=year, scope=scope, name=result.path.name),
    }
    which = "all" if everything else f"branch-{ctx.branch.id}"
    ctx.send(
        [ctx.sender], key=f"ledger:{year}:{which}:{ctx.now.isoformat()}", body=body, rule="ledger"
    )
    ctx.reply(
        msg.LEDGER_DONE.format(
            year=year, scope=scope, branches=result.branches, meetings=result.meetings
        )
    )
    if ctx.channel == "console":
        ctx.reply(msg.LEDGER_DONE_PATH.format(path=result.path))


COMMANDS = (
    Command(
        name="export_ledger",
        keywords=("导出台账", "导出 台账"),
        roles=EXPORT_ROLES,
        usage=msg.LEDGER_USAGE,
        handle=handle_export,
    ),
)
