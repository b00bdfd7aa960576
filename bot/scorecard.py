"""Branch scorecards for a year: :func:`bot.status.scorecards`, explained in words.

The figures are :mod:`bot.status`'s (one definition of each part; read its docstring for the
counting rules). This module adds what the office and the year-end ledger need on top:

- **a year, not only "now"**: for the current year the score is year-to-date; for a year
  that is over it is taken at the year's last instant with every period closed, so a
  branch that never held its yearly 组织生活会 is marked down for it;
- **words**: each part says what it counted and what the branch still owes (which rule
  missed which period, which tasks are overdue), so anyone can see why a branch scored
  what it did;
- **the cadence rules over the year**: meetings required and held per rule and period,
  read from :func:`bot.status.cadence_status` at the end of every month (the same counting
  rule as the reminders and 状态);
- **ranking only on request**: ``[score] ranking`` is off by default, and then no rank
  exists anywhere. Scores are per branch only, never per person; study (学时) carries no
  weight unless the office gives it one, since the 2026 办法 forbids 学习时长 as grounds
  for assessment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from bot import messages as msg
from bot.calendar import local_date, period_of
from bot.config import Period, Settings
from bot.models import Org, Task
from bot.status import CadenceLine, Scorecard, ScorePart, cadence_status, day_start, scorecards
from bot.store import list_branches

MAX_ITEMS = 8
"""Items named in one explanation before "等N项"."""


# The year ----------------------------------------------------------------------------------


def year_span(year: int) -> tuple[datetime, datetime]:
    """``[start, end)`` of the calendar year in Asia/Shanghai, as UTC instants."""
    return day_start(date(year, 1, 1)), day_start(date(year + 1, 1, 1))


def as_of(year: int, now: datetime) -> tuple[datetime, bool]:
    """The instant a year's figures are taken at, and whether the year is over.

    The current year: ``now`` (year to date). A past year: its last instant. A future year
    has no figures (ValueError).
    """
    start, end = year_span(year)
    if now < start:
        raise ValueError(f"{year} has not begun")
    if now >= end:
        return end - timedelta(microseconds=1), True
    return now, False


# Cadence over the year --------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodCount:
    """One period of one cadence rule: meetings held against the minimum."""

    start: date
    end: date
    held: int
    minimum: int
    closed: bool
    """The period is over (it counts whether met or not)."""
    days_left: int

    @property
    def met(self) -> bool:
        return self.held >= self.minimum


@dataclass(frozen=True)
class RuleYear:
    """One cadence rule for one branch (or one 党小组) over the periods of the year counted."""

    kind: str
    period: Period
    minimum: int
    group_name: str | None
    periods: tuple[PeriodCount, ...]

    @property
    def label(self) -> str:
        if self.group_name:
            return msg.SCORE_RULE_GROUP.format(kind=self.kind, group=self.group_name)
        return self.kind

    @property
    def required(self) -> int:
        """Meetings the rule asks for over the periods begun so far (the current one whole)."""
        return self.minimum * len(self.periods)

    @property
    def held(self) -> int:
        return sum(p.held for p in self.periods)

    @property
    def missed(self) -> list[PeriodCount]:
        return [p for p in self.periods if p.closed and not p.met]

    @property
    def open_owed(self) -> list[PeriodCount]:
        return [p for p in self.periods if not p.closed and not p.met]


def _instants(year: int, at: datetime) -> list[datetime]:
    """The last instant of each month of ``year`` up to ``at``, then ``at`` itself."""
    out = []
    for month in range(1, 13):
        first_next = date(year + month // 12, month % 12 + 1, 1)
        end = day_start(first_next) - timedelta(microseconds=1)
        if end >= at:
            out.append(at)
            break
        out.append(end)
    return out


def cadence_year(
    *,
    session: Session,
    settings: Settings,
    branches: Sequence[Org],
    at: datetime,
    closed: bool,
    since: dict[int, date],
) -> dict[int, list[RuleYear]]:
    """Each branch's cadence rules over ``at``'s year, period by period, counted from ``since``.

    Every period ends at a month's end, so :func:`bot.status.cadence_status` read at each
    month's last instant (and at ``at``) sees every period whole; the last reading of a
    period is its final count.
    """
    today = local_date(at)
    seen: dict[tuple[int, str, int | None], dict[date, CadenceLine]] = defaultdict(dict)
    order: dict[int, list[tuple[str, int | None]]] = {}
    for t in _instants(today.year, at):
        for bid, lines in cadence_status(
            session=session, settings=settings, branches=branches, now=t
        ).items():
            order[bid] = [(c.kind, c.group_id) for c in lines]
            for c in lines:
                seen[(bid, c.kind, c.group_id)][c.start] = c
    out: dict[int, list[RuleYear]] = {}
    for b in branches:
        bid = b.id or 0
        rules = []
        for kind, group_id in order.get(bid, []):
            by_start = seen[(bid, kind, group_id)]
            last = by_start[max(by_start)]
            first = period_of(since.get(bid, today), last.period)[0]
            periods = tuple(
                PeriodCount(
                    c.start,
                    c.end,
                    c.held,
                    c.minimum,
                    closed or c.end < today,
                    max(0, (c.end - today).days),
                )
                for s, c in sorted(by_start.items())
                if s >= first
            )
            rules.append(RuleYear(kind, last.period, last.minimum, last.group_name, periods))
        out[bid] = rules
    return out


# Explained scorecards ---------------------------------------------------------------------


@dataclass(frozen=True)
class PartExplained:
    """One part of a branch's score, with what it counted and what the branch still owes."""

    part: ScorePart
    counted: str
    owed: str

    @property
    def key(self) -> str:
        return self.part.key

    @property
    def label(self) -> str:
        return msg.SCORE_LABELS[self.part.key]

    def to_json(self) -> dict[str, Any]:
        p = self.part
        return {
            "key": p.key,
            "label": self.label,
            "weight": p.weight,
            "done": p.done,
            "due": p.due,
            "ratio": p.ratio,
            "points": p.points if p.weight else None,
            "counted": self.counted,
            "owed": self.owed,
        }


