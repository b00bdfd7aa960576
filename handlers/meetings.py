"""The secretary's meeting work: 安排 (schedule), 第一议题 (what a 支委会 studied first) and
补学 (a member's make-up study for a missed meeting), all within their own branch.

``安排 <类型> <日期> <时间> [地点] [主题]``: the attendees follow the kind (支委会 → the
committee, 党小组会 → that group, anything else → the whole branch; see :mod:`bot.store`)
and each gets a card with 签到 and 请假 buttons at once (inside the send window); the
reminder engine follows up the day before and an hour before. A time range
(``14:30-16:00``) sets the end; otherwise a meeting lasts :data:`DEFAULT_MINUTES`. A time
already past records a meeting that was held (补录), without cards. 书记讲党课 is kept as a
党课 whose topic names the 书记, which is how the cadence rules recognise it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from bot import cards
from bot import messages as msg
from bot.broadcast import calendar_for
from bot.calendar import local_date
from bot.clock import SHANGHAI, to_utc
from bot.config import MEETING_KINDS
from bot.models import Meeting, Org
from bot.parse import ParseError, take_date, take_int, take_meeting_kind, take_time
from bot.roles import SECRETARIES
from bot.router import Command, Context, Request
from bot.store import (
    COMMITTEE_KINDS,
    GROUP_KINDS,
    attendance_of,
    find_duplicate_meeting,
    groups_of,
    is_in_audience,
    missed_meetings,
    recent_branch_meetings,
    record_makeup,
    schedule_meeting,
    set_first_topic,
    upcoming_branch_meetings,
)
from handlers.common import (
    later_note,
    meeting_in_scope,
    member_in_branch,
    reply_parse_error,
    send_time,
)

DEFAULT_MINUTES = 120
"""A meeting's length when 安排 gives no end time (it bounds the 签到 window)."""
PLACE_MARKERS = (
    "室",
    "厅",
    "楼",
    "馆",
    "会议",
    "中心",
    "基地",
    "礼堂",
    "教室",
    "线上",
    "视频",
    "腾讯",
    "层",
    "号",
)
"""A lone word after the time is a place if it looks like one (三楼会议室), else a topic."""


def _split_place_topic(rest: str) -> tuple[str, str]:
    words = rest.split(" ", 1)
    if not rest:
        return "", ""
    if len(words) == 2:
        return words[0], words[1].strip()
    if any(mark in rest for mark in PLACE_MARKERS):
        return rest, ""
    return "", rest


def _group_of(ctx: Context, rest: str) -> tuple[Org | None, str, bool]:
    """For a 党小组会: the group named at the front of ``rest`` or the sender's own.
    Returns (group, rest, ok); replies when no group can be chosen."""
    groups = groups_of(session=ctx.session, branch_id=ctx.branch.id or 0)
    if not groups:
        ctx.reply(msg.SCHEDULE_NO_GROUPS)
        return None, rest, False
    for g in groups:
        short = g.name.rsplit("/", 1)[-1]
        for name in (g.name, short):
            if rest.startswith(name):
                return g, rest[len(name) :].strip(), True
    own = [g for g in groups if g.id == ctx.sender.group_id]
    if own:
        return own[0], rest, True
    if len(groups) == 1:
        return groups[0], rest, True
    shorts = [g.name.rsplit("/", 1)[-1] for g in groups]
    ctx.reply(msg.SCHEDULE_NO_GROUP.format(groups="、".join(shorts), group=shorts[0]))
    return None, rest, False


def _other_branch_named(ctx: Context, text: str) -> str | None:
    """The organisation ``text`` starts with if it is not the sender's branch or one of its
    党小组 (longest name first)."""
    own = ctx.branch.id
    orgs = ctx.session.execute(select(col(Org.id), col(Org.name), col(Org.parent_id))).all()
    for oid, name, parent in sorted(orgs, key=lambda o: -len(o[1])):
        if text.startswith(name):
            return None if own in (oid, parent) else str(name)
    return None


