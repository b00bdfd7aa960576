"""帮助: the usage lines of every command this person may use (help lives with each handler)."""

from __future__ import annotations

from collections.abc import Sequence

from bot import messages
from bot.models import Member
from bot.roles import EVERYONE, Role
from bot.router import Command, Context, Request, usage_for


def help_text(
    member: Member, roles: frozenset[Role], table: Sequence[Command] | None = None
) -> str:
    lines = [messages.HELP_HEADER.format(name=member.name)]
    lines += [f"· {u}" for u in usage_for(roles, table)]
    lines.append(messages.HELP_FOOTER)
    return "\n".join(lines)


async def handle(req: Request, ctx: Context) -> None:
    ctx.reply(help_text(ctx.sender, ctx.roles, ctx.commands or None))


COMMANDS = (
    Command(
        name="help",
        keywords=("帮助", "help", "菜单", "?"),
        roles=EVERYONE,
        usage="帮助 —— 查看可用命令",
        handle=handle,
    ),
)
