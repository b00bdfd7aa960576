"""Demo and synthetic data: the small bureau of ``mofan init --demo`` and large ones for benches.

:func:`load_demo` builds 区局机关党委 with three branches and 30 members covering every role
(书记, 副书记, the 委员s, members, 预备党员, the 党委办 office and two 党委委员 leaders with
a 联系点), plus a few weeks of meetings, attendance, study, dues and a notice before ``now``,
so that 状态, 我的 and 帮助 have something to show. Dates are placed relative to ``now``:
political birthdays fall in every month, two probations end within weeks of ``now``, and
机关第二党支部's term is four months from its 换届.

:func:`generate_bureau` builds a bureau of any size with bulk inserts, optionally with a year
of activity; later benches use it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlmodel import Session, SQLModel, col

from bot.clock import local, to_utc
from bot.models import (
    Attendance,
    DuesRecord,
    Meeting,
    Member,
    Notice,
    NoticeReceipt,
    Org,
    StudyRecord,
)
from bot.roster import MemberRow, OrgRow, Roster, apply_roster, group_org_name

DEMO_ROOT = "区局机关党委"
BRANCH_1 = "机关第一党支部"
BRANCH_2 = "机关第二党支部"
BRANCH_3 = "离退休干部党支部"
FIRST_TOPIC = "学习习近平总书记最新重要讲话精神"


@dataclass(frozen=True)
class _Person:
    userid: str
    name: str
    branch: str
    group: str | None = None
    duties: str = ""
    roles: str = ""
    probation_days_left: int | None = None
    """Set for a 预备党员: days from ``now`` to the end of the probation year."""
    liaison: str | None = None
    joined_year: int = 2010


# Memorable ascii userids, for `mofan chat --as zhangwei`.
_PEOPLE: tuple[_Person, ...] = (
    # 机关第一党支部: the office and a leader are members here.
    _Person("zhangwei", "张伟", BRANCH_1, "第一党小组", "书记", joined_year=2003),
    _Person("lina", "李娜", BRANCH_1, "第一党小组", "组织委员", joined_year=2011),
    _Person("wangfang", "王芳", BRANCH_1, "第二党小组", "宣传委员", joined_year=2014),
    _Person("xuming", "徐明", BRANCH_1, "第二党小组", "纪检委员", joined_year=2009),
    _Person("office", "陈静", BRANCH_1, "第二党小组", roles="党委办", joined_year=2016),
    _Person(
        "wangjun",
        "王军",
        BRANCH_1,
        "第一党小组",
        roles="党委委员",
        liaison=BRANCH_2,
        joined_year=1998,
    ),
    _Person("zhaolei", "赵磊", BRANCH_1, "第一党小组", joined_year=2018),
    _Person("zhoujie", "周杰", BRANCH_1, "第二党小组", joined_year=2020),
    _Person("wuhao", "吴昊", BRANCH_1, "第一党小组", joined_year=2021),
    _Person("sunli", "孙丽", BRANCH_1, "第二党小组", probation_days_left=20),
    # 机关第二党支部: near its 换届.
    _Person("liqiang", "李强", BRANCH_2, "第一党小组", "书记", joined_year=2001),
    _Person("huangmin", "黄敏", BRANCH_2, "第一党小组", "副书记", joined_year=2006),
    _Person("zhouxin", "周鑫", BRANCH_2, "第二党小组", "委员", joined_year=2012),
    _Person(
        "liuyang",
        "刘洋",
        BRANCH_2,
        "第二党小组",
        roles="党委委员",
        liaison=BRANCH_3,
        joined_year=2000,
    ),
    _Person("yangfan", "杨帆", BRANCH_2, "第一党小组", joined_year=2015),
    _Person("gaojing", "高静", BRANCH_2, "第二党小组", joined_year=2017),
    _Person("linfeng", "林峰", BRANCH_2, "第一党小组", joined_year=2019),
    _Person("guoli", "郭丽", BRANCH_2, "第二党小组", joined_year=2022),
    _Person("hetao", "何涛", BRANCH_2, "第一党小组", probation_days_left=45),
    _Person("mali", "马丽", BRANCH_2, "第二党小组", probation_days_left=150),
    # 离退休干部党支部: one party group, long-standing members.
    _Person("zhengguo", "郑国", BRANCH_3, "离退休党小组", "书记", joined_year=1978),
    _Person("songhua", "宋华", BRANCH_3, "离退休党小组", "组织委员", joined_year=1982),
    _Person("hanmei", "韩梅", BRANCH_3, "离退休党小组", "宣传委员", joined_year=1985),
    _Person("fengjian", "冯建", BRANCH_3, "离退休党小组", joined_year=1976),
    _Person("caoyun", "曹云", BRANCH_3, "离退休党小组", joined_year=1980),
    _Person("pengli", "彭丽", BRANCH_3, "离退休党小组", joined_year=1987),
    _Person("luming", "陆明", BRANCH_3, "离退休党小组", joined_year=1990),
    _Person("jiangtao", "蒋涛", BRANCH_3, "离退休党小组", joined_year=1983),
    _Person("xiehong", "谢红", BRANCH_3, "离退休党小组", joined_year=1992),
    _Person("tanglin", "唐林", BRANCH_3, "离退休党小组", joined_year=1995),
)

_STUDY_TOPICS = (
    "第一议题：习近平总书记最新重要讲话",
    "《习近平谈治国理政》第五卷",
    "党章和《中国共产党纪律处分条例》",
    "学习强国专题学习",
    "《中国共产党支部工作条例（试行）》",
    "二十届四中全会精神",
)


def _workday_on_or_before(day: date) -> date:
    # Weekends only: the demo needs plausible dates, not the statutory calendar.
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _id(row: Org | Member | Meeting | Notice) -> int:
    # Rows read back or flushed always have their id; this narrows the type for mypy.
    assert row.id is not None
    return row.id


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    return to_utc(datetime.combine(day, time(hh, mm)))


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _demo_roster(today: date) -> Roster:
    members: list[MemberRow] = []
    for i, p in enumerate(_PEOPLE):
        if p.probation_days_left is not None:
            full_on = today + timedelta(days=p.probation_days_left)
            joined_on = _years_before(full_on, 1)
            category = "预备党员"
        else:
            # Month i % 12 + 1: two or three political birthdays in every month of the year.
            joined_on = date(p.joined_year, i % 12 + 1, 1 + (i * 7) % 28)
            full_on = _years_before(joined_on, -1)
            category = "正式党员"
        members.append(
            MemberRow(
                row=i + 2,
                name=p.name,
                userid=p.userid,
                branch=p.branch,
                group=p.group,
                duties=p.duties,
                roles=p.roles,
                category=category,
                joined_on=joined_on,
                full_on=full_on,
                liaison=p.liaison,
            )
        )
    # 换届 every three years: branch 2 is four months from it, the others well inside.
    terms = {
        BRANCH_1: _years_before(today, 1) - timedelta(days=60),
        BRANCH_2: _years_before(today, 3) + timedelta(days=120),
        BRANCH_3: _years_before(today, 2),
    }
    orgs = [OrgRow(row=2, name=DEMO_ROOT, kind="党委")]
    for branch, term in terms.items():
        orgs.append(
            OrgRow(
                row=len(orgs) + 2,
                name=branch,
                kind="党支部",
                parent=DEMO_ROOT,
                term_started_on=term,
            )
        )
    for group in dict.fromkeys((p.branch, p.group) for p in _PEOPLE if p.group):
        orgs.append(
            OrgRow(row=len(orgs) + 2, name=group_org_name(*group), kind="党小组", parent=group[0])
        )
    return Roster(members=members, orgs=orgs)


def load_demo(*, session: Session, now: datetime) -> None:
    """Load the demo bureau (once: a second call finds it and does nothing).

    Refuses a database that already holds another roster: the demo must never deactivate
    real members.
    """
    if session.scalar(select(Org).where(col(Org.name) == DEMO_ROOT)) is not None:
        return
    if session.scalar(select(func.count()).select_from(Member)):
        raise ValueError("数据库里已有党员名单，不能再加载演示数据")
    today = local(now).date()
    report = apply_roster(session=session, roster=_demo_roster(today), dry_run=False, now=now)
    if not report.ok:  # the demo roster is ours: a bad row is a bug in this module
        raise RuntimeError("; ".join(report.summary_lines()))
    orgs = {o.name: o for o in session.scalars(select(Org))}
    people = {m.userid: m for m in session.scalars(select(Member))}
    _demo_activity(session, now, orgs, people)
    session.flush()


def _demo_activity(
    session: Session, now: datetime, orgs: dict[str, Org], people: dict[str, Member]
) -> None:
    today = local(now).date()
    rng = random.Random(2024)
    by_branch: dict[str, list[Member]] = {}
    for p in _PEOPLE:
        by_branch.setdefault(p.branch, []).append(people[p.userid])
    office = people["office"]

    def meeting(
        branch: str,
        kind: str,
        day: date,
        hh: int,
        topic: str,
        attendees: Sequence[Member],
        *,
        group: str | None = None,
        first_topic: str | None = None,
        leave: int = 0,
        absent: int = 0,
    ) -> None:
        starts = _at(_workday_on_or_before(day), hh, 30 if hh == 14 else 0)
        held = starts < now
        m = Meeting(
            branch_id=_id(orgs[branch]),
            group_id=_id(orgs[group_org_name(branch, group)]) if group else None,
            kind=kind,
            starts_at=starts,
            ends_at=starts + timedelta(hours=1, minutes=30),
            place="三楼会议室" if branch != BRANCH_3 else "老干部活动室",
            topic=topic,
            first_topic=first_topic,
            status="held" if held else "scheduled",
            created_by_id=_id(attendees[0]),
            created_at=min(starts - timedelta(days=5), now),
        )
        session.add(m)
        session.flush()
        if not held:
            return
        for i, member in enumerate(attendees):
            if i and i <= leave:
                status, reason, at = "leave", "出差", starts - timedelta(hours=20)
            elif i and i <= leave + absent:
                status, reason, at = "absent", "", m.ends_at
            else:
                status, reason, at = "signed_in", "", starts - timedelta(minutes=5)
            session.add(
                Attendance(
                    meeting_id=_id(m), member_id=_id(member), status=status, reason=reason, at=at
                )
            )

    month_start = today.replace(day=1)
    last_theme_day = (month_start - timedelta(days=1)).replace(day=15)
    for branch, members in by_branch.items():
        committee = [m for m in members if m.duties]
        meeting(
            branch,
            "支委会",
            today - timedelta(days=10),
            14,
            "研究本月支部工作",
            committee,
            first_topic=FIRST_TOPIC,
        )
        meeting(
            branch,
            "主题党日",
            last_theme_day,
            9,
            "主题党日：重温入党誓词",
            members,
            leave=1,
            absent=1 if branch != BRANCH_3 else 0,
        )
        groups = dict.fromkeys(p.group for p in _PEOPLE if p.branch == branch and p.group)
        for group in groups:
            in_group = [
                people[p.userid] for p in _PEOPLE if p.branch == branch and p.group == group
            ]
            meeting(
                branch,
                "党小组会",
                today - timedelta(days=7),
                9,
                "交流学习体会",
                in_group,
                group=group,
            )
    b1 = by_branch[BRANCH_1]
    meeting(
        BRANCH_1,
        "支部党员大会",
        today - timedelta(days=20),
        14,
        "审议支部年度工作计划",
        b1,
        leave=1,
    )
    meeting(
        BRANCH_3,
        "党课",
        today - timedelta(days=21),
        9,
        "书记讲党课：传承红色基因",
        by_branch[BRANCH_3],
    )
    # Coming up, for the "next meetings" part of 状态 and 我的.
    meeting(
        BRANCH_1,
        "支委会",
        today + timedelta(days=3),
        14,
        "研究发展党员工作",
        [m for m in b1 if m.duties],
        first_topic=FIRST_TOPIC,
    )
    meeting(
        BRANCH_2, "支部党员大会", today + timedelta(days=6), 14, "换届选举筹备", by_branch[BRANCH_2]
    )

    # Study is voluntary: most record a few sessions, some none at all.
    for i, p in enumerate(_PEOPLE):
        if i % 5 == 4:
            continue
        for _ in range(rng.randint(1, 4)):
            day = today - timedelta(days=rng.randint(1, 42))
            session.add(
                StudyRecord(
                    member_id=_id(people[p.userid]),
                    minutes=rng.choice((30, 40, 45, 60, 90)),
                    topic=rng.choice(_STUDY_TOPICS),
                    at=_at(day, rng.choice((8, 12, 20)), rng.choice((10, 30, 45))),
                )
            )

    # Dues: last month nearly everybody, this month the early few (the 党费日 is the 5th).
    last_month = (month_start - timedelta(days=1)).strftime("%Y-%m")
    this_month = month_start.strftime("%Y-%m")
    for i, p in enumerate(_PEOPLE):
        member = people[p.userid]
        if i % 9 != 8:
            session.add(
                DuesRecord(
                    member_id=_id(member),
                    month=last_month,
                    paid_at=_at(month_start - timedelta(days=25), 10),
                    recorded_by_id=_id(member),
                )
            )
        if i % 4 == 0 and month_start < today:
            session.add(
                DuesRecord(
                    member_id=_id(member),
                    month=this_month,
                    paid_at=min(_at(month_start, 10), now),
                    recorded_by_id=_id(member),
                )
            )

    notice = Notice(
        text="请各支部于本月底前报送“模范机关”创建工作推进情况。",
        scope="全体",
        sender_id=_id(office),
        created_at=now - timedelta(days=3),
        deadline=_at(today + timedelta(days=7), 18),
    )
    session.add(notice)
    session.flush()
    for i, member in enumerate(people.values()):
        confirmed = now - timedelta(days=3) + timedelta(hours=1 + i) if i % 3 else None
        session.add(
            NoticeReceipt(notice_id=_id(notice), member_id=_id(member), confirmed_at=confirmed)
        )


# --- synthetic bureaus for benches ---------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建国红文辉鹏飞宇浩然"
_BRANCH_DUTIES = ("书记", "副书记", "组织委员", "宣传委员", "纪检委员")


def _insert_ids(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows (multi-row INSERT … RETURNING); their ids, in the rows' order."""
    table = model.__table__  # type: ignore[attr-defined]
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    ids: list[int] = []
    # Small batches: SQLAlchemy's re-ordering of RETURNING rows grows badly with batch size.
    for start in range(0, len(rows), 1000):
        ids.extend(session.scalars(stmt, rows[start : start + 1000]).all())
    return ids