async def handle_schedule(req: Request, ctx: Context) -> None:
    example = msg.SCHEDULE_EXAMPLE
    kind, rest = take_meeting_kind(req.args)
    if kind is None:
        token = req.args.split(" ", 1)[0] or "（空）"
        ctx.reply(
            msg.SCHEDULE_BAD_KIND.format(
                token=token, kinds="、".join(MEETING_KINDS), example=example
            )
        )
        return
    topic_prefix = ""
    if kind == "书记讲党课":
        kind, topic_prefix = "党课", "书记讲党课"
    group: Org | None = None
    if kind in GROUP_KINDS:
        group, rest, ok = _group_of(ctx, rest)
        if not ok:
            return
    today = local_date(ctx.now)
    try:
        day, rest = take_date(rest, today)
        if day is None:
            other = _other_branch_named(ctx, rest)
            if other:  # 安排 is for one's own branch: say so rather than "no date"
                ctx.reply(msg.SCHEDULE_OTHER_BRANCH.format(name=other, branch=ctx.branch.name))
            else:
                ctx.reply(msg.SCHEDULE_NO_DATE.format(example=example))
            return
        span, rest = take_time(rest)
    except ParseError as err:
        reply_parse_error(ctx, err, example)
        return
    if span is None:
        ctx.reply(msg.SCHEDULE_NO_TIME.format(example=example))
        return
    if day > today + timedelta(days=366):
        ctx.reply(msg.SCHEDULE_TOO_FAR.format(date=msg.ymd(day, today.year)))
        return
    if day < date(today.year, 1, 1):
        ctx.reply(msg.SCHEDULE_TOO_OLD.format(date=msg.ymd(day, today.year)))
        return
    place, topic = _split_place_topic(rest)
    if topic_prefix and "书记" not in topic:
        topic = f"{topic_prefix} {topic}".strip()
    starts = to_utc(datetime.combine(day, span.start, tzinfo=SHANGHAI))
    ends = (
        to_utc(datetime.combine(day, span.end, tzinfo=SHANGHAI))
        if span.end
        else starts + timedelta(minutes=DEFAULT_MINUTES)
    )
    bid = ctx.branch.id or 0
    dup = find_duplicate_meeting(session=ctx.session, branch_id=bid, kind=kind, starts_at=starts)
    if dup is not None:
        ctx.reply(msg.SCHEDULE_DUPLICATE.format(kind=kind, when=msg.when(starts), id=dup.id))
        return
    meeting, people = schedule_meeting(
        session=ctx.session, branch_id=bid, kind=kind, group_id=group.id if group else None,
        starts_at=starts, ends_at=ends, place=place, topic=topic, created_by=ctx.sender, now=ctx.now,
    )  # fmt: skip
    shown = dict(
        kind=kind, span=msg.span(starts, ends), place=place and f"，{place}",
        topic=topic and f"，{topic}", id=meeting.id,
    )  # fmt: skip
    if ends <= ctx.now:
        ctx.reply(msg.SCHEDULE_PAST.format(**shown))
        return
    key = f"meeting:{meeting.id}:invite"
    due = send_time(ctx, key)
    minutes = ctx.settings.meetings.checkin_minutes_before
    body = cards.meeting_card(
        meeting=meeting,
        branch_name=ctx.branch.name,
        task_id=f"meeting-{meeting.id}-invite",
        checkin_minutes=minutes,
    )
    ctx.send(people, key=key, body=body, rule="meeting_invite", due_at=due)
    ctx.reply(
        msg.SCHEDULE_DONE.format(
            **shown,
            n=len(people),
            audience=_audience(kind, group),
            later=later_note(ctx, due),
            minutes=minutes,
        )
    )
    holiday = calendar_for(ctx.settings).holiday_name(day)
    if holiday:
        ctx.reply(msg.SCHEDULE_HOLIDAY.format(date=msg.md(day), holiday=holiday))


