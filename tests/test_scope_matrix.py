"""Scope, command by command and sender by sender (DESIGN §2; issue #4 item 5, #8 item 3).

:data:`MATRIX` holds, for EVERY command of the router's registry (``bot.router.commands()``),
what each kind of sender says and what must happen: a normal answer (:class:`Ok`), or a clear
refusal (:class:`Forbidden` — the router's 「…」仅限…使用 —, or :class:`Refused` with the
handler's own text from ``bot.messages``) with every table of the database unchanged. A
command added to the registry without a row here fails
:func:`test_every_command_has_a_row_for_every_sender`.

The senders (``tests.factories.small_bureau``, clock: Wednesday 2026-11-25 10:07):

- ``member`` 张三 (第一党支部, in its 第一党小组), also trying other people's meetings and notices;
- ``committee`` 李委员 (组织委员 of 第一党支部);
- ``secretary`` 王书记 (书记 of 第一党支部) on his own branch, and ``secretary_on_b`` the same
  王书记 naming 第二党支部's meetings, notices, members, tasks, groups;
- ``office`` 周办 (党委办), ``leader`` 吴委员 (党委委员: read-only over every branch);
- a stranger who is not on the roster: every text of every row gets the polite refusal.

There is no 党小组长 role: the roster accepts no such 职务 (``bot.roster.DUTIES``), so a group
member is a member; :func:`test_there_is_no_group_leader_role` fails the day one is added.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, SQLModel

from bot import messages as msg
from bot.models import Notice
from bot.roles import roles_of
from bot.router import Command, commands, find_command, who_may
from bot.store import create_tasks, record_feedback
from bot.text import normalize
from tests.chatkit import Chat, add_meeting, shanghai
from tests.factories import org

# --- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """A normal answer: the reply carries ``template`` (placeholders match anything)."""

    template: str


@dataclass(frozen=True)
class Own(Ok):
    """A normal answer about the sender's own record or branch: the command has no way to
    name another branch, and nothing of 第二党支部 shows in the reply."""


@dataclass(frozen=True)
class Forbidden:
    """The router's refusal for a command outside the sender's roles."""


@dataclass(frozen=True)
class Refused:
    """The handler's refusal: exactly ``template`` filled with ``fields`` (which may name
    scenario ids such as ``{b2_past}``)."""

    template: str
    fields: dict[str, str] = field(default_factory=dict)


Expect = Ok | Forbidden | Refused
Case = tuple[str, Expect]

ROLES = ("member", "committee", "secretary", "secretary_on_b", "office", "leader")
SENDERS = {
    "member": "zhangsan",
    "committee": "liweiyuan",
    "secretary": "wangshuji",
    "secretary_on_b": "wangshuji",
    "office": "zhouban",
    "leader": "wuweiyuan",
}
STRANGER = "nobody"
A = "第一党支部"
B_WORDS = ("第二党支部", "钱五", "孙书记")
"""What must not show in an answer about the sender's own branch (:class:`Own`)."""

F = Forbidden()


def refused(template: str, **fields: str) -> Refused:
    return Refused(template, fields)


def everyone(
    text: str, expect: Ok, on_b: list[Case] | None = None, **others: list[Case]
) -> dict[str, list[Case]]:
    """A command every member may use on their own record (the same text for everyone).
    ``on_b``: the secretary naming 第二党支部's things (default: ``text`` again, which can only
    be about the sender's own record)."""
    row: dict[str, list[Case]] = {r: [(text, expect)] for r in ROLES}
    row["secretary_on_b"] = on_b or [(text, Own(expect.template))]
    for role, cases in others.items():
        row[role] = row[role] + cases
    return row


def only(allowed: dict[str, list[Case]]) -> dict[str, list[Case]]:
    """A command for some roles; every other role is refused by the router."""
    return {r: allowed.get(r, [("", F)]) for r in ROLES}


