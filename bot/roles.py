"""Roles and scope, derived from the roster (DESIGN §2).

A person's roles come from 职务 (secretary and committee duties) and 角色 (bureau roles).
Scope follows: a member sees their own records, a secretary their branch, office and
leaders everything (leaders read-only).
"""

from __future__ import annotations

from enum import StrEnum

from bot.models import Member


class Role(StrEnum):
    MEMBER = "member"
    SECRETARY = "secretary"
    """书记、副书记 and the branch committee (支委)."""
    OFFICE = "office"
    """党委办."""
    LEADER = "leader"
    """党委委员: read-only view of everything."""


SECRETARY_DUTIES = frozenset({"书记", "副书记", "组织委员", "宣传委员", "纪检委员", "委员"})
ROLE_LABELS = {
    Role.MEMBER: "党员",
    Role.SECRETARY: "支部书记、支委",
    Role.OFFICE: "党委办",
    Role.LEADER: "党委委员",
}

EVERYONE = frozenset(Role)
SECRETARIES = frozenset({Role.SECRETARY})
OFFICE = frozenset({Role.OFFICE})
OFFICE_AND_LEADERS = frozenset({Role.OFFICE, Role.LEADER})


def split_list(value: str) -> list[str]:
    return [p for p in value.split("、") if p]


def roles_of(member: Member) -> frozenset[Role]:
    roles = {Role.MEMBER}
    if SECRETARY_DUTIES & set(split_list(member.duties)):
        roles.add(Role.SECRETARY)
    bureau = set(split_list(member.roles))
    if "党委办" in bureau:
        roles.add(Role.OFFICE)
    if "党委委员" in bureau:
        roles.add(Role.LEADER)
    return frozenset(roles)


def is_secretary_proper(member: Member) -> bool:
    """书记 or 副书记 (who is told of leave, gets lists), as opposed to any committee member."""
    return bool({"书记", "副书记"} & set(split_list(member.duties)))