def _insert_many(
    session: Session, model: type[SQLModel], rows: Iterable[dict[str, Any]], chunk: int = 20_000
) -> int:
    """Insert a stream of rows with executemany, in chunks so memory stays flat; the count.

    Core inserts on the table: the ORM's bulk path costs several times more per row here.
    """
    stmt = insert(model.__table__)  # type: ignore[attr-defined]
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            session.execute(stmt, batch)
            count += len(batch)
            batch = []
    if batch:
        session.execute(stmt, batch)
        count += len(batch)
    return count


def generate_bureau(
    *,
    session: Session,
    members: int,
    branches: int,
    now: datetime,
    seed: int = 0,
    year_of_data: bool = False,
) -> dict[str, int]:
    """Build a synthetic bureau into an empty database; returns the rows written per table.

    ``members`` are spread evenly over ``branches`` (two party groups each). The first
    member is the 党委办 (userid ``office``), the next five are 党委委员 with a 联系点; in
    every branch the first five are its committee (书记 … 纪检委员) and about one in twenty
    of the rest is a 预备党员.
    With ``year_of_data``: the 365 days before ``now`` of meetings with attendance, study
    records, notices with receipts and dues.
    """
    if session.scalar(select(func.count()).select_from(Org)):
        raise ValueError("generate_bureau needs an empty database")
    if members < branches or branches < 1:
        raise ValueError("need at least one branch and one member per branch")
    rng = random.Random(seed)
    today = local(now).date()

    root = Org(name="机关党委", kind="党委", active=True)
    session.add(root)
    session.flush()
    branch_names = [f"第{i + 1:03d}党支部" for i in range(branches)]
    branch_ids = _insert_ids(
        session,
        Org,
        [
            {
                "name": name,
                "kind": "党支部",
                "parent_id": root.id,
                "active": True,
                "term_started_on": today - timedelta(days=rng.randint(30, 3 * 365 + 200)),
                "robot_key": None,
            }
            for name in branch_names
        ],
    )
    group_ids = _insert_ids(
        session,
        Org,
        [
            {
                "name": group_org_name(name, g),
                "kind": "党小组",
                "parent_id": bid,
                "active": True,
                "term_started_on": None,
                "robot_key": None,
            }
            for name, bid in zip(branch_names, branch_ids, strict=True)
            for g in ("第一党小组", "第二党小组")
        ],
    )

    member_rows: list[dict[str, Any]] = []
    per_branch: list[list[int]] = [[] for _ in range(branches)]  # member_rows indices
    for i in range(members):
        b = i % branches
        position = len(per_branch[b])
        per_branch[b].append(i)
        probation = position >= 5 and rng.random() < 0.05
        if probation:
            joined = today - timedelta(days=rng.randint(1, 364))
        else:
            joined = date(rng.randint(1975, today.year - 2), rng.randint(1, 12), rng.randint(1, 28))
        roles, liaison = "", None
        if i == 0:
            roles = "党委办"
        elif i <= 5:
            roles, liaison = "党委委员", branch_ids[rng.randrange(branches)]
        member_rows.append(
            {
                "userid": "office" if i == 0 else f"u{i:05d}",
                "name": rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, rng.choice((1, 2)))),
                "branch_id": branch_ids[b],
                "group_id": group_ids[2 * b + position % 2],
                "duties": _BRANCH_DUTIES[position] if position < len(_BRANCH_DUTIES) else "",
                "roles": roles,
                "category": "预备党员" if probation else "正式党员",
                "joined_on": joined,
                "full_on": _years_before(joined, -1),
                "phone": None,
                "liaison_branch_id": liaison,
                "active": True,
                "updated_at": now,
            }
        )
    member_ids = _insert_ids(session, Member, member_rows)
    counts = {"org": 1 + len(branch_ids) + len(group_ids), "member": len(member_ids)}
    if year_of_data:
        counts |= _year_of_data(session, rng, now, branch_ids, group_ids, per_branch, member_ids)
    return counts