@dataclass(frozen=True)
class YearScorecard:
    """A branch's compliance score for a year, each part explained; ``rank`` only when ranking is on."""

    card: Scorecard
    year: int
    closed: bool
    cadence: list[RuleYear]
    parts: list[PartExplained]
    rank: int | None = None

    @property
    def branch_id(self) -> int:
        return self.card.branch_id

    @property
    def branch(self) -> str:
        return self.card.branch

    @property
    def total(self) -> float | None:
        return self.card.total

    def part(self, key: str) -> PartExplained | None:
        return next((p for p in self.parts if p.key == key), None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "branch": self.branch,
            "year": self.year,
            "year_closed": self.closed,
            "score": self.total,
            "since": self.card.since.isoformat(),
            "parts": [p.to_json() for p in self.parts],
        }
        if self.rank is not None:
            data["rank"] = self.rank
        return data


def _items(items: list[str]) -> str:
    shown = "、".join(items[:MAX_ITEMS])
    if len(items) > MAX_ITEMS:
        shown += msg.SCORE_ITEMS_MORE.format(n=len(items))
    return shown


def _explain_cadence(p: ScorePart, rules: list[RuleYear], since: date) -> tuple[str, str]:
    counted = msg.SCORE_COUNTED["cadence"].format(since=msg.md(since), done=p.done, due=p.due)
    missed = [
        msg.SCORE_PERIOD_ITEM.format(
            rule=r.label,
            period=msg.period_label(c.start, r.period),
            held=c.held,
            minimum=c.minimum,
        )
        for r in rules
        for c in r.missed
    ]
    still = [
        msg.SCORE_OPEN_ITEM.format(
            rule=r.label,
            period=msg.period_label(c.start, r.period),
            n=c.minimum - c.held,
            days=c.days_left,
        )
        for r in rules
        for c in r.open_owed
    ]
    owed = []
    if missed:
        owed.append(msg.SCORE_CADENCE_MISSED.format(items=_items(missed)))
    if still:
        owed.append(msg.SCORE_CADENCE_OPEN.format(items=_items(still)))
    return counted, "；".join(owed)


def _explain(
    p: ScorePart,
    card: Scorecard,
    rules: list[RuleYear],
    tasks: tuple[list[str], list[str]],
) -> PartExplained:
    if p.key == "study" and not p.weight:
        return PartExplained(p, msg.SCORE_STUDY_NO_WEIGHT, "")
    if p.key == "cadence":
        counted, owed = _explain_cadence(p, rules, card.since)
        if p.due == 0:
            counted = msg.SCORE_NOTHING_DUE
        return PartExplained(p, counted, owed or msg.SCORE_OWES_NOTHING)
    if p.due == 0:
        return PartExplained(p, msg.SCORE_NOTHING_DUE, msg.SCORE_OWES_NOTHING)
    counted = msg.SCORE_COUNTED[p.key].format(done=p.done, due=p.due, month=card.since.month)
    short = max(0, p.due - p.done)
    owed = ""
    if p.key == "attendance" and short:
        owed = msg.SCORE_ATTENDANCE_OWED.format(n=short)
    elif p.key == "dues" and short:
        owed = msg.SCORE_DUES_OWED.format(n=short)
    elif p.key == "tasks":
        still, late = tasks
        parts = []
        if still:
            parts.append(msg.SCORE_TASKS_OPEN.format(items=_items(still)))
        if late:
            parts.append(msg.SCORE_TASKS_LATE.format(items=_items(late)))
        owed = "；".join(parts)
    return PartExplained(p, counted, owed or msg.SCORE_OWES_NOTHING)


