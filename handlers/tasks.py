"""Tasks: 任务 (the office creates one per branch in scope) and 进度 (a secretary reports on
their branch's task, ``完成`` at the end marks it done).

``任务 <名称> <截止日期> [范围]``: the name is everything before the first word that reads as
a date; the scope (全体 by default, or 书记 / branch names joined by 、) follows the date.
Each responsible secretary is told privately inside the send window; the reminder engine
counts down to the due date from there.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from bot import messages as msg
from bot.broadcast import ScopeError, parse_scope, scope_branches
from bot.calendar import local_date
from bot.models import Task
from bot.parse import ParseError, take_date
from bot.roles import OFFICE, SECRETARIES
from bot.router import Command, Context, Request
from bot.store import branch_secretaries, create_tasks, open_tasks, record_progress
from handlers.common import later_note, reply_parse_error, send_time

DONE_WORDS = ("完成", "已完成", "办结", "已办结")


async def handle_task(req: Request, ctx: Context) -> None:
    example = msg.TASK_EXAMPLE
    words = req.args.split(" ")
    today = local_date(ctx.now)
    due = None
    name_words: list[str] = []
    rest = ""
    try:
        for i, word in enumerate(words):
            day, after = take_date(" ".join(words[i:]), today)
            if day is not None and (name_words or i == len(words) - 1 or not after):
                due, rest = day, after
                break
            name_words.append(word)
    except ParseError as err:
        reply_parse_error(ctx, err, example)
        return
    name = " ".join(name_words).strip()
    if not name:
        ctx.reply(msg.TASK_NO_NAME.format(example=example))
        return
    if due is None:
        ctx.reply(msg.TASK_NO_DATE.format(example=example))
        return
    if due < today:
        ctx.reply(msg.TASK_PAST.format(date=msg.md(due)))
        return
    try:
        scope = parse_scope(session=ctx.session, text=rest or "全体")
    except ScopeError as err:
        if err.candidates:
            ctx.reply(msg.SCOPE_AMBIGUOUS.format(token=err.token, names="、".join(err.candidates)))
        else:
            ctx.reply(msg.SCOPE_UNKNOWN.format(token=err.token, example="第一党支部"))
        return
    branches = scope_branches(session=ctx.session, scope=scope)
    if not branches:
        ctx.reply(msg.TASK_NO_BRANCHES)
        return
    name = name[:200]
    existing = set(
        ctx.session.scalars(
            select(col(Task.branch_id)).where(col(Task.name) == name, col(Task.due_on) == due)
        )
    )
    tasks = create_tasks(
        session=ctx.session, name=name, due_on=due, branch_ids=[b.id or 0 for b in branches],
        created_by=ctx.sender, now=ctx.now,
    )  # fmt: skip
    key_base = f"task:{name}:{due.isoformat()}"
    due_at = send_time(ctx, key_base)
    text = msg.TASK_NOTE.format(name=name, due=msg.md_w(due))
    for task in tasks:
        if task.branch_id in existing:
            continue
        people = branch_secretaries(session=ctx.session, branch_id=task.branch_id)
        ctx.send(people, text, key=f"task:{task.id}:new", rule="task", due_at=due_at)
    ctx.reply(
        msg.TASK_DONE.format(
            n=len(tasks), name=name, due=msg.md_w(due), later=later_note(ctx, due_at)
        )
    )
    if existing:
        ctx.reply(msg.TASK_EXISTING.format(n=len(existing)))


def _find_task(ctx: Context, words: list[str]) -> tuple[Task | None, list[str]]:
    """The branch task whose name the leading words spell (longest match first)."""
    tasks = open_tasks(session=ctx.session, branch_id=ctx.branch.id or 0)
    text = " ".join(words)
    exact = sorted((t for t in tasks if text.startswith(t.name)), key=lambda t: -len(t.name))
    if exact:
        task = exact[0]
        return task, text[len(task.name) :].strip().split(" ") if text[
            len(task.name) :
        ].strip() else []
    first = words[0] if words else ""
    loose = [t for t in tasks if first and first in t.name]
    if len(loose) == 1:
        return loose[0], words[1:]
    if len(loose) > 1:
        ctx.reply(
            msg.PROGRESS_AMBIGUOUS.format(
                name=first, names="、".join(f"「{t.name}」" for t in loose)
            )
        )
        return None, []
    # A task already done can still take a note (回头看).
    branch_tasks = ctx.session.scalars(select(Task).where(col(Task.branch_id) == ctx.branch.id))
    done = [t for t in branch_tasks if first and (text.startswith(t.name) or first in t.name)]
    if len(done) == 1:
        rest = text[len(done[0].name) :] if text.startswith(done[0].name) else " ".join(words[1:])
        return done[0], rest.strip().split(" ") if rest.strip() else []
    names = "、".join(f"「{t.name}」" for t in tasks)
    hint = msg.PROGRESS_OPEN_LIST.format(names=names) if tasks else msg.PROGRESS_NO_OPEN
    ctx.reply(msg.PROGRESS_NO_TASK.format(name=first, open=hint))
    return None, []


async def handle_progress(req: Request, ctx: Context) -> None:
    words = [w for w in req.args.split(" ") if w]
    if not words:
        ctx.reply(msg.USAGE.format(usage=msg.PROGRESS_USAGE))
        return
    task, rest = _find_task(ctx, words)
    if task is None:
        return
    done = bool(rest) and rest[-1] in DONE_WORDS
    note = " ".join(rest).strip()
    if not note:
        ctx.reply(msg.PROGRESS_NO_NOTE.format(name=task.name))
        return
    was_done = task.done_at
    record_progress(
        session=ctx.session, task=task, member=ctx.sender, note=note, done=done, at=ctx.now
    )
    if was_done is not None:
        ctx.reply(msg.PROGRESS_ALREADY_DONE.format(name=task.name, at=msg.when(was_done)))
        return
    ctx.reply(
        msg.PROGRESS_DONE.format(name=task.name, done=msg.PROGRESS_MARKED_DONE if done else "")
    )


COMMANDS = (
    Command(
        name="task",
        keywords=("任务",),
        roles=OFFICE,
        usage=msg.TASK_USAGE,
        handle=handle_task,
    ),
    Command(
        name="progress",
        keywords=("进度",),
        roles=SECRETARIES,
        usage=msg.PROGRESS_USAGE,
        handle=handle_progress,
    ),
)
