"""``mofan plan`` and ``mofan simulate`` (DESIGN §4.1): preview the reminder engine.

- ``plan`` lists the reminders the planner will send over the next days with the data as it
  stands, without sending: one line per reminder, ``at`` its placed moment (each person's
  message then goes out 1–9 minutes later, off :00/:30, merged with their other reminders of
  that moment). Reminders already in the outbox and moments already past are left out.
- ``simulate`` runs the real planner, dispatcher and console channel on a virtual clock over
  a copy of the database (``bot.simulate``) and lists every message as it went out: one line
  per message, ``at`` its exact moment, ``parts`` the reminders merged into it.

``--json`` prints one JSON object per line: ``at`` (ISO-8601 with the +08:00 offset),
``rule``, ``key``, ``to`` (userids) and ``text``. Without it, a table.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from bot.cli import app, fail, require_schema, runtime, settings

if TYPE_CHECKING:
    from bot.runtime import Runtime

MAX_PLAN_DAYS = 366
MAX_SIMULATE_DAYS = 3 * 366
TEXT_WIDTH = 60


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise fail(f"{option}: expected a date like 2026-12-01, got {value!r}") from None


@app.command()
def plan(
    start: Annotated[
        Optional[str],  # noqa: UP045  (typer needs Optional here on 3.11)
        typer.Option("--from", help="First day, YYYY-MM-DD (default: today)."),
    ] = None,
    days: Annotated[int, typer.Option("--days", help="How many days.", min=1)] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The reminders that will go out, without sending."""
    from bot.calendar import local_date
    from schedules.runner import forecast

    if days > MAX_PLAN_DAYS:
        raise fail(f"--days: at most {MAX_PLAN_DAYS}")
    rt = runtime()
    try:
        require_schema(rt)
        now = rt.clock.now()
        first = _date(start, "--from") if start else local_date(now)
        span = [first + timedelta(days=i) for i in range(days)]
        lines = plan_lines(forecast(rt.engine, rt.settings, now, span))
        _print(lines, as_json, rt)
    finally:
        rt.engine.dispose()


def plan_lines(planned: list[Any]) -> list[dict[str, Any]]:
    """One line per reminder: its placed moment and everyone it goes to."""
    from bot.clock import local

    by_key: dict[str, dict[str, Any]] = {}
    for p in planned:
        for r in p.reminders:
            line = by_key.setdefault(
                r.key,
                {
                    "at": local(r.at).isoformat(),
                    "rule": r.rule,
                    "key": r.key,
                    "to": [],
                    "text": r.text,
                },
            )
            if p.recipient not in line["to"]:
                line["to"].append(p.recipient)
    return sorted(by_key.values(), key=lambda line: (line["at"], line["rule"], line["key"]))


@app.command()
def simulate(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Run the scheduler on a virtual clock over a copy of the data; print every message."""
    from bot.simulate import simulate as run

    first, last = _date(start, "--from"), _date(end, "--to")
    if last < first:
        raise fail("--to is before --from")
    if (last - first).days >= MAX_SIMULATE_DAYS:
        raise fail(f"simulate at most {MAX_SIMULATE_DAYS} days at once")
    s = settings()
    rt = runtime(s)
    try:
        require_schema(rt)
        rt.engine.dispose()  # the simulation reads the file itself (a consistent copy)
        total = (last - first).days + 1
        with _progress(total) as step:
            try:
                messages = run(s, first, last, progress=step)
            except ValueError as exc:
                raise fail(str(exc)) from None
        _print([m.as_json() for m in messages], as_json, rt)
    finally:
        rt.engine.dispose()


class _Bar:
    """A progress bar on stderr when it is a terminal (rich's when available), else silent."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.rich: Any = None
        self.task: Any = None
        self.enabled = sys.stderr.isatty()

    def __enter__(self) -> Any:
        if self.enabled:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                self.rich = Progress(
                    TextColumn("模拟 {task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
                self.rich.start()
                self.task = self.rich.add_task("", total=self.total)
            except ImportError:
                self.rich = None
        return self.step

    def step(self, day: date) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.rich is not None:
            self.rich.update(self.task, advance=1, description=str(day))
        else:
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(
                f"\r模拟 {day} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
            )
            sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self.rich is not None:
            self.rich.stop()
        elif self.enabled:
            sys.stderr.write("\n")


def _progress(total: int) -> _Bar:
    return _Bar(total)


def _print(lines: list[dict[str, Any]], as_json: bool, rt: Runtime) -> None:
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line, ensure_ascii=False))
        return
    if not lines:
        typer.echo("（这段时间没有要发出的提醒）")
        return
    names = _names(rt)
    rows = [
        (
            _when(line["at"]),
            line["rule"],
            _who(line["to"], names),
            _one_line(line["text"]),
        )
        for line in lines
    ]
    # Plain lines rather than a table: a terminal of any width shows every column, and the
    # text column can be as long as it likes.
    rule_width = max(len(r[1]) for r in rows)
    for when, rule, who, text in rows:
        typer.echo(f"{when}  {rule:<{rule_width}}  {who}：{text}")
    typer.echo(f"共 {len(lines)} 条")


def _names(rt: Runtime) -> dict[str, str]:
    from sqlalchemy import select
    from sqlmodel import Session, col

    from bot.models import Member

    with Session(rt.engine) as session:
        rows = session.execute(select(col(Member.userid), col(Member.name)))
        return {userid: name for userid, name in rows}


def _when(iso: str) -> str:
    from datetime import datetime

    at = datetime.fromisoformat(iso)
    return f"{at:%Y-%m-%d} 周{'一二三四五六日'[at.weekday()]} {at:%H:%M}"


def _who(userids: list[str], names: dict[str, str]) -> str:
    shown = "、".join(names.get(u, u) for u in userids[:3])
    return shown + (f" 等{len(userids)}人" if len(userids) > 3 else "")


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= TEXT_WIDTH else flat[: TEXT_WIDTH - 1] + "…"
