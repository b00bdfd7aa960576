"""``mofan export ledger --year Y [--branch NAME] -o FILE.xlsx``: the year-end 台账 (DESIGN §4.1).

The workbook is :mod:`bot.ledger`'s: a summary, the explained scorecards and the registers
of every branch (or of one). The operator running the CLI holds the database, so the study
register lists 学时 per member. Exit codes: 0 written, 1 refused (no such branch, a year
not begun, the file cannot be written), 2 bad config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.cli import app, fail, require_schema, runtime

export_app = typer.Typer(
    help="Write files for people to read (the year-end ledger).", no_args_is_help=True
)
app.add_typer(export_app, name="export")


@export_app.command("ledger")
def export_ledger(
    year: Annotated[int, typer.Option("--year", help="Calendar year, e.g. 2026.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .xlsx file to write.")],
    branch: Annotated[
        Optional[str],  # noqa: UP045  (typer needs Optional here on 3.11)
        typer.Option("--branch", help="One branch (its name or a unique part of it)."),
    ] = None,
) -> None:
    """The 台账 for the year-end review: summary, scorecards and every register, as .xlsx."""
    import time

    from bot.db import session_scope
    from bot.ledger import write_ledger
    from bot.store import find_branches

    if output.suffix.lower() != ".xlsx":
        raise fail(f"the output must be an .xlsx file, got {output}")
    rt = runtime()
    started = time.perf_counter()
    try:
        require_schema(rt)
        with session_scope(rt.engine) as session:
            branches = None
            if branch is not None:
                found = find_branches(session=session, name=branch)
                if len(found) != 1:
                    names = "、".join(b.name for b in found)
                    raise fail(
                        f"branch {branch!r} matches {names}: give its full name"
                        if found
                        else f"no branch called {branch!r}"
                    )
                branches = found
            try:
                result = write_ledger(
                    session=session,
                    settings=rt.settings,
                    year=year,
                    now=rt.clock.now(),
                    path=output,
                    branches=branches,
                )
            except ValueError as exc:
                raise fail(f"cannot export {year}: {exc}") from None
            except OSError as exc:
                raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
            session.rollback()  # read only
    finally:
        rt.engine.dispose()  # no connection outlives the command (PostgreSQL counts them)
    span = "whole year" if result.closed else "year to date"
    typer.echo(
        f"wrote {result.path}: {year} ({span}), {result.branches} branches, "
        f"{result.meetings} meetings, in {time.perf_counter() - started:.1f} s"
    )
    for sheet, rows in result.rows.items():
        typer.echo(f"  {sheet}: {rows} rows")
