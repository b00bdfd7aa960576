"""Scheduled meetings: attendees the workday before (``meetings.day_before_at``) and
``meetings.hours_before`` before the start; afterwards the secretary is asked to confirm the
attendance, and ``meetings.makeup_after_workdays`` workdays later the absentees are asked to
make up the study (补学).

A reminder whose moment came before the meeting was scheduled is skipped: 安排 tells the
attendees when it is made. A meeting on a day off gets no hour-before reminder (the
workday-before one covers it: nobody is messaged on their day off).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any

from bot import messages
from bot.calendar import Window, WorkCalendar, local_date
from bot.cards import meeting_card
from bot.clock import local
from bot.config import Settings
from bot.models import Meeting
from schedules.base import (
    MeetingInfo,
    Person,
    PlanData,
    Reminder,
    at_time,
    cn_when,
    names,
    on_day,
    place_after,
    place_before,
    userids,
)

NAME = "meetings"
PRESENT = frozenset({"signed_in", "made_up"})
EXCUSED = frozenset({"leave"})
MISSING = frozenset({"invited", "absent"})
COMMITTEE_KINDS = frozenset({"支委会"})
GROUP_KINDS = frozenset({"党小组会"})
FOLLOW_UP_DAYS = 7
"""How long an after-meeting request stays worth sending after a restart."""
FOLLOW_UP_REACH = 12
"""Calendar days from a meeting to its last follow-up, besides the 补学 workdays: the longest
run of days off (国庆 with 中秋, 8 days) and a weekend."""


def audience(m: MeetingInfo, data: PlanData) -> list[Person]:
    """Who a meeting of its kind is for (``bot.store.meeting_audience``'s rule): 支委会 the
    branch committee, 党小组会 the group, any other kind the whole branch."""
    if m.kind in COMMITTEE_KINDS:
        return data.committee(m.branch_id)
    if m.kind in GROUP_KINDS and m.group_id is not None:
        return list(data.by_group.get(m.group_id, []))
    return list(data.by_branch.get(m.branch_id, []))


def attendees(m: MeetingInfo, data: PlanData) -> list[Person]:
    """Who is reminded: those 安排 invited (an attendance row of any status), and members of
    the audience who joined since and have no row yet. Active members only."""
    people = {mid: data.members[mid] for mid in m.attendance if mid in data.members}
    for p in audience(m, data):
        people.setdefault(p.id, p)
    return sorted(people.values(), key=lambda p: p.id)


def absentees(m: MeetingInfo, data: PlanData) -> list[Person]:
    """After the meeting: the invited who neither signed in nor asked for leave (an
    ``invited`` row that stayed so, or ``absent``). A meeting recorded without invitations
    (imports, old data) falls back to its audience; someone who joined the Party after the
    meeting was not expected at it."""
    day = local_date(m.starts_at)
    if m.attendance:
        expected = [
            data.members[mid]
            for mid, status in m.attendance.items()
            if status in MISSING and mid in data.members
        ]
    else:
        expected = audience(m, data)
    return [
        p
        for p in sorted(expected, key=lambda p: p.id)
        if not (p.joined_on is not None and p.joined_on > day)
    ]


def card(
    m: MeetingInfo, purpose: str, text: str, data: PlanData, settings: Settings
) -> dict[str, Any]:
    """The meeting card (签到 and 请假 buttons) carrying ``text`` as its fallback."""
    meeting = Meeting(
        id=m.id,
        branch_id=m.branch_id,
        group_id=m.group_id,
        kind=m.kind,
        starts_at=m.starts_at,
        ends_at=m.ends_at,
        place=m.place,
        topic=m.topic,
        status=m.status,
        created_at=m.created_at or m.starts_at,
    )
    branch = data.orgs.get(m.branch_id)
    return meeting_card(
        meeting=meeting,
        branch_name=branch.name if branch else "",
        task_id=f"meeting-{m.id}-{purpose}",
        checkin_minutes=settings.meetings.checkin_minutes_before,
        text=text,
    )


def due(now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    out: list[Reminder] = []
    # A follow-up falls at most a few workdays after its meeting (days off in between):
    # older meetings have nothing left for today.
    today = local_date(now)
    reach = timedelta(days=FOLLOW_UP_REACH + 2 * settings.meetings.makeup_after_workdays)
    for m in data.meetings_since(today - reach):
        if m.status == "scheduled" and m.starts_at > now - timedelta(days=1):
            out.extend(_before(m, now, data, settings))
        if m.status in ("scheduled", "held") and m.ends_at <= now + timedelta(days=1):
            out.extend(_after(m, now, data, settings))
    return out


def _existed(m: MeetingInfo, at: datetime) -> bool:
    return m.created_at is None or m.created_at <= at


def _before(m: MeetingInfo, now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    cal, window = data.cal, settings.bot.send_window
    day = local_date(m.starts_at)
    going = [p for p in attendees(m, data) if m.attendance.get(p.id) not in EXCUSED | PRESENT]
    if not going:
        return []
    place = m.place or messages.R_MEETING_PLACE_UNSET
    out = []
    before = place_before(
        at_time(cal.previous_workday(day), settings.meetings.day_before_at), cal, window
    )
    if on_day(before, now) and _existed(m, before):
        topic = messages.R_MEETING_TOPIC.format(topic=m.topic) if m.topic else ""
        text = messages.R_MEETING_DAY_BEFORE.format(
            when=cn_when(m.starts_at), kind=m.kind, place=place, topic=topic
        )
        out.append(
            Reminder(
                at=before,
                rule=NAME,
                key=f"meeting:{m.id}:day-before",
                to=userids(going),
                text=text,
                body=card(m, "day-before", text, data, settings),
                until=m.starts_at,
            )
        )
    if not cal.is_workday(day):
        return out
    soon = place_before(m.starts_at - timedelta(hours=settings.meetings.hours_before), cal, window)
    if local_date(soon) == day and soon < m.starts_at and on_day(soon, now) and _existed(m, soon):
        text = messages.R_MEETING_HOUR_BEFORE.format(
            kind=m.kind, time=f"{local(m.starts_at):%H:%M}", place=place
        )
        out.append(
            Reminder(
                at=soon,
                rule=NAME,
                key=f"meeting:{m.id}:hour-before",
                to=userids(going),
                text=text,
                body=card(m, "hour-before", text, data, settings),
                until=m.starts_at,
            )
        )
    return out


def _follow_ups(
    ends_at: datetime, settings: Settings, cal: WorkCalendar
) -> tuple[datetime, datetime]:
    """(ask the secretary to confirm, ask absentees to make up) for a meeting ending then."""
    return _follow_up_moments(
        ends_at,
        settings.bot.send_window,
        settings.bot.reminder_time,
        settings.meetings.makeup_after_workdays,
        cal,
    )


@lru_cache(maxsize=4096)
def _follow_up_moments(
    ends_at: datetime, window: Window, at: time, workdays: int, cal: WorkCalendar
) -> tuple[datetime, datetime]:
    # Many meetings end at the same moment, and every pass asks again: cached.
    confirm = place_after(ends_at, cal, window)
    makeup_day = cal.add_workdays(local_date(ends_at), workdays)
    return confirm, max(place_before(at_time(makeup_day, at), cal, window), confirm)


def _after(m: MeetingInfo, now: datetime, data: PlanData, settings: Settings) -> list[Reminder]:
    confirm, makeup = _follow_ups(m.ends_at, settings, data.cal)
    if not (on_day(confirm, now) or on_day(makeup, now)):
        return []
    out = []
    missing = absentees(m, data)
    if on_day(confirm, now) and (m.attendance or missing):
        signed = sum(1 for s in m.attendance.values() if s in PRESENT)
        leave = sum(1 for s in m.attendance.values() if s in EXCUSED)
        listed = f"（{names(missing)}）" if missing else ""
        out.append(
            Reminder(
                at=confirm,
                rule=NAME,
                key=f"meeting:{m.id}:confirm",
                to=userids(data.secretaries(m.branch_id)),
                text=messages.R_MEETING_CONFIRM.format(
                    when=cn_when(m.starts_at),
                    kind=m.kind,
                    signed=signed,
                    leave=leave,
                    absent=len(missing),
                    names=listed,
                ),
                until=confirm + timedelta(days=FOLLOW_UP_DAYS),
            )
        )
    if missing and on_day(makeup, now):
        topic = f"（{m.topic}）" if m.topic else ""
        out.append(
            Reminder(
                at=makeup,
                rule=NAME,
                key=f"meeting:{m.id}:makeup",
                to=userids(missing),
                text=messages.R_MEETING_MAKEUP.format(
                    when=cn_when(m.starts_at), kind=m.kind, topic=topic
                ),
                until=makeup + timedelta(days=FOLLOW_UP_DAYS),
            )
        )
    return out
