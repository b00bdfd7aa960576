"""Looking things up: 状态 (a branch), 总览 (every branch), 我的 (one's own record),
考勤 (a meeting's attendance) and 未学习 (who is behind the 学时 pace).

Scope: a member sees only their own record (我的); a secretary their branch; the office and
leaders every branch. 学时 per person is private to the member and their secretary, so
未学习 is the secretary's alone and the office's 状态 and 总览 show no study figures.
"""

from __future__ import annotations

from datetime import date, timedelta

from bot import messages as msg
from bot.calendar import local_date
from bot.models import Meeting
from bot.parse import ParseError, take_date, take_int, take_meeting_kind
from bot.roles import EVERYONE, OFFICE_AND_LEADERS, SECRETARIES, Role
from bot.router import Command, Context, Request
from bot.scorecard import ranks
from bot.status import (
    branch_status,
    day_start,
    dues_months_due,
    overview,
    render_branch_status,
    render_overview,
    study_progress,
    year_fraction,
)
from bot.store import (
    ABSENT,
    INVITED,
    LEAVE,
    MADE_UP,
    SIGNED_IN,
    attendees,
    branch_members,
    find_branches,
    member_attendance_counts,
    paid_months,
    recent_branch_meetings,
    unconfirmed_notices,
    upcoming_meetings_for,
)
from handlers.common import meeting_in_scope, place_suffix, reply_parse_error, sees_everything


async def handle_status(req: Request, ctx: Context) -> None:
    name = req.args.strip()
    if not name:
        if ctx.has(Role.SECRETARY):
            branch = ctx.branch
        else:  # the office or a leader without a branch name: the whole bureau
            await handle_overview(req, ctx)
            return
    else:
        found = find_branches(session=ctx.session, name=name)
        if len(found) != 1:
            if len(found) > 1:
                ctx.reply(
                    msg.SCOPE_AMBIGUOUS.format(token=name, names="、".join(b.name for b in found))
                )
            else:
                ctx.reply(msg.STATUS_NO_BRANCH.format(name=name))
            return
        branch = found[0]
        if branch.id != ctx.branch.id and not sees_everything(ctx):
            ctx.reply(msg.STATUS_OTHER_BRANCH.format(branch=ctx.branch.name))
            return
    own = ctx.has(Role.SECRETARY) and branch.id == ctx.branch.id
    status = branch_status(
        session=ctx.session, settings=ctx.settings, branch=branch, now=ctx.now, with_study=own
    )
    ctx.reply(render_branch_status(status))


async def handle_overview(req: Request, ctx: Context) -> None:
    ov = overview(session=ctx.session, settings=ctx.settings, now=ctx.now)
    ctx.reply(render_overview(ov, ranks=ranks(ov.cards, ctx.settings)))
    ctx.reply(msg.OVERVIEW_LEDGER_HINT)


async def handle_mine(req: Request, ctx: Context) -> None:
    me = ctx.sender
    today = local_date(ctx.now)
    lines = [msg.MINE_HEADER.format(name=me.name, branch=ctx.branch.name, today=msg.md_w(today))]
    p = study_progress(session=ctx.session, settings=ctx.settings, members=[me], now=ctx.now)[0]
    lines.append(
        msg.MINE_STUDY.format(
            hours=msg.hours(p.minutes),
            target=msg.hours(p.target_hours * 60),
            bar=msg.bar(p.hours / p.target_hours if p.target_hours else 1.0),
            pace=msg.hours(p.expected_hours * 60),
        )  # fmt: skip
    )
    counts = member_attendance_counts(
        session=ctx.session,
        member_id=me.id or 0,
        start=day_start(date(today.year, 1, 1)),
        now=ctx.now,
    )
    total = sum(counts.values())
    if total:
        lines.append(
            msg.MINE_ATTENDANCE.format(
                total=total,
                signed=counts.get(SIGNED_IN, 0),
                leave=counts.get(LEAVE, 0),
                made_up=counts.get(MADE_UP, 0),
                absent=counts.get(ABSENT, 0),
            )  # fmt: skip
        )
    else:
        lines.append(msg.MINE_ATTENDANCE_NONE)
    lines.append(_dues_line(ctx, today))
    waiting = unconfirmed_notices(session=ctx.session, member_id=me.id or 0)
    if waiting:
        items = "、".join(
            msg.MINE_NOTICE_ITEM.format(id=n.id, text=msg.preview(n.text, 12)) for n in waiting
        )
        lines.append(msg.MINE_NOTICES.format(items=items))
    else:
        lines.append(msg.MINE_NOTICES_NONE)
    upcoming = upcoming_meetings_for(session=ctx.session, member=me, now=ctx.now)
    if upcoming:
        lines.append(msg.MINE_NEXT)
        lines += [
            msg.MEETING_BRIEF.format(
                kind=m.kind, when=msg.when(m.starts_at), place=place_suffix(m.place), id=m.id
            )
            for m in upcoming
        ]
    else:
        lines.append(msg.MINE_NO_NEXT)
    ctx.reply("\n".join(lines))


def _dues_line(ctx: Context, today: date) -> str:
    me = ctx.sender
    since = date(today.year, 1, 1)
    if me.joined_on and me.joined_on > since:
        since = me.joined_on
    due = dues_months_due(today, ctx.settings.dues.day, since)
    paid = paid_months(session=ctx.session, member_id=me.id or 0, year=today.year)
    line = msg.MINE_DUES.format(paid=msg.months(paid, today.year)) if paid else msg.MINE_DUES_NONE
    unpaid = [m for m in due if m not in paid]
    if unpaid:
        line += msg.MINE_DUES_UNPAID.format(unpaid=msg.months(unpaid, today.year))
    return line