MATRIX: dict[str, dict[str, list[Case]]] = {
    # Member commands: one's own record; another branch's meeting or notice is not one's own.
    "checkin": everyone(
        "签到",
        Ok(msg.CHECKIN_DONE),
        on_b=[("签到 {b2_now}", refused(msg.MEETING_NOT_YOURS, id="{b2_now}"))],
        member=[("签到 {b2_now}", refused(msg.MEETING_NOT_YOURS, id="{b2_now}"))],
    ),
    "leave": {
        "member": [
            ("请假 {a_next} 出差", Ok(msg.LEAVE_DONE)),
            ("请假 {a_committee} 出差", refused(msg.MEETING_NOT_YOURS, id="{a_committee}")),
            ("请假 {b2_next} 出差", refused(msg.MEETING_NOT_YOURS, id="{b2_next}")),
        ],
        "committee": [("请假 {a_committee} 出差", Ok(msg.LEAVE_DONE))],
        "secretary": [("请假 {a_next} 出差", Ok(msg.LEAVE_DONE))],
        "secretary_on_b": [("请假 {b2_next} 出差", refused(msg.MEETING_NOT_YOURS, id="{b2_next}"))],
        "office": [("请假 {b2_next} 出差", Ok(msg.LEAVE_DONE))],
        "leader": [("请假 {b2_next} 出差", Ok(msg.LEAVE_DONE))],
    },
    "study": everyone("学习 30分钟 党章", Ok(msg.STUDY_DONE)),
    "confirm": everyone(
        "收到",
        Ok(msg.CONFIRM_DONE),
        on_b=[("收到 {n_b}", refused(msg.CONFIRM_NOT_YOURS, id="{n_b}"))],
        member=[("收到 {n_b}", refused(msg.CONFIRM_NOT_YOURS, id="{n_b}"))],
    ),
    "mine": everyone("我的", Ok(msg.MINE_HEADER), on_b=[("我的 钱五", Own(msg.MINE_HEADER))]),
    "feedback": everyone("意见 会议通知能否提前一天发", Ok(msg.FEEDBACK_DONE)),
    "deed": everyone("办实事 帮社区老人代办医保", Ok(msg.DEED_DONE)),
    "help": everyone("帮助", Ok(msg.HELP_HEADER)),
    "dues": everyone(
        "已交党费 11月",
        Ok(msg.DUES_DONE),
        on_b=[("已交党费 12月", Own(msg.DUES_DONE))],
        member=[("已交党费 10月 撤销", refused(msg.DUES_ONLY_SECRETARY))],
    ),
    # Secretary and committee: their own branch only.
    "dues_for_member": {
        "member": [("已交党费 赵四 11月", refused(msg.DUES_ONLY_SECRETARY))],
        "committee": [("已交党费 赵四 11月", Ok(msg.DUES_DONE))],
        "secretary": [("已交党费 张三 11月", Ok(msg.DUES_DONE))],
        "secretary_on_b": [
            ("已交党费 钱五 11月", refused(msg.MEMBER_OTHER_BRANCH, name="钱五", branch=A)),
            ("已交党费 钱五 11月 撤销", refused(msg.MEMBER_OTHER_BRANCH, name="钱五", branch=A)),
        ],
        "office": [("已交党费 张三 11月", refused(msg.DUES_ONLY_SECRETARY))],
        "leader": [("已交党费 张三 11月", refused(msg.DUES_ONLY_SECRETARY))],
    },
    "status": only(
        {
            "committee": [
                ("状态", Ok(msg.STATUS_HEADER)),
                ("状态 第二党支部", refused(msg.STATUS_OTHER_BRANCH, branch=A)),
            ],
            "secretary": [("支部状态", Ok(msg.STATUS_HEADER))],
            "secretary_on_b": [("状态 第二党支部", refused(msg.STATUS_OTHER_BRANCH, branch=A))],
            "office": [("状态 第一党支部", Ok(msg.STATUS_HEADER))],
            "leader": [("状态 第一党支部", Ok(msg.STATUS_HEADER))],
        }
    ),
    "attendance": only(
        {
            "committee": [("考勤 {a_past}", Ok(msg.ATTENDANCE_HEADER))],
            "secretary": [("考勤 {a_past}", Ok(msg.ATTENDANCE_HEADER))],
            "secretary_on_b": [
                ("考勤 {b2_past}", refused(msg.MEETING_OTHER_BRANCH, id="{b2_past}", branch=A))
            ],
            "office": [("考勤 {a_past}", Ok(msg.ATTENDANCE_HEADER))],
            "leader": [("考勤 {a_past}", Ok(msg.ATTENDANCE_HEADER))],
        }
    ),
    "behind": only(
        {
            "committee": [("未学习", Ok(msg.STUDY_BEHIND_HEADER))],
            "secretary": [("未学习", Ok(msg.STUDY_BEHIND_HEADER))],
            "secretary_on_b": [("未学习 第二党支部", Own(msg.STUDY_BEHIND_HEADER))],
        }
    ),
    "unconfirmed": only(
        {
            "committee": [("未确认 {n_all}", Ok(msg.UNCONFIRMED_BRANCH))],
            "secretary": [("未确认", Ok(msg.UNCONFIRMED_BRANCH))],
            "secretary_on_b": [
                ("未确认 {n_b}", refused(msg.NOTICE_NOT_IN_BRANCH, id="{n_b}", branch=A))
            ],
            "office": [("未确认 {n_b}", Ok(msg.UNCONFIRMED_BUREAU))],
            "leader": [("未确认 {n_all}", Ok(msg.UNCONFIRMED_BUREAU))],
        }
    ),
    "nudge": only(
        {
            "committee": [("催办 {n_all}", Ok(msg.NUDGE_DONE))],
            "secretary": [("催办 {n_all}", Ok(msg.NUDGE_DONE))],
            "secretary_on_b": [
                ("催办 {n_b}", refused(msg.NOTICE_NOT_IN_BRANCH, id="{n_b}", branch=A))
            ],
        }
    ),
    "schedule": only(
        {
            "committee": [("安排 党小组会 12月8日 9:00 三楼会议室", Ok(msg.SCHEDULE_DONE))],
            "secretary": [("安排 支委会 12月5日 14:30 三楼会议室", Ok(msg.SCHEDULE_DONE))],
            "secretary_on_b": [
                (
                    "安排 党小组会 第二党支部/第一党小组 12月6日 14:30",
                    refused(msg.SCHEDULE_OTHER_BRANCH, name="第二党支部/第一党小组", branch=A),
                ),
                (
                    "安排 支部党员大会 第二党支部 12月6日 14:30",
                    refused(msg.SCHEDULE_OTHER_BRANCH, name="第二党支部", branch=A),
                ),
            ],
        }
    ),
    "first_topic": only(
        {
            "committee": [("第一议题 {a_committee} 学习最新重要讲话", Ok(msg.FIRST_TOPIC_DONE))],
            "secretary": [("第一议题 {a_committee} 学习最新重要讲话", Ok(msg.FIRST_TOPIC_DONE))],
            "secretary_on_b": [
                (
                    "第一议题 {b2_committee} 学习最新重要讲话",
                    refused(msg.MEETING_OTHER_BRANCH, id="{b2_committee}", branch=A),
                )
            ],
        }
    ),
    "makeup": only(
        {
            "committee": [("补学 赵四 {a_past}", Ok(msg.MAKEUP_DONE))],
            "secretary": [("补学 张三 {a_past}", Ok(msg.MAKEUP_DONE))],
            "secretary_on_b": [
                ("补学 钱五 {b2_past}", refused(msg.MEMBER_OTHER_BRANCH, name="钱五", branch=A)),
                (
                    "补学 张三 {b2_past}",
                    refused(msg.MEETING_OTHER_BRANCH, id="{b2_past}", branch=A),
                ),
            ],
        }
    ),
    "progress": only(
        {
            "committee": [("进度 报送计划 已修改", Ok(msg.PROGRESS_DONE))],
            "secretary": [("进度 报送计划 已起草初稿", Ok(msg.PROGRESS_DONE))],
            "secretary_on_b": [
                (
                    "进度 第二支部专项 已完成 完成",
                    refused(
                        msg.PROGRESS_NO_TASK,
                        name="第二支部专项",
                        open=msg.PROGRESS_OPEN_LIST.format(names="「报送计划」"),
                    ),
                )
            ],
        }
    ),
    "report": only(
        {
            "committee": [("报告 拟于12月召开支部党员大会进行换届选举", Ok(msg.REPORT_DONE))],
            "secretary": [("报告 拟于12月召开支部党员大会进行换届选举", Ok(msg.REPORT_DONE))],
            "secretary_on_b": [("报告 拟于12月召开支部党员大会", Own(msg.REPORT_DONE))],
        }
    ),
    "export_ledger": only(
        {
            "committee": [("导出 台账", Ok(msg.LEDGER_DONE))],
            "secretary": [("导出台账", Ok(msg.LEDGER_DONE))],
            "secretary_on_b": [
                ("导出台账", Own(msg.LEDGER_DONE)),
                ("导出台账 第二党支部", refused(msg.LEDGER_BAD_YEAR, token="第二党支部")),
            ],
            "office": [("导出 台账", Ok(msg.LEDGER_DONE))],
            "leader": [("导出 台账 2026", Ok(msg.LEDGER_DONE))],
        }
    ),
    # The office (leaders read only).
    "notify": only({"office": [("通知 第一党支部 周五前报送学习计划", Ok(msg.NOTIFY_DONE))]}),
    "task": only({"office": [("任务 年度总结 12月20日 第一党支部", Ok(msg.TASK_DONE))]}),
    "ack": only({"office": [("已阅 {report}", Ok(msg.ACK_DONE))]}),
    "overview": only(
        {
            "office": [("总览", Ok(msg.OVERVIEW_HEADER))],
            "leader": [("总览", Ok(msg.OVERVIEW_HEADER))],
        }
    ),
}

