"""Roster import (DESIGN §4.4): spellings, encodings, bad rows, re-import, dry run, 组织 sheet."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlmodel import Session, SQLModel, col

from bot.models import Member, Org, StudyRecord
from bot.roster import (
    ImportReport,
    RowError,
    import_roster,
    org_display_name,
    read_roster,
    roster_template_rows,
    write_roster_csv,
    write_roster_xlsx,
)

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _import(session: Session, path: Path, *, dry_run: bool = False) -> ImportReport:
    report = import_roster(session=session, path=path, dry_run=dry_run, now=NOW)
    session.commit()
    return report


def _members(session: Session) -> dict[str, Member]:
    return {m.userid: m for m in session.scalars(select(Member))}


def _orgs(session: Session) -> dict[str, Org]:
    return {o.name: o for o in session.scalars(select(Org))}


def _count(session: Session, model: type[SQLModel]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _row(
    userid: str, name: str = "测试", branch: str = "第一党支部", **more: Any
) -> dict[str, Any]:
    return {"姓名": name, "企业微信账号": userid, "所在支部": branch, **more}


# --- spellings and encodings ---------------------------------------------------------------

JULY_FIRST = (
    "2024-07-01",
    "2024/7/1",
    "2024.7.1",
    "2024年7月1日",
    "２０２４年７月１日",  # full-width digits
    "2024-07-01 00:00:00",  # what Excel writes when a date column is saved as CSV
    "20240701",
    45474,  # an Excel serial in a cell not formatted as a date
    datetime(2024, 7, 1),
    date(2024, 7, 1),
)


def _messy_rows(nbsp: str) -> list[dict[str, Any]]:
    rows = [
        _row(f"u{i}", f"党员{i}", 入党日期=spelling, 转正日期="2025年7月1日")
        for i, spelling in enumerate(JULY_FIRST)
    ]
    rows += [
        # Stray spaces, full-width and NBSP; a full-width userid; padding inside a name.
        _row(
            f"{nbsp}ｚｈａｎｇｗｅｉ２ ",
            " 张　伟\u3000",
            f"\u3000第一党支部{nbsp}",
            职务="书记，组织委员",
            手机号="138 0013 8000",
        ),
        # The same name twice is fine: people are told apart by userid.
        _row("zhangwei", "张伟", "第二党支部", 党小组=" 第一党小组 ", 职务="宣传委员/纪检委员"),
        _row(
            "lina",
            "李娜",
            "第二党支部",
            职务="党员",
            人员类别="预备党员",
            角色="党委办 党委委员",
            联系点="第一党支部",
            手机号="+86 13900139000",
        ),
    ]
    return rows


@pytest.mark.parametrize(
    ("kind", "encoding"),
    [("xlsx", None), ("csv", "utf-8-sig"), ("csv", "utf-8"), ("csv", "gbk")],
)
def test_every_spelling_imports_right(
    session: Session, tmp_path: Path, kind: str, encoding: str | None
) -> None:
    # GBK has no NBSP; a GBK file carries plain spaces instead.
    rows = _messy_rows(nbsp=" " if encoding == "gbk" else "\u00a0")
    path = tmp_path / f"roster.{kind}"
    if kind == "xlsx":
        write_roster_xlsx(path, rows)
    else:
        assert encoding is not None
        write_roster_csv(path, rows, encoding=encoding)
        head = path.read_bytes()[:3]
        assert (head == b"\xef\xbb\xbf") == (encoding == "utf-8-sig")

    report = _import(session, path)

    assert report.ok, report.summary_lines()
    assert len(report.added) == len(rows)
    members = _members(session)
    for i in range(len(JULY_FIRST)):
        assert members[f"u{i}"].joined_on == date(2024, 7, 1), JULY_FIRST[i]
        assert members[f"u{i}"].full_on == date(2025, 7, 1)
    padded = members["zhangwei2"]
    assert (padded.name, padded.duties, padded.phone) == ("张伟", "书记、组织委员", "13800138000")
    assert [m.name for m in members.values()].count("张伟") == 2
    assert members["zhangwei"].duties == "宣传委员、纪检委员"
    lina = members["lina"]
    assert (lina.duties, lina.roles, lina.category, lina.phone) == (
        "",
        "党委办、党委委员",
        "预备党员",
        "13900139000",
    )
    orgs = _orgs(session)
    assert set(orgs) == {"机关党委", "第一党支部", "第二党支部", "第二党支部/第一党小组"}
    assert padded.branch_id == orgs["第一党支部"].id
    assert lina.liaison_branch_id == orgs["第一党支部"].id
    assert members["zhangwei"].group_id == orgs["第二党支部/第一党小组"].id


def test_header_aliases_and_a_title_row(session: Session, tmp_path: Path) -> None:
    """An export with a title above the header and the national system's column names."""
    path = tmp_path / "export.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Sheet1"
    ws.append(["机关党员花名册"])
    ws.append(["序号", "姓名", "性别", "企业微信帐号", "所在党支部", "加入党组织日期", "手机号码"])
    ws.append([1, "王芳", "女", "wangfang", "第一党支部", "2010-05-04", None])
    ws.append([2, "赵磊", "男", "zhaolei", "第一党支部", "2010-13-04", None])
    wb.save(path)

    report = _import(session, path)

    assert report.errors == [RowError(4, "入党日期", "日期看不懂：2010-13-04（没有这一天）")]


