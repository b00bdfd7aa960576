"""帮助: the usage lines of every command this person may use (help lives with each handler).

Help must fit in one WeCom message (2048 bytes): when the full lines for someone with many
roles would not, it lists the commands' forms only and ``帮助 <命令>`` explains one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from bot import messages
from bot.models import Member
from bot.roles import EVERYONE, Role
from bot.router import Command, Context, Request, usage_for

HELP_BYTES = 2000
"""Room for help inside WeCom's 2048-byte message, with a margin for a long name."""
SEPARATOR = " —— "


@lru_cache(maxsize=64)
def _body(roles: frozenset[Role], table: tuple[Command, ...] | None) -> tuple[str, ...]:
    """The lines under the greeting; cached per role set, since they depend on nothing else."""
    usages = usage_for(roles, table)
    full = [f"· {u}" for u in usages]
    if len("\n".join(full).encode()) <= HELP_BYTES - 200:
        return (*full, messages.HELP_FOOTER)
    forms = [f"· {u.split(SEPARATOR)[0]}" for u in usages]
    return (*forms, messages.HELP_MORE, messages.HELP_FOOTER)


def help_text(
    member: Member, roles: frozenset[Role], table: Sequence[Command] | None = None
) -> str:
    body = _body(roles, tuple(table) if table is not None else None)
    return "\n".join((messages.HELP_HEADER.format(name=member.name), *body))


def explain(word: str, roles: frozenset[Role], table: Sequence[Command] | None) -> str:
    """The usage line of the command ``word`` names, if this person may use it."""
    for usage in usage_for(roles, table):
        form = usage.split(SEPARATOR)[0]
        if form.split(" ")[0] == word or form.startswith(word):
            return usage
    return messages.HELP_UNKNOWN.format(word=word)


async def handle(req: Request, ctx: Context) -> None:
    table = ctx.commands or None
    if req.args:
        ctx.reply(explain(req.args, ctx.roles, table))
        return
    ctx.reply(help_text(ctx.sender, ctx.roles, table))


COMMANDS = (
    Command(
        name="help",
        quick=True,
        keywords=("帮助", "help", "菜单", "?"),
        roles=EVERYONE,
        usage="帮助 [命令] —— 查看可用命令，或某个命令的说明",
        handle=handle,
    ),
)
