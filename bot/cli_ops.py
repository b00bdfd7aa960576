"""Operations commands: ``mofan backup FILE|DIR [--keep N]`` and ``mofan restore FILE [--force]``.

``mofan db upgrade`` lives in :mod:`bot.cli`. Exit codes: 0 done, 1 refused or failed,
3 the database is PostgreSQL (the message gives the pg_dump / pg_restore commands).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import app, fail, settings

PG_EXIT = 3


@app.command()
def backup(
    dest: Annotated[
        str,
        typer.Argument(help="Backup file, or a directory (DIR/) for a time-stamped file."),
    ],
    keep: Annotated[
        int, typer.Option(help="With a directory: keep only the newest N backups (0: all).")
    ] = 0,
) -> None:
    """Copy the SQLite database while it runs (online backup API), then check the copy."""
    from bot import backup as ops
    from bot.clock import SystemClock

    s = settings()
    target = Path(dest)
    try:
        if dest.endswith(("/", os.sep)):
            target.mkdir(parents=True, exist_ok=True)
        info = ops.backup(s.database.url, target, now=SystemClock().now())
    except ops.UsePgTools as exc:
        raise fail(str(exc), PG_EXIT) from None
    except (ops.BackupError, OSError) as exc:
        raise fail(f"backup failed: {exc}") from None
    typer.echo(
        f"backup written: {info.path} ({info.size} bytes, schema {info.revision}, "
        f"{info.total_rows} rows, integrity ok)"
    )
    if target.is_dir():
        for old in ops.prune(target, keep):
            typer.echo(f"removed old backup: {old}")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A file written by `mofan backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that holds data.")
    ] = False,
) -> None:
    """Replace the configured SQLite database with a checked backup. Stop the bot first."""
    from bot import backup as ops
    from bot.clock import SystemClock

    s = settings()
    try:
        result = ops.restore(s.database.url, source, force=force, now=SystemClock().now())
    except ops.UsePgTools as exc:
        raise fail(str(exc), PG_EXIT) from None
    except (ops.BackupError, OSError) as exc:
        raise fail(f"restore refused: {exc}") from None
    if result.previous is not None:
        typer.echo(f"previous database saved as {result.previous}")
    typer.echo(
        f"restored {result.info.path} into {result.target} "
        f"(schema {result.info.revision}, {result.info.total_rows} rows)"
    )
    if result.needs_upgrade:
        typer.echo("the backup's schema is older than this version: run `mofan db upgrade` next")