# Forbidden rows still need a well-formed text: the one an allowed sender uses.
for _name, _row in MATRIX.items():
    _text = next(t for cases in _row.values() for t, e in cases if not isinstance(e, Forbidden))
    for _role, _cases in _row.items():
        _row[_role] = [(t or _text, e) for t, e in _cases]


# --- the scenario -------------------------------------------------------------------------


@pytest.fixture
def scene(
    session: Session, bureau: dict[str, Any], chat: Chat, clock, settings, tmp_path
) -> dict[str, Any]:
    """Both branches with a meeting on now, one coming, a 支委会, one held last week, a notice
    to everyone and one to 第二党支部 only, a task each, and a 报告 from 第二党支部."""
    settings.ledger.export_dir = str(tmp_path / "exports")
    now = clock.now()
    b1, b2 = bureau["b1"], bureau["b2"]
    group_b = org(session, "第二党支部/第一党小组", "党小组", parent=b2)
    bureau["other"].group_id = group_b.id
    ids: dict[str, Any] = {}
    for tag, branch in (("a", b1), ("b2", b2)):
        ids[f"{tag}_now"] = add_meeting(
            session, branch, "支部党员大会", shanghai(2026, 11, 25, 9, 50), now=now
        ).id
        ids[f"{tag}_next"] = add_meeting(
            session, branch, "党课", shanghai(2026, 11, 27, 14, 30), now=now
        ).id
        ids[f"{tag}_committee"] = add_meeting(
            session, branch, "支委会", shanghai(2026, 11, 26, 14, 30), now=now
        ).id
        ids[f"{tag}_past"] = add_meeting(
            session, branch, "主题党日", shanghai(2026, 11, 18, 9, 0), now=now
        ).id
    create_tasks(
        session=session, name="报送计划", due_on=shanghai(2026, 12, 20).date(),
        branch_ids=[b1.id, b2.id], created_by=bureau["office"], now=now,
    )  # fmt: skip
    create_tasks(
        session=session, name="第二支部专项", due_on=shanghai(2026, 12, 20).date(),
        branch_ids=[b2.id], created_by=bureau["office"], now=now,
    )  # fmt: skip
    ids["report"] = record_feedback(
        session=session, member=bureau["secretary2"], kind="报告", text="换届请示", at=now
    ).id
    session.commit()
    chat("zhouban", "通知 全体 周五下午集中学习")
    chat("zhouban", "通知 第二党支部 请第二党支部报送材料")
    session.rollback()
    n_all, n_b = (n.id for n in session.scalars(select(Notice).order_by(Notice.id)))
    ids.update(n_all=n_all, n_b=n_b)
    return {"ids": {k: str(v) for k, v in ids.items()}, "chat": chat, "people": bureau}


