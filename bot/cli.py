"""The ``mofan`` command line (DESIGN §4.1). Imports stay inside commands: start-up is per use."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.runtime import Runtime

app = typer.Typer(
    help="模范机关党建助手 Mofan Bot — Party branch routine in WeCom / 政务微信.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Load data from files.", no_args_is_help=True)
app.add_typer(import_app, name="import")


class State:
    config: str | None = None
    runtimes: list[Runtime] = []
    """Runtimes built by this command; their connection pools close when it ends."""


def _close_runtimes() -> None:
    while State.runtimes:
        State.runtimes.pop().dispose_engine()


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def settings() -> Settings:
    from bot.config import ConfigError, load_settings

    try:
        return load_settings(State.config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def runtime(s: Settings | None = None) -> Runtime:
    from bot.runtime import Runtime

    rt = Runtime(settings=s or settings())
    State.runtimes.append(rt)
    return rt


def require_schema(rt: Runtime) -> None:
    """Refuse to run on a database that is missing or behind the code's migrations."""
    from bot.db import current_revision, head_revision

    try:
        current = current_revision(rt.engine)
    except Exception as exc:
        raise fail(
            f"cannot open the database {_safe_url(rt.settings.database.url)}: {exc}"
        ) from None
    if current is None:
        raise fail("The database is empty. Run `mofan init` (or `mofan init --demo`) first.")
    if current != head_revision():
        raise fail(
            f"The database schema is at {current}, the code needs {head_revision()}. "
            "Run `mofan db upgrade` first."
        )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Optional[str],  # noqa: UP045  (typer needs Optional here on 3.11)
        typer.Option("--config", help="Config file (else $MOFAN_CONFIG, else ./mofan.toml)."),
    ] = None,
) -> None:
    State.config = config
    # Close the pools when the command ends (CliRunner runs many commands in one process,
    # and PostgreSQL counts every connection left open).
    ctx.call_on_close(_close_runtimes)


@app.command()
def init(
    demo: Annotated[bool, typer.Option("--demo", help="Also load a demo bureau.")] = False,
) -> None:
    """Create the database and apply migrations; --demo loads a demo bureau."""
    from bot.db import session_scope, upgrade

    rt = runtime()
    try:
        upgrade(rt.engine)
    except Exception as exc:
        raise fail(f"cannot migrate {_safe_url(rt.settings.database.url)}: {exc}") from None
    typer.echo(f"database ready: {_safe_url(rt.settings.database.url)}")
    if demo:
        from bot.demo import load_demo

        with session_scope(rt.engine) as session:
            load_demo(session=session, now=rt.clock.now())
        typer.echo("demo bureau loaded: try `mofan chat --as zhangwei 帮助`")


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (run once before starting workers)."""
    from bot.db import current_revision, upgrade

    rt = runtime()
    before = current_revision(rt.engine)
    upgrade(rt.engine)
    typer.echo(f"schema: {before or '(empty)'} -> {current_revision(rt.engine)}")


@import_app.command("members")
def import_members(
    file: Annotated[Path, typer.Argument(help="Roster .xlsx (sheet 党员) or .csv")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change.")] = False,
) -> None:
    """Load the roster (DESIGN §4.4); all or nothing."""
    from bot.db import session_scope
    from bot.roster import import_roster

    if not file.exists():
        raise fail(f"file not found: {file}")
    rt = runtime()
    require_schema(rt)
    with session_scope(rt.engine) as session:
        report = import_roster(session=session, path=file, dry_run=dry_run, now=rt.clock.now())
    for line in report.summary_lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


def _resolve_user(rt: Runtime, who: str) -> str:
    from sqlalchemy import select
    from sqlmodel import Session, col

    from bot import messages
    from bot.models import Member, Org

    with Session(rt.engine) as session:
        if session.execute(select(col(Member.id)).where(col(Member.userid) == who)).first():
            return who
        rows = session.execute(
            select(col(Member.userid), col(Member.name), col(Org.name))
            .join(Org, col(Org.id) == col(Member.branch_id))
            .where(col(Member.name) == who.strip(), col(Member.active))
        ).all()
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        # Unknown people still go through the router, which refuses them politely.
        return who
    listing = "；".join(f"{uid}（{branch}）" for uid, _, branch in rows)
    raise fail(messages.AMBIGUOUS_USER.format(name=who, candidates=listing))


@app.command()
def chat(
    as_user: Annotated[str, typer.Option("--as", help="WeCom userid or a unique name.")],
    text: Annotated[
        list[str] | None, typer.Argument(help="What to say; omit for a prompt.")
    ] = None,  # noqa: UP045
) -> None:
    """Talk to the bot as USER through the same router, and print the reply."""
    rt = runtime()
    require_schema(rt)
    userid = _resolve_user(rt, as_user)

    async def say(line: str) -> None:
        from bot.router import Inbound

        reply = await rt.router.handle(Inbound(userid=userid, text=line, channel="console"))
        typer.echo(reply.text)
        await rt.dispatcher.drain()

    async def session_loop() -> None:
        if text:
            await say(" ".join(text))
            return
        typer.echo(f"以 {userid} 的身份对话；空行或 Ctrl-D 退出。")
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                break
            if not line.strip():
                break
            await say(line)

    asyncio.run(session_loop())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Serve only.")] = False,
    workers: Annotated[
        int, typer.Option(help="Worker processes (more than 1 needs PostgreSQL).")
    ] = 1,
) -> None:
    """The HTTP callback server, with the scheduler in the same process."""
    from bot.logs import setup_logging
    from bot.serve import ServeError, check_workers, metrics_directory, run

    setup_logging()
    s = settings()
    try:
        check_workers(s, workers)
    except ServeError as exc:
        raise fail(str(exc)) from None
    # Before anything imports bot.metrics: prometheus-client picks its mode at import.
    with metrics_directory(workers):
        rt = runtime(s)
        require_schema(rt)
        # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, runs shutdown.
        run(
            rt,
            config=State.config,
            host=host,
            port=port,
            workers=workers,
            scheduler=not no_scheduler,
        )


# Command groups that live in their own modules register themselves on `app` when imported.
from bot import cli_ledger, cli_office, cli_ops, cli_schedule, cli_wecom  # noqa: E402, F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