def _task_names(
    session: Session, year: int, today: date, closed: bool
) -> dict[int, tuple[list[str], list[str]]]:
    """Per branch: (tasks due and still open, tasks done after their date), by due date.

    The same tasks the status module's tasks part counts (due this year, before today, or
    on it when the year is over); this only names them.
    """
    last = today if closed else today - timedelta(days=1)
    stmt = (
        select(col(Task.branch_id), col(Task.name), col(Task.due_on), col(Task.done_at))
        .where(col(Task.due_on) >= date(year, 1, 1), col(Task.due_on) <= last)
        .order_by(col(Task.due_on), col(Task.id))
    )
    out: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for bid, name, due_on, done_at in session.execute(stmt).all():
        if done_at is None:
            out[bid][0].append(name)
        elif local_date(done_at) > due_on:
            out[bid][1].append(name)
    return out


def ranks(cards: Sequence[YearScorecard | Scorecard], settings: Settings) -> dict[int, int]:
    """``{branch_id: rank}`` by score, highest first (ties share a rank); empty unless
    ``[score] ranking`` is on. Branches with nothing due yet get no rank."""
    if not settings.score.ranking:
        return {}
    scored = sorted(
        ((c.total, c.branch_id) for c in cards if c.total is not None), key=lambda t: -t[0]
    )
    out: dict[int, int] = {}
    previous: float | None = None
    rank = 0
    for i, (total, bid) in enumerate(scored, start=1):
        if total != previous:
            rank, previous = i, total
        out[bid] = rank
    return out


def explain(
    *,
    session: Session,
    settings: Settings,
    cards: Sequence[Scorecard],
    at: datetime,
    closed: bool = False,
) -> list[YearScorecard]:
    """Explain scorecards already computed at ``at`` (by :func:`bot.status.scorecards`), in
    their order; each gets its rank when ``[score] ranking`` is on. A study part at weight 0
    is added, saying why it carries no weight."""
    wanted = {c.branch_id for c in cards}
    branches = [b for b in list_branches(session=session) if b.id in wanted]
    since = {c.branch_id: c.since for c in cards}
    rules = cadence_year(
        session=session, settings=settings, branches=branches, at=at, closed=closed, since=since
    )
    today = local_date(at)
    tasks = _task_names(session, today.year, today, closed)
    out = []
    for card in cards:
        parts = list(card.parts)
        if not any(p.key == "study" for p in parts):
            parts.append(ScorePart("study", 0, 0, 0))
        mine = rules.get(card.branch_id, [])
        named = tasks.get(card.branch_id, ([], []))
        explained = [_explain(p, card, mine, named) for p in parts]
        out.append(YearScorecard(card, today.year, closed, mine, explained))
    rank = ranks(out, settings)
    return [replace(c, rank=rank.get(c.branch_id)) for c in out] if rank else out


def year_scorecards(
    *,
    session: Session,
    settings: Settings,
    year: int,
    now: datetime,
    branches: Sequence[Org] | None = None,
) -> list[YearScorecard]:
    """Every branch's explained scorecard for ``year``, in roster order, or in ranked order
    (best first, then roster order) when ``[score] ranking`` is on."""
    at, closed = as_of(year, now)
    branches = list(branches) if branches is not None else list_branches(session=session)
    cards = scorecards(session=session, settings=settings, now=at, branches=branches, closed=closed)
    position = {b.id: i for i, b in enumerate(branches)}
    cards.sort(key=lambda c: position[c.branch_id])  # roster order, not what is owed
    out = explain(session=session, settings=settings, cards=cards, at=at, closed=closed)
    if settings.score.ranking:
        out.sort(key=lambda c: (c.rank is None, c.rank or 0, position[c.branch_id]))
    return out


def with_explanations(data: dict[str, Any], card: YearScorecard) -> dict[str, Any]:
    """A :meth:`bot.status.Scorecard.to_json` object with each part's label, what it counted
    and what is owed added (``mofan status --json``), and the rank where ranking is on."""
    words = {p.key: p for p in card.parts}
    parts = []
    for part in data.get("parts", []):
        p = words.get(part["key"])
        if p is not None:
            part = part | {"label": p.label, "counted": p.counted, "owed": p.owed}
        parts.append(part)
    data = data | {"parts": parts}
    if card.rank is not None:
        data["rank"] = card.rank
    return data


def render_explained(card: YearScorecard) -> str:
    """A branch's score in a few lines of text: total, then each part with why."""
    total = msg.SCORE_NONE if card.total is None else msg.SCORE_TOTAL.format(score=card.total)
    head = f"{card.branch} {total}"
    if card.rank is not None:
        head += " " + msg.SCORE_RANK.format(rank=card.rank)
    lines = [head]
    for p in card.parts:
        tail = f"；{p.owed}" if p.owed and p.owed != msg.SCORE_OWES_NOTHING else ""
        if p.part.weight and p.part.points is not None:
            lines.append(f"· {p.label} {p.part.points:g}/{p.part.weight:g}：{p.counted}{tail}")
        else:
            lines.append(f"· {p.label}：{p.counted}{tail}")
    return "\n".join(lines)
