"""Builders for the reminder rules' snapshot (``schedules.base.PlanData``): a small bureau in
memory, so that the pure rules are tested without a database.

Calendar facts the rule tests lean on (2026, from the statutory schedule): 中秋 Fri 9/25;
国庆 10/1–10/7; 调休 working days Sun 9/20 and Sat 10/10; 春节 2/15–2/23 (all of the week
of 16–22 February off); Sun 1/4 a working day; 端午 Fri 6/19.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from bot.calendar import WorkCalendar, in_send_window, local_date
from bot.clock import SHANGHAI, to_utc
from bot.config import Settings
from schedules.base import (
    MeetingInfo,
    NoticeInfo,
    OrgInfo,
    Person,
    PlanData,
    ReceiptInfo,
    Reminder,
    TaskInfo,
)

CAL = WorkCalendar()
ROOT, B1, B2, G1, G2 = 1, 2, 3, 4, 5


def at(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    """Asia/Shanghai wall time as aware UTC (what the rules get and give)."""
    return to_utc(datetime(y, m, d, hh, mm, tzinfo=SHANGHAI))


def noon(d: date) -> datetime:
    return to_utc(datetime.combine(d, time(12, 0), tzinfo=SHANGHAI))


def orgs(term_started_on: date | None = None) -> dict[int, OrgInfo]:
    return {
        ROOT: OrgInfo(ROOT, "机关党委", "党委"),
        B1: OrgInfo(B1, "第一党支部", "党支部", ROOT, term_started_on),
        B2: OrgInfo(B2, "第二党支部", "党支部", ROOT),
        G1: OrgInfo(G1, "第一党支部/第一党小组", "党小组", B1),
        G2: OrgInfo(G2, "第一党支部/第二党小组", "党小组", B1),
    }


def person(
    pid: int,
    userid: str,
    branch: int = B1,
    *,
    duties: str = "",
    roles: str = "",
    group: int | None = None,
    category: str = "正式党员",
    joined_on: date | None = date(2010, 7, 1),
    full_on: date | None = None,
    liaison: int | None = None,
) -> Person:
    return Person(
        id=pid,
        userid=userid,
        name=userid,
        branch_id=branch,
        group_id=group,
        duties=frozenset(d for d in duties.split("、") if d),
        roles=frozenset(r for r in roles.split("、") if r),
        category=category,
        joined_on=joined_on,
        full_on=full_on,
        liaison_branch_id=liaison,
    )


def people() -> dict[int, Person]:
    """第一党支部: 书记 shuji, 组织委员 weiyuan, members zhangsan and lisi (预备党员);
    第二党支部: 书记 shuji2 and wangwu; the office (in 第二党支部) and a leader whose
    联系点 is 第一党支部."""
    ps = [
        person(1, "shuji", duties="书记", group=G1, joined_on=date(2003, 3, 10)),
        person(2, "weiyuan", duties="组织委员", group=G2, joined_on=date(2011, 6, 20)),
        person(3, "zhangsan", group=G1, joined_on=date(2015, 11, 27)),
        person(4, "lisi", group=G2, category="预备党员", joined_on=date(2025, 12, 1)),
        person(5, "shuji2", B2, duties="书记", joined_on=date(2001, 1, 1)),
        person(6, "wangwu", B2, joined_on=date(2019, 10, 1)),
        person(7, "office", B2, roles="党委办", joined_on=date(2016, 2, 29)),
        person(8, "leader", B2, roles="党委委员", liaison=B1, joined_on=date(1998, 5, 4)),
    ]
    return {p.id: p for p in ps}


def snapshot(
    *,
    members: dict[int, Person] | None = None,
    meetings: Iterable[MeetingInfo] = (),
    notices: Iterable[NoticeInfo] = (),
    tasks: Iterable[TaskInfo] = (),
    dues: dict[int, set[str]] | None = None,
    dues_since: str | None = None,
    study: dict[tuple[int, int], int] | None = None,
    term_started_on: date | None = None,
) -> PlanData:
    return PlanData(
        cal=CAL,
        orgs=orgs(term_started_on),
        members=people() if members is None else members,
        meetings=list(meetings),
        notices=list(notices),
        tasks=list(tasks),
        dues_paid=dues or {},
        dues_since=dues_since,
        study_minutes=study or {},
    )


def meeting(
    mid: int,
    kind: str,
    starts: datetime,
    *,
    branch: int = B1,
    group: int | None = None,
    hours: float = 1.5,
    status: str = "scheduled",
    created: datetime | None = None,
    attendance: dict[int, str] | None = None,
    topic: str = "",
    place: str = "三楼会议室",
) -> MeetingInfo:
    return MeetingInfo(
        id=mid,
        branch_id=branch,
        group_id=group,
        kind=kind,
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        place=place,
        topic=topic,
        status=status,
        created_at=created or starts - timedelta(days=10),
        attendance=attendance or {},
    )


def notice(
    nid: int,
    created: datetime,
    open_for: Iterable[int],
    *,
    deadline: datetime | None = None,
    nudges: dict[int, int] | None = None,
    last_nudged: dict[int, datetime] | None = None,
) -> NoticeInfo:
    nudges = nudges or {}
    last = last_nudged or {}
    return NoticeInfo(
        id=nid,
        text="请各支部报送创建工作推进情况",
        created_at=created,
        deadline=deadline,
        open_receipts=tuple(
            ReceiptInfo(100 + mid, mid, nudges.get(mid, 0), last.get(mid)) for mid in open_for
        ),
        sender_name="office",
    )


Rule = Callable[[datetime, PlanData, Settings], list[Reminder]]


def run_days(
    due: Rule, data: PlanData, settings: Settings, first: date, last: date
) -> dict[date, list[Reminder]]:
    """The rule's reminders for each day of ``[first, last]`` (days with none left out),
    each checked to be on its day and sendable."""
    out: dict[date, list[Reminder]] = defaultdict(list)
    day = first
    while day <= last:
        for r in due(noon(day), data, settings):
            assert local_date(r.at) == day, (r.key, r.at, day)
            assert in_send_window(r.at, settings.bot.send_window, CAL), (r.key, r.at)
            out[day].append(r)
        day += timedelta(days=1)
    return dict(out)


def by_key(days: dict[date, list[Reminder]]) -> dict[str, tuple[date, Reminder]]:
    found: dict[str, tuple[date, Reminder]] = {}
    for day, rs in days.items():
        for r in rs:
            assert r.key not in found, f"{r.key} planned twice: {found[r.key][0]} and {day}"
            found[r.key] = (day, r)
    return found


def keys_on(days: dict[date, list[Reminder]], day: date) -> set[str]:
    return {r.key for r in days.get(day, [])}


def local_hm(r: Reminder) -> str:
    from bot.clock import local

    return f"{local(r.at):%H:%M}"


def settings_with(**sections: Any) -> Settings:
    """Default settings with some sections replaced, validated like a config file."""
    return Settings.model_validate(sections)
