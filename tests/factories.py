"""Test data builders: a small bureau in a few lines."""

from __future__ import annotations

from datetime import date
from itertools import count

from sqlmodel import Session

from bot.models import Member, Org

_seq = count(1)


def org(
    session: Session, name: str, kind: str = "党支部", parent: Org | None = None, **kw: object
) -> Org:
    o = Org(name=name, kind=kind, parent_id=parent.id if parent else None, **kw)
    session.add(o)
    session.flush()
    return o


def member(
    session: Session,
    branch: Org,
    name: str | None = None,
    *,
    userid: str | None = None,
    duties: str = "党员",
    roles: str = "",
    group: Org | None = None,
    category: str = "正式党员",
    joined_on: date | None = date(2010, 7, 1),
    **kw: object,
) -> Member:
    n = next(_seq)
    m = Member(
        userid=userid or f"user{n}",
        name=name or f"党员{n}",
        branch_id=branch.id,  # type: ignore[arg-type]
        group_id=group.id if group else None,
        duties=duties,
        roles=roles,
        category=category,
        joined_on=joined_on,
        **kw,
    )
    session.add(m)
    session.flush()
    return m


def small_bureau(session: Session) -> dict[str, object]:
    """A 党委 with two branches: a secretary, a committee member, members, office, a leader."""
    root = org(session, "机关党委", "党委")
    b1 = org(session, "第一党支部", parent=root)
    b2 = org(session, "第二党支部", parent=root)
    g1 = org(session, "第一党支部/第一党小组", "党小组", parent=b1)
    people = {
        "root": root,
        "b1": b1,
        "b2": b2,
        "g1": g1,
        "secretary": member(session, b1, "王书记", userid="wangshuji", duties="书记"),
        "committee": member(session, b1, "李委员", userid="liweiyuan", duties="组织委员", group=g1),
        "member": member(session, b1, "张三", userid="zhangsan", group=g1),
        "member2": member(session, b1, "赵四", userid="zhaosi", category="预备党员"),
        "other": member(session, b2, "钱五", userid="qianwu"),
        "secretary2": member(session, b2, "孙书记", userid="sunshuji", duties="书记"),
        "office": member(session, b2, "周办", userid="zhouban", roles="党委办"),
        "leader": member(
            session, b2, "吴委员", userid="wuweiyuan", roles="党委委员", liaison_branch_id=b1.id
        ),
    }
    session.commit()
    return people
