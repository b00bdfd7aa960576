"""The office's commands on the command line: ``mofan notify`` and ``mofan status``.

They run the same code as the chat commands 通知 and 状态 / 总览 (:mod:`bot.broadcast`,
:mod:`bot.status`), so the console and the chat never disagree. Heavy imports stay inside the
functions: ``mofan chat`` must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bot.cli import app, fail, require_schema, runtime

if TYPE_CHECKING:
    from bot.runtime import Runtime


@app.command()
def notify(
    to: Annotated[str, typer.Option("--to", help="全体, 书记, or branch names joined by 、")],
    text: Annotated[list[str], typer.Argument(help="The notice.")],
    deadline: Annotated[
        Optional[str],  # noqa: UP045  (typer needs Optional here on 3.11)
        typer.Option("--deadline", help="e.g. 12月5日, 2027-03-05 17:00"),
    ] = None,
) -> None:
    """Broadcast a notice (same as the office's chat command 通知)."""
    rt = runtime()
    try:
        require_schema(rt)
        _notify(rt, to, " ".join(text).strip(), deadline)
    finally:
        rt.engine.dispose()


def _notify(rt: Runtime, to: str, body: str, deadline: str | None) -> None:
    from bot import messages as msg
    from bot.broadcast import (
        NOTICE_MAX_CHARS,
        ScopeError,
        broadcast_notice,
        parse_scope,
        take_deadline,
    )
    from bot.calendar import local_date
    from bot.db import session_scope
    from bot.parse import ParseError

    if deadline:
        body = f"{body} 截止 {deadline}"
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        try:
            scope = parse_scope(session=session, text=to)
        except ScopeError as err:
            if err.candidates:
                raise fail(
                    msg.SCOPE_AMBIGUOUS.format(token=err.token, names="、".join(err.candidates))
                ) from None
            raise fail(msg.SCOPE_UNKNOWN.format(token=err.token, example="第一党支部")) from None
        try:
            body, due = take_deadline(body, local_date(now), rt.settings.bot.send_window[1])
        except ParseError as err:
            raise fail(msg.BAD_DATE.format(token=err.token, example="--deadline 12月5日")) from None
        if not body:
            raise fail(
                msg.NOTIFY_EMPTY.format(example='mofan notify --to 全体 "请于周五前报送学习计划"')
            )
        if len(body) > NOTICE_MAX_CHARS:
            raise fail(msg.NOTIFY_TOO_LONG.format(n=len(body), max=NOTICE_MAX_CHARS))
        sent = broadcast_notice(
            session=session,
            settings=rt.settings,
            text=body,
            scope=scope,
            sender=None,
            now=now,
            deadline=due,
        )
        if sent is None:
            raise fail(msg.SCOPE_EMPTY.format(scope=scope.label))
        later = msg.NOTIFY_LATER.format(at=msg.when(sent.due_at)) if sent.due_at > now else ""
        typer.echo(
            msg.NOTIFY_DONE.format(
                id=sent.notice.id,
                n=sent.recipients,
                later=later,
                deadline=msg.NOTIFY_DEADLINE.format(at=msg.when(due)) if due else "",
            )
        )


@app.command()
def status(
    branch: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--branch", help="One branch (else every branch, as 总览)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Branch or bureau status (the same figures as the chat's 状态 and 总览)."""
    rt = runtime()
    try:
        require_schema(rt)
        _status(rt, branch, as_json)
    finally:
        rt.engine.dispose()


def _status(rt: Runtime, branch: str | None, as_json: bool) -> None:
    from sqlmodel import Session

    from bot.status import (
        branch_status,
        dumps,
        overview,
        render_branch_status,
        render_overview,
    )
    from bot.store import find_branches

    now = rt.clock.now()
    with Session(rt.engine) as session:
        if branch:
            found = find_branches(session=session, name=branch)
            if len(found) != 1:
                names = "、".join(b.name for b in found)
                raise fail(
                    f"branch {branch!r} matches {names}" if found else f"no branch {branch!r}"
                )
            # The console is the office's view: per-branch figures without 学时 (DESIGN §2).
            st = branch_status(
                session=session, settings=rt.settings, branch=found[0], now=now, with_study=False
            )
            typer.echo(dumps(st.to_json()) if as_json else render_branch_status(st))
            return
        ov = overview(session=session, settings=rt.settings, now=now, exact=True)
        if as_json:
            from bot.scorecard import explain, with_explanations

            why = explain(session=session, settings=rt.settings, cards=ov.cards, at=now)
            for card, explained in zip(ov.cards, why, strict=True):
                data = with_explanations(card.to_json(), explained)
                latest = ov.by_branch.get(card.branch_id)
                if latest is not None:
                    data["latest_notice"] = {
                        "id": latest[0],
                        "confirmed": latest[1],
                        "total": latest[2],
                    }
                typer.echo(dumps(data))
            return
        from bot.scorecard import ranks

        typer.echo(render_overview(ov, limit=len(ov.cards), ranks=ranks(ov.cards, rt.settings)))