def _year_of_data(
    session: Session,
    rng: random.Random,
    now: datetime,
    branch_ids: list[int],
    group_ids: list[int],
    per_branch: list[list[int]],
    member_ids: list[int],
) -> dict[str, int]:
    today = local(now).date()
    start = today - timedelta(days=365)
    months = []
    cursor = start.replace(day=1)
    while cursor <= today:
        months.append(cursor)
        cursor = (cursor + timedelta(days=32)).replace(day=1)

    def day_in(month: date, lo: int, hi: int) -> date:
        return _workday_on_or_before(month.replace(day=rng.randint(lo, hi)))

    # (kind, attendee selector, months it happens in)
    plan: list[tuple[str, str, list[date]]] = [
        ("支委会", "committee", months),
        ("主题党日", "all", months),
        ("党小组会", "group0", months),
        ("党小组会", "group1", months),
        ("支部党员大会", "all", [m for m in months if m.month in (3, 6, 9, 12)]),
        ("党课", "all", [m for m in months if m.month in (2, 5, 8, 11)]),
        ("组织生活会", "all", [m for m in months if m.month == 12]),
    ]
    meetings: list[dict[str, Any]] = []
    attendees: list[list[int]] = []
    for b, bid in enumerate(branch_ids):
        people = [member_ids[i] for i in per_branch[b]]
        chosen = {
            "all": people,
            "committee": people[:5],
            "group0": people[0::2],
            "group1": people[1::2],
        }
        for kind, who, in_months in plan:
            for month in in_months:
                starts = _at(day_in(month, 3, 26), 14, 30)
                if starts >= now or local(starts).date() < start:
                    continue
                group_id = group_ids[2 * b + int(who[-1])] if who.startswith("group") else None
                meetings.append(
                    {
                        "branch_id": bid,
                        "group_id": group_id,
                        "kind": kind,
                        "starts_at": starts,
                        "ends_at": starts + timedelta(hours=1, minutes=30),
                        "place": "会议室",
                        "topic": kind,
                        "first_topic": FIRST_TOPIC if kind == "支委会" else None,
                        "status": "held",
                        "created_by_id": people[0],
                        "created_at": starts - timedelta(days=5),
                    }
                )
                attendees.append(chosen[who])
    meeting_ids = _insert_ids(session, Meeting, meetings)

    def attendance() -> Iterable[dict[str, Any]]:
        for mid, m, who in zip(meeting_ids, meetings, attendees, strict=True):
            for member_id in who:
                roll = rng.random()
                status = "signed_in" if roll < 0.9 else "leave" if roll < 0.96 else "absent"
                yield {
                    "meeting_id": mid,
                    "member_id": member_id,
                    "status": status,
                    "reason": "",
                    "at": m["starts_at"],
                }

    n_attendance = _insert_many(session, Attendance, attendance())

    def study() -> Iterable[dict[str, Any]]:
        for member_id in member_ids:
            for _ in range(rng.randint(5, 40)):
                at = now - timedelta(minutes=rng.randint(60, 365 * 24 * 60))
                yield {
                    "member_id": member_id,
                    "minutes": rng.choice((30, 45, 60, 90)),
                    "topic": rng.choice(_STUDY_TOPICS),
                    "at": at,
                }

    n_study = _insert_many(session, StudyRecord, study())

    notices: list[dict[str, Any]] = []
    notice_targets: list[Sequence[int]] = []
    for month in months[:-1] or months:
        created = _at(day_in(month, 2, 10), 10)
        notices.append(
            {
                "text": f"{month:%Y年%m月}工作安排",
                "scope": "全体",
                "sender_id": member_ids[0],
                "created_at": created,
                "deadline": None,
            }
        )
        notice_targets.append(member_ids)
    for b in range(len(branch_ids)):
        for month in rng.sample(months, min(2, len(months))):
            created = _at(day_in(month, 2, 10), 11)
            if created >= now:
                continue
            notices.append(
                {
                    "text": "支部通知",
                    "scope": f"第{b + 1:03d}党支部",
                    "sender_id": member_ids[per_branch[b][0]],
                    "created_at": created,
                    "deadline": None,
                }
            )
            notice_targets.append([member_ids[i] for i in per_branch[b]])
    notice_ids = _insert_ids(session, Notice, notices)

    def receipts() -> Iterable[dict[str, Any]]:
        for nid, n, who in zip(notice_ids, notices, notice_targets, strict=True):
            for member_id in who:
                confirmed = (
                    n["created_at"] + timedelta(minutes=rng.randint(5, 3000))
                    if rng.random() < 0.95
                    else None
                )
                yield {
                    "notice_id": nid,
                    "member_id": member_id,
                    "confirmed_at": confirmed,
                    "nudges": 0,
                    "last_nudged_at": None,
                }

    n_receipts = _insert_many(session, NoticeReceipt, receipts())

    def dues() -> Iterable[dict[str, Any]]:
        for month in months:
            paid_at = _at(month.replace(day=5), 10)
            if paid_at >= now:
                continue
            for member_id in member_ids:
                if rng.random() < 0.97:
                    yield {
                        "member_id": member_id,
                        "month": f"{month:%Y-%m}",
                        "paid_at": paid_at,
                        "recorded_by_id": member_id,
                    }

    n_dues = _insert_many(session, DuesRecord, dues())
    return {
        "meeting": len(meeting_ids),
        "attendance": n_attendance,
        "studyrecord": n_study,
        "notice": len(notice_ids),
        "noticereceipt": n_receipts,
        "duesrecord": n_dues,
    }