Dump = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def dump(engine: Engine) -> Dump:
    """Every row of every table, by primary key."""
    out: Dump = {}
    with engine.connect() as conn:
        for t in SQLModel.metadata.sorted_tables:
            pk = [c.name for c in t.primary_key.columns]
            out[t.name] = {
                tuple(r._mapping[c] for c in pk): dict(r._mapping) for r in conn.execute(select(t))
            }
    return out


def changes(before: Dump, after: Dump) -> list[tuple[str, dict[str, Any]]]:
    """Rows added, changed or removed."""
    out = []
    for name, rows in after.items():
        out += [(name, row) for k, row in rows.items() if before[name].get(k) != row]
        out += [(name, row) for k, row in before[name].items() if k not in rows]
    return out


def scope_of_writes(before: Dump, after: Dump) -> tuple[set[Any], set[Any]]:
    """(branches the changed rows are about, members whose records changed); a message queued
    to the office (意见, 报告) is about no branch."""
    members = {m["id"]: m for m in after["member"].values()}
    by_userid = {m["userid"]: m for m in members.values()}
    meetings = {m["id"]: m["branch_id"] for m in after["meeting"].values()}
    tasks = {t["id"]: t["branch_id"] for t in after["task"].values()}
    branches: set[Any] = set()
    owners: set[Any] = set()
    for name, row in changes(before, after):
        if name == "outboxmessage":
            to = by_userid.get(row["recipient"])
            if to is None or "党委办" not in to["roles"]:
                branches.add(to["branch_id"] if to else row["recipient"])
            continue
        if "member_id" in row and row["member_id"] is not None:
            owners.add(row["member_id"])
            branches.add(members[row["member_id"]]["branch_id"])
        else:
            owners.add(f"{name} (not a person's record)")
        if "branch_id" in row:
            branches.add(row["branch_id"])
        if "meeting_id" in row:
            branches.add(meetings[row["meeting_id"]])
        if "task_id" in row:
            branches.add(tasks[row["task_id"]])
        if name not in WRITABLE:
            branches.add(f"{name} (no chat command writes it)")
    return branches, owners