def _audience(kind: str, group: Org | None) -> str:
    if kind in COMMITTEE_KINDS:
        return msg.AUDIENCE_COMMITTEE
    if group is not None:
        return msg.AUDIENCE_GROUP.format(group=group.name.rsplit("/", 1)[-1])
    return msg.AUDIENCE_BRANCH


async def handle_first_topic(req: Request, ctx: Context) -> None:
    meeting_id, text = take_int(req.args)
    meeting: Meeting | None
    if meeting_id is not None:
        meeting = meeting_in_scope(ctx, meeting_id, write=True)
        if meeting is None:
            return
    else:
        text = req.args
        meeting = _default_committee_meeting(ctx)
        if meeting is None:
            ctx.reply(msg.FIRST_TOPIC_NO_MEETING)
            return
    text = text.strip(" ：:，,")
    if not text:
        ctx.reply(msg.FIRST_TOPIC_EMPTY.format(id=meeting.id))
        return
    set_first_topic(session=ctx.session, meeting=meeting, text=text)
    ctx.reply(
        msg.FIRST_TOPIC_DONE.format(
            kind=meeting.kind, when=msg.when(meeting.starts_at), id=meeting.id, text=text
        )
    )


def _default_committee_meeting(ctx: Context) -> Meeting | None:
    """Today's 支委会, else the latest that has started, else the next one."""
    bid = ctx.branch.id or 0
    today = local_date(ctx.now)
    upcoming = [
        m for m in upcoming_branch_meetings(session=ctx.session, branch_id=bid, now=ctx.now, limit=20)
        if m.kind == "支委会"
    ]  # fmt: skip
    if upcoming and local_date(upcoming[0].starts_at) == today:
        return upcoming[0]
    found = recent_branch_meetings(session=ctx.session, branch_id=bid, now=ctx.now, kind="支委会")
    if found:
        return found[0]
    return upcoming[0] if upcoming else None


async def handle_makeup(req: Request, ctx: Context) -> None:
    name, _, rest = req.args.partition(" ")
    if not name:
        ctx.reply(msg.USAGE.format(usage=msg.MAKEUP_USAGE))
        return
    member = member_in_branch(ctx, name)
    if member is None:
        return
    meeting_id, _ = take_int(rest)
    meeting: Meeting | None
    if meeting_id is not None:
        meeting = meeting_in_scope(ctx, meeting_id, write=True)
        if meeting is None:
            return
        if meeting.ends_at > ctx.now:
            ctx.reply(msg.MAKEUP_NOT_ENDED.format(id=meeting_id))
            return
        att = attendance_of(session=ctx.session, meeting_id=meeting_id, member_id=member.id or 0)
        if att is None and not is_in_audience(meeting, member):
            ctx.reply(msg.MAKEUP_NOT_INVITED.format(name=member.name, id=meeting_id))
            return
    else:
        missed = missed_meetings(
            session=ctx.session, member_id=member.id or 0, now=ctx.now, limit=1
        )
        if not missed:
            ctx.reply(msg.MAKEUP_NOTHING.format(name=member.name))
            return
        meeting = missed[0]
    mid = meeting.id or 0
    if record_makeup(session=ctx.session, meeting_id=mid, member_id=member.id or 0, at=ctx.now):
        ctx.reply(
            msg.MAKEUP_DONE.format(
                name=member.name, kind=meeting.kind, when=msg.when(meeting.starts_at), id=mid
            )
        )
    else:
        ctx.reply(msg.MAKEUP_NOT_MISSED.format(name=member.name, id=mid))


COMMANDS = (
    Command(
        name="schedule",
        keywords=("安排",),
        roles=SECRETARIES,
        usage=msg.SCHEDULE_USAGE,
        handle=handle_schedule,
    ),
    Command(
        name="first_topic",
        keywords=("第一议题",),
        roles=SECRETARIES,
        usage=msg.FIRST_TOPIC_USAGE,
        handle=handle_first_topic,
    ),
    Command(
        name="makeup",
        keywords=("补学",),
        roles=SECRETARIES,
        usage=msg.MAKEUP_USAGE,
        handle=handle_makeup,
    ),
)