def test_template_rows_import(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "template.xlsx"
    write_roster_xlsx(path, roster_template_rows())
    report = _import(session, path)
    assert report.ok, report.summary_lines()
    assert len(report.added) == 3


# --- bad rows --------------------------------------------------------------------------------


def test_bad_rows_import_nothing_and_each_is_reported(
    session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        _row("zhangwei", "张伟"),  # 2: fine
        _row("", "无账号"),  # 3: missing userid
        _row("wangfang", "王芳", 入党日期="2024-02-30"),  # 4: no such day
        _row("zhaolei", "赵磊", 入党日期="2024-13-01"),  # 5: month 13
        _row("ZhangWei", "张伟"),  # 6: duplicate of row 2 (WeCom ignores case)
        _row("sunli", "孙丽", 人员类别="入党积极分子"),  # 7: not a member category
        _row("zhoujie", "周杰", 手机号="1380013"),  # 8: bad phone
        _row("wuhao", "吴昊", 联系点="第九党支部"),  # 9: unknown 联系点
        _row("xuming", "徐明", 入党日期="2020-01-01", 转正日期="2019-01-01"),  # 10
        _row("hetao", "何涛", 职务="支部书记、主席"),  # 11: unknown duty
        _row("guoli", "郭丽", 入党日期="2027-01-01"),  # 12: joins in the future
        _row("wangfang", "王芳"),  # 13: duplicate of row 4, itself a bad row
    ]
    path = tmp_path / "bad.xlsx"
    write_roster_xlsx(path, rows)

    with caplog.at_level(logging.DEBUG):
        report = _import(session, path)

    assert not report.ok
    assert [(e.row, e.column) for e in report.errors] == [
        (3, "企业微信账号"),
        (4, "入党日期"),
        (5, "入党日期"),
        (6, "企业微信账号"),
        (7, "人员类别"),
        (8, "手机号"),
        (9, "联系点"),
        (10, "转正日期"),
        (11, "职务"),
        (12, "入党日期"),
        (13, "企业微信账号"),
    ]
    lines = report.summary_lines()
    assert lines[0].startswith("名单有 11 行有问题，没有导入任何数据")
    assert "第 5 行「入党日期」：日期看不懂：2024-13-01（没有这一天）" in lines
    assert "第 6 行「企业微信账号」：与第 2 行的账号重复：ZhangWei" in lines
    assert "第 7 行「人员类别」：不是党员类别：入党积极分子（应为 正式党员 或 预备党员）" in lines
    assert "第 9 行「联系点」：联系点「第九党支部」不是名单里的支部" in lines
    assert "第 11 行「职务」：不认识的职务「主席」" in lines[9]
    assert "第 13 行「企业微信账号」：与第 4 行的账号重复：wangfang" in lines
    # A phone number never shows up, neither in the report nor in the logs.
    assert not any("1380013" in line for line in lines)
    assert "1380013" not in caplog.text
    assert _count(session, Member) == 0
    assert _count(session, Org) == 0


def test_bad_file_leaves_the_database_as_it_was(session: Session, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    write_roster_csv(good, [_row("zhangwei", "张伟"), _row("lina", "李娜")])
    assert _import(session, good).ok
    bad = tmp_path / "bad.csv"
    write_roster_csv(bad, [_row("zhangwei", "张伟改"), _row("", "无账号")])

    report = _import(session, bad)

    assert report.errors == [RowError(3, "企业微信账号", "不能为空")]
    members = _members(session)
    assert members["zhangwei"].name == "张伟"
    assert members["lina"].active


def test_empty_roster_is_refused(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    write_roster_csv(path, [_row("zhangwei", "张伟")])
    assert _import(session, path).ok
    path.write_text("姓名,企业微信账号,所在支部\n,,\n", encoding="utf-8")

    report = _import(session, path)

    assert report.summary_lines() == [
        "名单没有导入任何数据：",
        "文件：名单里没有党员（只有表头？）",
    ]
    assert _members(session)["zhangwei"].active


def test_missing_required_column_is_named(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "no-userid.csv"
    write_roster_csv(path, [{"姓名": "张伟", "所在支部": "第一党支部"}])
    report = _import(session, path)
    assert report.errors == [RowError(1, "企业微信账号", "缺少必填列「企业微信账号」")]
    assert "第 1 行「企业微信账号」：缺少必填列「企业微信账号」" in report.summary_lines()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("roster.xls", b"\xd0\xcf\x11\xe0", "不支持 .xls 文件"),
        ("roster.xlsx", b"not a zip", "文件打不开"),
        ("missing.csv", None, "找不到文件"),
    ],
)
def test_unreadable_files_are_reported(
    session: Session, tmp_path: Path, name: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    report = _import(session, path)
    assert not report.ok
    assert report.errors[0].row == 0 and reason in report.errors[0].reason
    assert report.summary_lines()[0] == "名单没有导入任何数据："


def test_xlsx_without_a_member_sheet(tmp_path: Path) -> None:
    path = tmp_path / "two-sheets.xlsx"
    wb = openpyxl.Workbook()
    wb.create_sheet("说明")
    wb.save(path)
    roster = read_roster(path)
    assert roster.errors[0].reason.startswith("找不到工作表「党员」")


# --- re-import -------------------------------------------------------------------------------


def test_reimport_updates_deactivates_and_reactivates(session: Session, tmp_path: Path) -> None:
    first = [
        _row("zhangwei", "张伟", 职务="书记", 手机号="13800138000"),
        _row("lina", "李娜", 党小组="第一党小组"),
        _row("wangfang", "王芳"),
    ]
    path = tmp_path / "roster.xlsx"
    write_roster_xlsx(path, first)
    assert _import(session, path).ok
    wangfang = _members(session)["wangfang"]
    assert wangfang.id is not None
    session.add(StudyRecord(member_id=wangfang.id, minutes=40, topic="党章", at=NOW))
    session.commit()

    second = [
        _row("zhangwei", "张伟", 职务="书记、纪检委员", 手机号="13800138000"),
        _row("LiNa", "李娜", "第二党支部"),  # moved branch; userid case differs
        _row("zhaolei", "赵磊"),
    ]
    write_roster_xlsx(path, second)
    report = _import(session, path)

    assert report.ok
    assert report.added == [("zhaolei", "赵磊")]
    assert report.changed == [("zhangwei", "张伟"), ("LiNa", "李娜")]
    assert report.changed_columns == {
        "zhangwei": ["职务"],
        "LiNa": ["企业微信账号", "所在支部", "党小组"],
    }
    assert report.deactivated == [("wangfang", "王芳")]
    assert report.summary_lines()[0] == "新增 1 人，更新 2 人，停用 1 人"
    members = _members(session)
    assert not members["wangfang"].active
    assert members["LiNa"].group_id is None
    # History stays: the member is deactivated, never deleted.
    assert session.scalar(select(col(StudyRecord.member_id))) == wangfang.id
    orgs = _orgs(session)
    assert report.orgs_deactivated == [("党小组", "第一党支部/第一党小组")]
    assert not orgs["第一党支部/第一党小组"].active
    assert members["LiNa"].updated_at == NOW

    write_roster_xlsx(path, [*second, _row("wangfang", "王芳")])
    report = _import(session, path)
    assert report.reactivated == [("wangfang", "王芳")]
    assert report.unchanged == 3
    assert report.summary_lines()[0] == "新增 0 人，更新 0 人，停用 0 人，恢复 1 人"
    assert _members(session)["wangfang"].active
    assert _count(session, Member) == 4


def test_absent_optional_column_keeps_stored_values(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    write_roster_csv(path, [_row("zhangwei", "张伟", 手机号="13800138000", 入党日期="2001-07-01")])
    assert _import(session, path).ok
    write_roster_csv(path, [_row("zhangwei", "张伟", 入党日期="")])  # no 手机号 column at all

    report = _import(session, path)

    member = _members(session)["zhangwei"]
    assert member.phone == "13800138000"
    assert member.joined_on is None  # the column is there and empty: cleared
    assert report.changed_columns == {"zhangwei": ["入党日期"]}


def test_dry_run_writes_nothing(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    write_roster_xlsx(path, [_row("zhangwei", "张伟"), _row("lina", "李娜", 党小组="一组")])

    dry = _import(session, path, dry_run=True)

    assert dry.ok and dry.dry_run
    assert len(dry.added) == 2 and len(dry.orgs_added) == 3
    assert dry.summary_lines()[0] == "试导入，没有写入任何数据。结果将是："
    assert _count(session, Member) == 0 and _count(session, Org) == 0

    real = _import(session, path)
    assert (real.added, real.orgs_added) == (dry.added, dry.orgs_added)
    write_roster_xlsx(path, [_row("zhangwei", "张伟", 职务="书记")])
    dry = _import(session, path, dry_run=True)
    assert (dry.changed, dry.deactivated) == ([("zhangwei", "张伟")], [("lina", "李娜")])
    members = _members(session)
    assert members["zhangwei"].duties == "" and members["lina"].active


# --- organisations ---------------------------------------------------------------------------

ORG_SHEET: list[dict[str, Any]] = [
    {"名称": "区局机关党委", "类型": "党委"},
    {"名称": "机关党总支", "类型": "党总支", "上级": "区局机关党委", "换届日期": "2023年6月1日"},
    {
        "名称": "第一党支部",
        "类型": "党支部",
        "上级": "机关党总支",
        "换届日期": date(2024, 3, 15),
        "群机器人": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
    },
    {"名称": "离退休党支部", "类型": "党支部", "上级": "区局机关党委", "群机器人": "abcd1234-ef56"},
    {"名称": "第一党小组", "类型": "党小组", "上级": "第一党支部"},
    {"名称": "第一党小组", "类型": "党小组", "上级": "离退休党支部"},
    {"名称": "第二党小组", "类型": "党小组", "上级": "第一党支部"},
]


def test_org_sheet_builds_the_tree(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    members = [
        _row("zhangwei", "张伟", 党小组="第二党小组", 职务="书记"),
        _row("lina", "李娜", "离退休党支部", 党小组="第一党小组"),
        _row("wangjun", "王军", "离退休党支部", 角色="党委委员", 联系点="第一党支部"),
    ]
    write_roster_xlsx(path, members, orgs=ORG_SHEET)

    report = _import(session, path)

    assert report.ok, report.summary_lines()
    orgs = _orgs(session)
    assert set(orgs) == {
        "区局机关党委",
        "机关党总支",
        "第一党支部",
        "离退休党支部",
        "第一党支部/第一党小组",
        "第一党支部/第二党小组",
        "离退休党支部/第一党小组",
    }

    def parent(name: str) -> str | None:
        return next((o.name for o in orgs.values() if o.id == orgs[name].parent_id), None)

    assert parent("区局机关党委") is None
    assert parent("第一党支部") == "机关党总支"
    assert parent("离退休党支部") == "区局机关党委"
    assert parent("离退休党支部/第一党小组") == "离退休党支部"
    assert org_display_name(orgs["离退休党支部/第一党小组"]) == "第一党小组"
    assert orgs["第一党支部"].robot_key == "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    assert orgs["离退休党支部"].robot_key == "abcd1234-ef56"
    assert orgs["第一党支部"].term_started_on == date(2024, 3, 15)
    assert orgs["机关党总支"].term_started_on == date(2023, 6, 1)
    people = _members(session)
    assert people["lina"].group_id == orgs["离退休党支部/第一党小组"].id
    assert people["wangjun"].liaison_branch_id == orgs["第一党支部"].id
    assert all("693a91f6" not in line for line in report.summary_lines())

    # Without a 组织 sheet the next import keeps that tree and its keys.
    write_roster_xlsx(path, members)
    report = _import(session, path)
    assert report.ok and not report.orgs_changed and not report.orgs_added
    inactive = session.scalars(select(Org).where(col(Org.active).is_(False)))
    assert [o.name for o in inactive] == ["第一党支部/第一党小组"]
    orgs = _orgs(session)
    assert orgs["第一党支部"].parent_id == orgs["机关党总支"].id
    assert orgs["第一党支部"].robot_key == "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def test_org_sheet_errors(session: Session, tmp_path: Path) -> None:
    orgs = [
        *ORG_SHEET,
        {"名称": "第三党支部", "类型": "支部"},  # row 9
        {"名称": "第四党支部", "类型": "党支部", "上级": "第九党总支"},  # row 10
        {"名称": "小组里的支部", "类型": "党支部", "上级": "离退休党支部"},  # row 11
        {"名称": "机关党总支", "类型": "党总支", "上级": "区局机关党委"},  # row 12
        {"名称": "无上级小组", "类型": "党小组"},  # row 13
        {"名称": "第六党支部", "类型": "党支部", "群机器人": "key with spaces"},  # row 14
    ]
    members = [
        _row("zhangwei", "张伟", "机关党总支"),  # a 党总支 is a valid 所在支部
        _row("lina", "李娜", "第五党支部"),  # row 3: not in the sheet
        _row("wangjun", "王军", "第一党支部", 党小组="第三党小组"),  # row 4: group not listed
        _row("liqiang", "李强", "区局机关党委"),  # row 5: a 党委 is no branch
    ]
    path = tmp_path / "roster.xlsx"
    write_roster_xlsx(path, members, orgs=orgs)

    report = _import(session, path)

    assert [(e.sheet, e.row, e.column) for e in report.errors] == [
        ("党员", 3, "所在支部"),
        ("党员", 4, "党小组"),
        ("党员", 5, "所在支部"),
        ("组织", 9, "类型"),
        ("组织", 10, "上级"),
        ("组织", 11, "上级"),
        ("组织", 12, "名称"),
        ("组织", 13, "上级"),
        ("组织", 14, "群机器人"),
    ]
    lines = report.summary_lines()
    assert "「组织」表第 10 行「上级」：上级「第九党总支」不在「组织」表里" in lines
    assert "「组织」表第 11 行「上级」：上级「离退休党支部」是党支部，党支部不能设在它下面" in lines
    assert "key with spaces" not in "\n".join(lines)
    assert _count(session, Org) == 0


def test_groups_repeat_across_branches_without_org_sheet(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    write_roster_csv(
        path,
        [
            _row("a", "甲", "第一党支部", 党小组="第一党小组"),
            _row("b", "乙", "第二党支部", 党小组="第一党小组"),
            _row("c", "丙", "第二党支部", 党小组="第一党小组"),
        ],
    )
    report = _import(session, path)
    assert report.ok
    assert sorted(report.orgs_added) == sorted(
        [
            ("党委", "机关党委"),
            ("党支部", "第一党支部"),
            ("党支部", "第二党支部"),
            ("党小组", "第一党支部/第一党小组"),
            ("党小组", "第二党支部/第一党小组"),
        ]
    )
    groups = [o for o in _orgs(session).values() if o.kind == "党小组"]
    assert sorted(o.name for o in groups) == ["第一党支部/第一党小组", "第二党支部/第一党小组"]
    assert {org_display_name(o) for o in groups} == {"第一党小组"}
    people = _members(session)
    assert people["b"].group_id == people["c"].group_id != people["a"].group_id


def test_root_name_argument_and_reuse(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    write_roster_csv(path, [_row("a", "甲")])
    report = import_roster(session=session, path=path, dry_run=False, now=NOW, root_name="区局党委")
    session.commit()
    assert ("党委", "区局党委") in report.orgs_added
    # Later imports without a name keep the one root there is.
    assert not _import(session, path).orgs_added
    assert [o.name for o in _orgs(session).values() if o.kind == "党委"] == ["区局党委"]