WRITABLE = {
    "meeting", "attendance", "studyrecord", "notice", "noticereceipt", "task", "taskprogress",
    "duesrecord", "feedback", "deed", "outboxmessage",
}  # fmt: skip


def pattern(template: str) -> re.Pattern[str]:
    """``template``'s literal parts in order, anything in place of its placeholders."""
    parts = [re.escape(lit) for lit, _, _, _ in string.Formatter().parse(template)]
    return re.compile(".*?".join(parts), re.S)


def forbidden_text(cmd: Command) -> str:
    return msg.FORBIDDEN.format(command=cmd.keywords[0], who=who_may(cmd))


REFUSALS = [pattern(t) for t in (msg.NOT_ON_ROSTER, msg.INTERNAL_ERROR, msg.FORBIDDEN)]


def check(
    say: Callable[[str], str],
    engine: Engine,
    text: str,
    expect: Expect,
    cmd: Command,
    ids: dict[str, str],
    role: str = "",
    people: dict[str, Any] | None = None,
) -> None:
    before = dump(engine)
    reply = say(text)
    where = f"{text!r} → {reply!r}"
    if isinstance(expect, Forbidden):
        assert reply == forbidden_text(cmd), where
    elif isinstance(expect, Refused):
        fields = {k: v.format(**ids) for k, v in expect.fields.items()}
        assert reply == expect.template.format(**fields), where
    else:
        assert pattern(expect.template).search(reply), where
        assert not any(r.search(reply) for r in REFUSALS), where
        if isinstance(expect, Own):
            assert not any(w in reply for w in B_WORDS), where
        assert people is not None
        branches, owners = scope_of_writes(before, dump(engine))
        if role in ("member", "leader"):  # their own records only (and messages they cause)
            assert owners <= {people[role].id}, f"wrote others' records: {owners} {where}"
        if role != "office" and role != "leader":  # 第一党支部's people: their branch only
            assert branches <= {people["b1"].id}, f"wrote outside the branch: {branches} {where}"
        return
    assert dump(engine) == before, f"a refused request changed the database: {where}"