def _pick_meeting(ctx: Context, args: str) -> Meeting | None:
    """The meeting 考勤 is about: ``N``, a kind, a date, or the branch's latest that has started."""
    meeting_id, rest = take_int(args)
    if meeting_id is not None:
        return meeting_in_scope(ctx, meeting_id, write=False)
    kind, rest = take_meeting_kind(args)
    kind = "党课" if kind == "书记讲党课" else kind
    on = None
    if rest:
        try:
            day, rest = take_date(rest, local_date(ctx.now), prefer="past")
        except ParseError as err:
            reply_parse_error(ctx, err, "考勤 12月5日")
            return None
        if day is None:
            ctx.reply(msg.ATTENDANCE_NO_MATCH.format(text=args))
            return None
        on = (day_start(day), day_start(day + timedelta(days=1)))
    found = recent_branch_meetings(
        session=ctx.session, branch_id=ctx.branch.id or 0, now=ctx.now, kind=kind, on=on
    )
    if not found:
        ctx.reply(msg.ATTENDANCE_NO_MATCH.format(text=args) if args else msg.ATTENDANCE_NO_MEETING)
        return None
    return found[0]


async def handle_attendance(req: Request, ctx: Context) -> None:
    meeting = _pick_meeting(ctx, req.args)
    if meeting is None:
        return
    if meeting.starts_at > ctx.now + timedelta(
        minutes=ctx.settings.meetings.checkin_minutes_before
    ):
        ctx.reply(
            msg.ATTENDANCE_NOT_STARTED.format(id=meeting.id, when=msg.when(meeting.starts_at))
        )
    rows = attendees(session=ctx.session, meeting_id=meeting.id or 0)
    ended = meeting.ends_at <= ctx.now
    groups: dict[str, list[str]] = {SIGNED_IN: [], LEAVE: [], ABSENT: [], MADE_UP: []}
    for member, att in rows:
        status = ABSENT if att.status == INVITED else att.status
        label = f"{member.name}（{att.reason}）" if status == LEAVE and att.reason else member.name
        groups.setdefault(status, []).append(label)
    lines = [
        msg.ATTENDANCE_HEADER.format(
            kind=meeting.kind,
            span=msg.span(meeting.starts_at, meeting.ends_at),
            id=meeting.id,
            total=len(rows),
        )
    ]
    lines.append(
        msg.ATTENDANCE_SIGNED.format(
            n=len(groups[SIGNED_IN]), names=msg.names(groups[SIGNED_IN]) or "—"
        )
    )
    if groups[LEAVE]:
        lines.append(
            msg.ATTENDANCE_LEAVE.format(n=len(groups[LEAVE]), names=msg.names(groups[LEAVE]))
        )
    if groups[MADE_UP]:
        lines.append(
            msg.ATTENDANCE_MADE_UP.format(n=len(groups[MADE_UP]), names=msg.names(groups[MADE_UP]))
        )
    if groups[ABSENT]:
        template = msg.ATTENDANCE_ABSENT if ended else msg.ATTENDANCE_NOT_YET
        lines.append(template.format(n=len(groups[ABSENT]), names=msg.names(groups[ABSENT])))
        if ended and ctx.has(Role.SECRETARY) and meeting.branch_id == ctx.branch.id:
            lines.append(msg.ATTENDANCE_MAKEUP_HINT.format(id=meeting.id))
    ctx.reply("\n".join(lines))


async def handle_behind(req: Request, ctx: Context) -> None:
    members = branch_members(session=ctx.session, branch_id=ctx.branch.id or 0)
    progress = study_progress(
        session=ctx.session, settings=ctx.settings, members=members, now=ctx.now
    )
    today = local_date(ctx.now)
    frac = year_fraction(today)
    study = ctx.settings.study
    lines = [
        msg.STUDY_BEHIND_HEADER.format(
            percent=round(frac * 100),
            member_pace=msg.hours(study.member_target_hours * frac * 60),
            committee_pace=msg.hours(study.committee_target_hours * frac * 60),
        )
    ]
    behind = [p for p in progress if p.behind]  # roster order, never sorted by hours
    if not behind:
        lines.append(msg.STUDY_BEHIND_NONE)
    else:
        lines += [
            msg.STUDY_BEHIND_LINE.format(
                name=p.name, hours=msg.hours(p.minutes), target=msg.hours(p.target_hours * 60)
            )
            for p in behind
        ]
        lines.append(msg.STUDY_BEHIND_FOOTER)
    ctx.reply("\n".join(lines))


SECRETARY_OFFICE_LEADER = frozenset({Role.SECRETARY, Role.OFFICE, Role.LEADER})

COMMANDS = (
    Command(
        name="status",
        keywords=("状态", "支部状态"),
        roles=SECRETARY_OFFICE_LEADER,
        usage=msg.STATUS_USAGE,
        handle=handle_status,
    ),
    Command(
        name="overview",
        keywords=("总览",),
        roles=OFFICE_AND_LEADERS,
        usage=msg.OVERVIEW_USAGE,
        handle=handle_overview,
    ),
    Command(
        name="mine",
        quick=True,
        keywords=("我的",),
        roles=EVERYONE,
        usage=msg.MINE_USAGE,
        handle=handle_mine,
    ),
    Command(
        name="attendance",
        keywords=("考勤",),
        roles=SECRETARY_OFFICE_LEADER,
        usage=msg.ATTENDANCE_USAGE,
        handle=handle_attendance,
    ),
    Command(
        name="behind",
        keywords=("未学习",),
        roles=SECRETARIES,
        usage=msg.STUDY_BEHIND_USAGE,
        handle=handle_behind,
    ),
)