# --- the tests ----------------------------------------------------------------------------


def test_every_command_has_a_row_for_every_sender():
    names = [c.name for c in commands()]
    assert sorted(set(names)) == sorted(MATRIX), "a command without a scope row (or a stale row)"
    for name, row in MATRIX.items():
        assert set(row) == set(ROLES), name
        assert all(row[r] for r in ROLES), name


def test_forbidden_follows_the_registry_roles(session, bureau):
    """A :class:`Forbidden` cell is exactly a text no command admitting the sender matches
    (已交党费 张三 from a member reaches the member's own 已交党费, which refuses it)."""
    table = commands()
    for name, row in MATRIX.items():
        for role, cases in row.items():
            roles = roles_of(bureau[role.removesuffix("_on_b")])
            for text, expect in cases:
                cmd, _, _ = find_command(normalize(text), roles, table)
                assert (cmd is None) == isinstance(expect, Forbidden), (name, role, text)
                assert cmd is None or cmd.keywords == table_keywords(name), (name, role, text)


def table_keywords(name: str) -> tuple[str, ...]:
    return next(c.keywords for c in commands() if c.name == name)


def test_there_is_no_group_leader_role():
    from bot.roster import DUTIES
    from bot.roster import ROLES as BUREAU_ROLES

    assert not [d for d in (*DUTIES, *BUREAU_ROLES) if "组长" in d], (
        "a 党小组长 role exists now: give it a column in MATRIX"
    )


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_scope(name: str, scene: dict[str, Any], engine: Engine):
    cmd = next(c for c in commands() if c.name == name)
    chat: Chat = scene["chat"]
    ids: dict[str, str] = scene["ids"]
    row = MATRIX[name]
    # Refusals first (each against the untouched scene), then the normal answers.
    ordered = sorted(
        ((role, text, e) for role in ROLES for text, e in row[role]),
        key=lambda c: isinstance(c[2], Ok),
    )
    for role, text, expect in ordered:
        said = text.format(**ids)
        say = lambda t, u=SENDERS[role]: chat(u, t)  # noqa: E731
        check(say, engine, said, expect, cmd, ids, role, scene["people"])
    for text in {t for cases in row.values() for t, _ in cases}:
        check(
            lambda t: chat(STRANGER, t),
            engine,
            text.format(**ids),
            refused(msg.NOT_ON_ROSTER),
            cmd,
            ids,
        )
