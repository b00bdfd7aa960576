"""Roster import (DESIGN §4.4): read a 花名册 (.xlsx or .csv), check every row, then upsert
members and organisations in one all-or-nothing step.

Reading and writing are separate. :func:`read_roster` parses and validates a file without a
database and collects every bad row (it never raises for bad data). :func:`apply_roster`
writes a validated :class:`Roster`; :func:`import_roster` is the two together and is what
``mofan import members`` calls. Any bad row: nothing is written and every bad row comes back
in the report, with the row number as Excel shows it (header = row 1, first data row = 2).

Organisations. ``Org.name`` is unique across the whole tree, but party groups repeat their
names from branch to branch (every branch has a 第一党小组). So a 党小组 is stored under the
qualified name ``<支部名>/<小组名>`` (e.g. ``机关第一党支部/第一党小组``) and shown to people by
its short name, the part after the last ``/`` (:func:`org_display_name`); a group's own name
may therefore not contain ``/``. Every other kind is stored under its plain name.

- Without a 组织 sheet the tree is derived: one 党委 root (``root_name``; else the database's
  single active root; else 机关党委), a 党支部 per distinct 所在支部 and a 党小组 per
  distinct (所在支部, 党小组). A branch already in the database keeps the parent it has (a
  tree laid down by an earlier 组织 sheet survives a members-only file).
- With a 组织 sheet the sheet is the tree: 上级 must be listed in it, 所在支部 must be one of
  its 党支部/党总支, and if it lists any 党小组 then every member's 党小组 must be one of
  them (otherwise groups are created from the members' rows).
- Organisations are upserted by name; one no longer in the tree is deactivated, never deleted.

Members are upserted by 企业微信账号 (case-insensitively, as WeCom compares userids). One
missing from the new file is deactivated (``active=False``) and keeps its history; one who
comes back is reactivated. An optional column that is absent from the file leaves that field
as it is; a present but empty cell clears it. 职务 ``党员`` means "no office" and is stored
as an empty string.

Phone numbers and group-robot keys are never logged and never appear in a report.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import insert, select
from sqlmodel import Session

from bot.clock import local
from bot.models import Member, Org

log = logging.getLogger(__name__)

MEMBER_SHEET = "党员"
ORG_SHEET = "组织"
DEFAULT_ROOT = "机关党委"
GROUP_SEP = "/"

MEMBER_COLUMNS = (
    "姓名",
    "企业微信账号",
    "所在支部",
    "党小组",
    "职务",
    "角色",
    "人员类别",
    "入党日期",
    "转正日期",
    "手机号",
    "联系点",
)
REQUIRED_MEMBER_COLUMNS = ("姓名", "企业微信账号", "所在支部")
ORG_COLUMNS = ("名称", "类型", "上级", "换届日期", "群机器人")
REQUIRED_ORG_COLUMNS = ("名称", "类型")
_COLUMN_ORDER = {c: i for i, c in enumerate(MEMBER_COLUMNS + ORG_COLUMNS)}

DUTIES = ("书记", "副书记", "组织委员", "宣传委员", "纪检委员", "委员", "党员")
ROLES = ("党委办", "党委委员")
CATEGORIES = ("正式党员", "预备党员")
ORG_KINDS = ("党委", "党总支", "党支部", "党小组")
BRANCH_KINDS = ("党支部", "党总支")

# What each kind may sit under; None is the top of the tree. A 党小组 always has a parent
# because its stored name is qualified by it.
_ALLOWED_PARENTS: dict[str, tuple[str | None, ...]] = {
    "党委": (None, "党委"),
    "党总支": (None, "党委"),
    "党支部": (None, "党委", "党总支"),
    "党小组": ("党支部", "党总支"),
}

# Headers as other tools write them (the national 全国党员管理信息系统 export among them).
_HEADER_ALIASES = {
    "企业微信帐号": "企业微信账号",
    "企业微信id": "企业微信账号",
    "企业微信userid": "企业微信账号",
    "userid": "企业微信账号",
    "账号": "企业微信账号",
    "帐号": "企业微信账号",
    "所在党支部": "所在支部",
    "支部": "所在支部",
    "所在党小组": "党小组",
    "党内职务": "职务",
    "党员类别": "人员类别",
    "类别": "人员类别",
    "加入党组织日期": "入党日期",
    "转为正式党员日期": "转正日期",
    "手机": "手机号",
    "手机号码": "手机号",
    "组织名称": "名称",
    "组织类型": "类型",
    "上级组织": "上级",
    "群机器人key": "群机器人",
}
_DUTY_ALIASES = {
    "支部书记": "书记",
    "党支部书记": "书记",
    "支部副书记": "副书记",
    "党支部副书记": "副书记",
    "支委": "委员",
    "支部委员": "委员",
    "普通党员": "党员",
}
_ROLE_ALIASES = {"党委办公室": "党委办", "党办": "党委办"}

# Field lengths of bot.models; PostgreSQL refuses longer strings, so they are bad rows here.
_MAX_NAME = 50
_MAX_ORG_NAME = 100
_MAX_USERID = 64
_MAX_ROBOT_KEY = 200

# --- user-facing text (Chinese), kept together so the tone stays consistent -------------
MSG_EMPTY = "不能为空"
MSG_MISSING_COLUMN = "缺少必填列「{column}」"
MSG_MISSING_SHEET = "找不到工作表「{sheet}」（现有：{sheets}）"
MSG_UNREADABLE = "文件打不开：{reason}"
MSG_UNSUPPORTED = "不支持 {suffix} 文件，请在 Excel 里另存为 .xlsx 或 .csv"
MSG_NOT_FOUND = "找不到文件：{path}"
MSG_TOO_LONG = "太长了（最多 {limit} 个字）"
MSG_BAD_USERID = "账号只能用字母、数字和 _-@.，并以字母或数字开头：{value}"
MSG_DUP_USERID = "与第 {first} 行的账号重复：{value}"
MSG_BAD_DATE = "日期看不懂：{value}（请写成 2024-07-01 或 2024年7月1日）"
MSG_NO_SUCH_DAY = "日期看不懂：{value}（没有这一天）"
MSG_DATE_RANGE = "日期不对：{value}（应在 1921 年之后）"
MSG_FUTURE_JOIN = "入党日期在今天之后：{value}"
MSG_FULL_BEFORE_JOIN = "转正日期早于入党日期"
MSG_BAD_PHONE = "不是 11 位手机号"
MSG_BAD_CATEGORY = "不是党员类别：{value}（应为 正式党员 或 预备党员）"
MSG_BAD_DUTY = "不认识的职务「{value}」（可选：{choices}）"
MSG_BAD_ROLE = "不认识的角色「{value}」（可选：{choices}）"
MSG_UNKNOWN_LIAISON = "联系点「{value}」不是名单里的支部"
MSG_BRANCH_NOT_IN_SHEET = "「{value}」不是「组织」表里的党支部或党总支"
MSG_GROUP_NOT_IN_SHEET = "「组织」表里「{branch}」下没有「{value}」"
MSG_BRANCH_IS_ROOT = "「{value}」是党委的名称，请填所在的党支部"
MSG_SLASH_IN_GROUP = "党小组名称里不能有「/」"
MSG_BAD_KIND = "不认识的组织类型：{value}（可选：党委、党总支、党支部、党小组）"
MSG_DUP_ORG = "与第 {first} 行的组织重名：{value}"
MSG_UNKNOWN_PARENT = "上级「{value}」不在「组织」表里"
MSG_NEED_PARENT = "党小组要填上级（所在的党支部）"
MSG_BAD_PARENT_KIND = "上级「{value}」是{parent_kind}，{kind}不能设在它下面"
MSG_PARENT_CYCLE = "上级关系绕成了圈"
MSG_NO_MEMBERS = "名单里没有党员（只有表头？）"
MSG_BAD_ROBOT = "群机器人格式不对（填 webhook 地址，或其中 key= 后面的部分）"


class _Bad(ValueError):
    """One cell's value is wrong; the message is the reason shown to the user."""


@dataclass(frozen=True)
class RowError:
    """A bad row (or a bad file, with ``row`` 0): where, which column and why."""

    row: int
    column: str
    reason: str
    sheet: str = MEMBER_SHEET

    def line(self) -> str:
        where = "" if self.sheet == MEMBER_SHEET else f"「{self.sheet}」表"
        if self.row <= 0:
            return f"{where or '文件'}：{self.reason}"
        col = f"「{self.column}」" if self.column else ""
        return f"{where}第 {self.row} 行{col}：{self.reason}"


@dataclass
class MemberRow:
    """One validated row of the 党员 sheet."""

    row: int
    name: str
    userid: str
    branch: str
    group: str | None = None
    """The short group name as written; the stored Org name is ``branch/group``."""
    duties: str = ""
    roles: str = ""
    category: str = "正式党员"
    joined_on: date | None = None
    full_on: date | None = None
    phone: str | None = field(default=None, repr=False)
    liaison: str | None = None

    @property
    def group_org_name(self) -> str | None:
        return group_org_name(self.branch, self.group) if self.group else None


@dataclass
class OrgRow:
    """One validated row of the 组织 sheet."""

    row: int
    name: str
    """The stored name (qualified for a 党小组)."""
    kind: str
    parent: str | None = None
    term_started_on: date | None = None
    robot_key: str | None = field(default=None, repr=False)


@dataclass
class Roster:
    """A parsed roster. ``orgs`` is None when the file has no 组织 sheet."""

    members: list[MemberRow] = field(default_factory=list)
    orgs: list[OrgRow] | None = None
    errors: list[RowError] = field(default_factory=list)
    member_columns: frozenset[str] = frozenset(MEMBER_COLUMNS)
    """The columns the file has; an absent optional column leaves stored values alone."""
    org_columns: frozenset[str] = frozenset(ORG_COLUMNS)

    @property
    def ok(self) -> bool:
        return not self.errors


Named = tuple[str, str]
"""(userid, name) for members; (kind, stored name) for organisations."""


@dataclass
class ImportReport:
    """What an import did, or would do (``dry_run``), or why it did nothing (``errors``)."""

    dry_run: bool = False
    total: int = 0
    errors: list[RowError] = field(default_factory=list)
    added: list[Named] = field(default_factory=list)
    changed: list[Named] = field(default_factory=list)
    reactivated: list[Named] = field(default_factory=list)
    deactivated: list[Named] = field(default_factory=list)
    changed_columns: dict[str, list[str]] = field(default_factory=dict)
    """userid → the columns that changed (names only: a phone number never appears)."""
    unchanged: int = 0
    orgs_added: list[Named] = field(default_factory=list)
    orgs_changed: list[Named] = field(default_factory=list)
    orgs_deactivated: list[Named] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary_lines(self, *, detail_limit: int = 20) -> list[str]:
        """Human-readable Chinese lines; names are listed when there are few of them."""
        if self.errors:
            bad_rows = len({(e.sheet, e.row) for e in self.errors})
            head = f"名单有 {bad_rows} 行有问题，没有导入任何数据。请改好后重新导入："
            if any(e.row <= 0 for e in self.errors):
                head = "名单没有导入任何数据："
            return [head, *(e.line() for e in self.errors)]
        lines = ["试导入，没有写入任何数据。结果将是："] if self.dry_run else []
        counts = (
            f"新增 {len(self.added)} 人，更新 {len(self.changed)} 人，"
            f"停用 {len(self.deactivated)} 人"
        )
        if self.reactivated:
            counts += f"，恢复 {len(self.reactivated)} 人"
        lines.append(counts)
        lines.append(f"名单共 {self.total} 人，其中 {self.unchanged} 人没有变化")
        if self.orgs_added or self.orgs_changed or self.orgs_deactivated:
            lines.append(
                f"组织：新增 {len(self.orgs_added)} 个，更新 {len(self.orgs_changed)} 个，"
                f"停用 {len(self.orgs_deactivated)} 个"
            )

        def people(label: str, items: list[Named], with_columns: bool = False) -> None:
            if not items or len(items) > detail_limit:
                return
            parts = []
            for userid, name in items:
                cols = self.changed_columns.get(userid) if with_columns else None
                parts.append(f"{name}（{userid}）" + (f"：{'、'.join(cols)}" if cols else ""))
            lines.append(f"{label}：" + "；".join(parts))

        people("新增", self.added)
        people("更新", self.changed, with_columns=True)
        people("恢复", self.reactivated, with_columns=True)
        people("停用", self.deactivated)
        for label, orgs in (
            ("新增组织", self.orgs_added),
            ("更新组织", self.orgs_changed),
            ("停用组织", self.orgs_deactivated),
        ):
            if orgs and len(orgs) <= detail_limit:
                lines.append(f"{label}：" + "、".join(f"{n}（{k}）" for k, n in orgs))
        return lines


# --- names ---------------------------------------------------------------------------------


def group_org_name(branch: str, group: str) -> str:
    """The stored (unique) name of party group ``group`` of ``branch``."""
    return f"{branch}{GROUP_SEP}{group}"


def org_display_name(org: Org) -> str:
    """The name people see: a 党小组's short name, any other org's full name."""
    if org.kind == "党小组":
        return org.name.rsplit(GROUP_SEP, 1)[-1]
    return org.name


# --- cleaning ------------------------------------------------------------------------------

# str.strip() already knows U+3000 and NBSP; zero-width spaces and stray BOMs it does not.
_STRIP = " \t\r\n\u3000\u00a0\u200b\u200c\u200d\u2060\ufeff"
_SPACES = re.compile(r"[\s\u3000\u00a0\u200b\u2060\ufeff]+")
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])\s(?=[\u3400-\u9fff\uf900-\ufaff])")


def _text(value: Any) -> str:
    """A cell as text: numbers without a spurious ``.0``, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def clean_name(value: Any) -> str:
    """Trim stray spaces (full-width and NBSP too); drop the padding people put inside
    two-character Chinese names (张　伟); keep single spaces in other names."""
    text = _SPACES.sub(" ", _text(value).strip(_STRIP))
    return _CJK_GAP.sub("", text)


def clean_userid(value: Any) -> str:
    # NFKC turns full-width letters and digits (ｚｈａｎｇ１) into ASCII; Chinese is untouched.
    return unicodedata.normalize("NFKC", _text(value)).strip(_STRIP)


def _clip(value: Any, limit: int = 30) -> str:
    text = _text(value).strip(_STRIP)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_USERID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


def _userid(value: Any) -> str:
    userid = clean_userid(value)
    if not userid:
        raise _Bad(MSG_EMPTY)
    if len(userid) > _MAX_USERID:
        raise _Bad(MSG_TOO_LONG.format(limit=_MAX_USERID))
    if not _USERID_RE.fullmatch(userid):
        raise _Bad(MSG_BAD_USERID.format(value=_clip(userid)))
    return userid


def _name(value: Any, limit: int = _MAX_NAME) -> str:
    name = clean_name(value)
    if not name:
        raise _Bad(MSG_EMPTY)
    if len(name) > limit:
        raise _Bad(MSG_TOO_LONG.format(limit=limit))
    return name


# --- dates ---------------------------------------------------------------------------------

_DATE_RE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SERIAL_RE = re.compile(r"\d{5}(?:\.0*)?")
# Excel serials for 1921-01-01 … 2099-12-31: anything else numeric is not an Excel date.
_SERIAL_MIN, _SERIAL_MAX = 7672, 73050
_EARLIEST = date(1921, 1, 1)


def parse_date(value: Any, *, epoch: datetime | None = None) -> date | None:
    """A date as people write it: 2024-07-01, 2024/7/1, 2024.7.1, 2024年7月1日, 20240701,
    full-width digits, an Excel date cell, or an Excel serial number. Empty → None."""
    if value is None or (isinstance(value, str) and not value.strip(_STRIP)):
        return None
    raw = _clip(value)
    if isinstance(value, datetime):
        found = value.date()
    elif isinstance(value, date):
        found = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found = _from_number(value, raw, epoch)
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip(_STRIP)
        if _SERIAL_RE.fullmatch(text):
            found = _from_number(float(text), raw, epoch)
        else:
            m = _DATE_RE.fullmatch(text) or _COMPACT_RE.fullmatch(text)
            if not m:
                raise _Bad(MSG_BAD_DATE.format(value=raw))
            found = _ymd(int(m.group(1)), int(m.group(2)), int(m.group(3)), raw)
    if found < _EARLIEST:
        raise _Bad(MSG_DATE_RANGE.format(value=raw))
    return found


def _ymd(year: int, month: int, day: int, raw: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise _Bad(MSG_NO_SUCH_DAY.format(value=raw)) from None


def _from_number(number: float, raw: str, epoch: datetime | None) -> date:
    if float(number).is_integer() and 19210101 <= number <= 20991231:
        n = int(number)
        return _ymd(n // 10000, n // 100 % 100, n % 100, raw)
    if not _SERIAL_MIN <= number <= _SERIAL_MAX:
        raise _Bad(MSG_BAD_DATE.format(value=raw))
    from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel

    converted = from_excel(number, epoch or CALENDAR_WINDOWS_1900)
    if not isinstance(converted, datetime):
        raise _Bad(MSG_BAD_DATE.format(value=raw))
    return converted.date()


# --- other cells ---------------------------------------------------------------------------

_PHONE_RE = re.compile(r"1[3-9]\d{9}")


def _phone(value: Any) -> str | None:
    text = unicodedata.normalize("NFKC", _text(value))
    text = re.sub(r"[\s\-()]", "", text.strip(_STRIP))
    if not text:
        return None
    text = re.sub(r"^(?:\+?86)(?=1\d{10}$)", "", text)
    if not _PHONE_RE.fullmatch(text):
        # Never echo the value: it may be somebody's phone number.
        raise _Bad(MSG_BAD_PHONE)
    return text


_LIST_SEP = re.compile(r"[、，,/／;；\s\u3000]+")


def _choice_list(
    value: Any, allowed: Sequence[str], aliases: Mapping[str, str], message: str
) -> list[str]:
    out: list[str] = []
    for part in _LIST_SEP.split(_text(value).strip(_STRIP)):
        if not part:
            continue
        part = aliases.get(part, part)
        if part not in allowed:
            raise _Bad(message.format(value=_clip(part), choices="、".join(allowed)))
        if part not in out:
            out.append(part)
    # Canonical order, so that re-importing the same people never reads as a change.
    return sorted(out, key=allowed.index)


def _duties(value: Any) -> str:
    duties = _choice_list(value, DUTIES, _DUTY_ALIASES, MSG_BAD_DUTY)
    return "、".join(d for d in duties if d != "党员")


def _roles(value: Any) -> str:
    return "、".join(_choice_list(value, ROLES, _ROLE_ALIASES, MSG_BAD_ROLE))


def _category(value: Any) -> str:
    text = clean_name(value)
    if not text:
        return "正式党员"
    if text not in CATEGORIES:
        raise _Bad(MSG_BAD_CATEGORY.format(value=_clip(text)))
    return text


_ROBOT_RE = re.compile(rf"[A-Za-z0-9-]{{8,{_MAX_ROBOT_KEY}}}")


def _robot_key(value: Any) -> str | None:
    text = _text(value).strip(_STRIP)
    if not text:
        return None
    if "://" in text:
        keys = parse_qs(urlparse(text).query).get("key") or [""]
        text = keys[0]
    if not _ROBOT_RE.fullmatch(text):
        raise _Bad(MSG_BAD_ROBOT)  # not echoed: the key lets anyone post to the group
    return text


# --- reading files -------------------------------------------------------------------------


@dataclass
class _Table:
    sheet: str
    header_row: int
    headers: dict[str, int]
    """canonical column name → index"""
    rows: list[tuple[int, tuple[Any, ...]]]
    epoch: datetime | None = None


def _canonical_header(value: Any) -> str:
    text = unicodedata.normalize("NFKC", _text(value))
    text = re.sub(r"[\s*＊]+", "", text)
    return _HEADER_ALIASES.get(text.lower(), _HEADER_ALIASES.get(text, text))


def _table(sheet: str, rows: Iterable[tuple[Any, ...]], epoch: datetime | None = None) -> _Table:
    """Find the header (row 1, or the first of the first ten rows naming 姓名/名称, so that a
    title row above it does no harm) and keep the non-empty rows below it."""
    it = iter(rows)
    head: list[tuple[int, tuple[Any, ...]]] = []
    for number, values in enumerate(it, start=1):
        head.append((number, values))
        if len(head) == 10:
            break
    header_row, header = head[0] if head else (1, ())
    for number, values in head:
        names = {_canonical_header(v) for v in values}
        if "姓名" in names or "名称" in names:
            header_row, header = number, values
            break
    headers: dict[str, int] = {}
    for index, value in enumerate(header):
        name = _canonical_header(value)
        if name and name not in headers:
            headers[name] = index
    body: list[tuple[int, tuple[Any, ...]]] = []

    def keep(number: int, values: tuple[Any, ...]) -> None:
        if any(v is not None and _text(v).strip(_STRIP) for v in values):
            body.append((number, values))

    for number, values in head:
        if number > header_row:
            keep(number, values)
    for number, values in enumerate(it, start=len(head) + 1):
        keep(number, values)
    return _Table(sheet, header_row, headers, body, epoch)


def _read_xlsx(path: Path) -> tuple[_Table | None, _Table | None, list[RowError]]:
    import openpyxl

    with warnings.catch_warnings():
        # openpyxl warns about features it does not keep (data validation, styles);
        # they do not matter for reading values.
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        names = [n.strip(_STRIP) for n in wb.sheetnames]
        by_name = dict(zip(names, wb.sheetnames, strict=True))
        member_sheet = by_name.get(MEMBER_SHEET)
        others = [n for n in names if n != ORG_SHEET]
        if member_sheet is None and len(others) == 1:
            # A single-sheet export (Sheet1, 花名册 …) is taken as the 党员 sheet.
            member_sheet = by_name[others[0]]
        if member_sheet is None:
            error = MSG_MISSING_SHEET.format(sheet=MEMBER_SHEET, sheets="、".join(names) or "无")
            return None, None, [RowError(0, "", error)]
        epoch = wb.epoch
        members = _table(MEMBER_SHEET, wb[member_sheet].iter_rows(values_only=True), epoch)
        orgs = None
        if ORG_SHEET in by_name:
            orgs = _table(ORG_SHEET, wb[by_name[ORG_SHEET]].iter_rows(values_only=True), epoch)
        return members, orgs, []
    finally:
        wb.close()


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")  # Excel's "Unicode text"
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # GBK is what Excel on a Chinese Windows saves as "CSV"; gb18030 is its superset.
        return data.decode("gb18030")


def _read_csv(path: Path) -> _Table:
    text = _decode(path.read_bytes())
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = (tuple(v if v != "" else None for v in record) for record in reader)
    return _table(MEMBER_SHEET, rows)


def _load(path: Path) -> tuple[_Table | None, _Table | None, list[RowError]]:
    suffix = path.suffix.lower()
    if not path.is_file():
        return None, None, [RowError(0, "", MSG_NOT_FOUND.format(path=path))]
    try:
        if suffix in (".xlsx", ".xlsm"):
            return _read_xlsx(path)
        if suffix in (".csv", ".txt"):
            return _read_csv(path), None, []
    except Exception as exc:  # a corrupt file is the user's to fix, not a crash
        log.info("roster_unreadable path=%s error=%s", path, type(exc).__name__)
        reason = MSG_UNREADABLE.format(reason=type(exc).__name__)
        return None, None, [RowError(0, "", reason)]
    return None, None, [RowError(0, "", MSG_UNSUPPORTED.format(suffix=suffix or "无后缀"))]


# --- validation ----------------------------------------------------------------------------


class _RowReader:
    """Cells of one row by column name, collecting the row's errors."""

    def __init__(self, table: _Table, number: int, values: tuple[Any, ...]) -> None:
        self.table, self.number, self.values = table, number, values
        self.errors: list[RowError] = []

    def raw(self, column: str) -> Any:
        index = self.table.headers.get(column)
        if index is None or index >= len(self.values):
            return None
        return self.values[index]

    def get(self, column: str, parse: Any, default: Any = None) -> Any:
        try:
            return parse(self.raw(column))
        except _Bad as exc:
            self.fail(column, str(exc))
            return default

    def fail(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.number, column, reason, self.table.sheet))


def _missing_columns(table: _Table, required: Sequence[str]) -> list[RowError]:
    return [
        RowError(table.header_row, c, MSG_MISSING_COLUMN.format(column=c), table.sheet)
        for c in required
        if c not in table.headers
    ]


def _parse_members(table: _Table, today: date | None) -> tuple[list[MemberRow], list[RowError]]:
    members: list[MemberRow] = []
    errors: list[RowError] = []
    date_of = lambda v: parse_date(v, epoch=table.epoch)  # noqa: E731
    for number, values in table.rows:
        r = _RowReader(table, number, values)
        name = r.get("姓名", _name, "")
        userid = r.get("企业微信账号", _userid, "")
        branch = r.get("所在支部", lambda v: _name(v, _MAX_ORG_NAME), "")
        group = r.get("党小组", clean_name) or None
        if group and GROUP_SEP in group:
            r.fail("党小组", MSG_SLASH_IN_GROUP)
        elif group and branch and len(group_org_name(branch, group)) > _MAX_ORG_NAME:
            r.fail("党小组", MSG_TOO_LONG.format(limit=_MAX_ORG_NAME - len(branch) - 1))
        joined_on = r.get("入党日期", date_of)
        full_on = r.get("转正日期", date_of)
        if joined_on and today and joined_on > today:
            r.fail("入党日期", MSG_FUTURE_JOIN.format(value=joined_on.isoformat()))
        if joined_on and full_on and full_on < joined_on:
            r.fail("转正日期", MSG_FULL_BEFORE_JOIN)
        row = MemberRow(
            row=number,
            name=name,
            userid=userid,
            branch=branch,
            group=group,
            duties=r.get("职务", _duties, ""),
            roles=r.get("角色", _roles, ""),
            category=r.get("人员类别", _category, "正式党员"),
            joined_on=joined_on,
            full_on=full_on,
            phone=r.get("手机号", _phone),
            liaison=r.get("联系点", clean_name) or None,
        )
        # Bad rows are kept too, so that the checks across rows (duplicates, branches)
        # see every row; read_roster drops them afterwards.
        members.append(row)
        errors.extend(r.errors)
    return members, errors


def _parse_orgs(table: _Table) -> tuple[list[OrgRow], list[RowError]]:
    orgs: list[OrgRow] = []
    errors: list[RowError] = []
    date_of = lambda v: parse_date(v, epoch=table.epoch)  # noqa: E731
    for number, values in table.rows:
        r = _RowReader(table, number, values)
        name = r.get("名称", lambda v: _name(v, _MAX_ORG_NAME), "")
        kind = r.get("类型", clean_name, "")
        if kind not in ORG_KINDS:
            r.fail("类型", MSG_EMPTY if not kind else MSG_BAD_KIND.format(value=_clip(kind)))
        parent = r.get("上级", clean_name) or None
        if kind == "党小组" and name and parent:  # without 上级: reported by the tree check
            # Accept the group written either short or already qualified.
            short = name.removeprefix(parent + GROUP_SEP)
            if GROUP_SEP in short:
                r.fail("名称", MSG_SLASH_IN_GROUP)
            name = group_org_name(parent, short)
            if len(name) > _MAX_ORG_NAME:
                r.fail("名称", MSG_TOO_LONG.format(limit=_MAX_ORG_NAME - len(parent) - 1))
        row = OrgRow(
            row=number,
            name=name,
            kind=kind,
            parent=parent,
            term_started_on=r.get("换届日期", date_of),
            robot_key=r.get("群机器人", _robot_key),
        )
        orgs.append(row)
        errors.extend(r.errors)
    return orgs, errors


def _check_org_tree(orgs: list[OrgRow]) -> list[RowError]:
    errors: list[RowError] = []
    by_name: dict[str, OrgRow] = {}
    orgs = [o for o in orgs if o.name and o.kind in ORG_KINDS]  # the others are bad already
    for org in orgs:
        if org.name in by_name:
            first = by_name[org.name].row
            reason = MSG_DUP_ORG.format(first=first, value=_clip(org.name))
            errors.append(RowError(org.row, "名称", reason, ORG_SHEET))
        else:
            by_name[org.name] = org
    for org in orgs:
        if org.parent is None:
            if None not in _ALLOWED_PARENTS[org.kind]:
                errors.append(RowError(org.row, "上级", MSG_NEED_PARENT, ORG_SHEET))
            continue
        parent = by_name.get(org.parent)
        if parent is None:
            reason = MSG_UNKNOWN_PARENT.format(value=_clip(org.parent))
            errors.append(RowError(org.row, "上级", reason, ORG_SHEET))
        elif parent.kind not in _ALLOWED_PARENTS[org.kind]:
            reason = MSG_BAD_PARENT_KIND.format(
                value=_clip(org.parent), parent_kind=parent.kind, kind=org.kind
            )
            errors.append(RowError(org.row, "上级", reason, ORG_SHEET))
        else:
            seen = {org.name}
            up: OrgRow | None = parent
            while up is not None and up.parent is not None:
                if up.name in seen:
                    errors.append(RowError(org.row, "上级", MSG_PARENT_CYCLE, ORG_SHEET))
                    break
                seen.add(up.name)
                up = by_name.get(up.parent)
    return errors


def _check_members(members: list[MemberRow], orgs: list[OrgRow] | None) -> list[RowError]:
    """Checks across rows: duplicate userids, branches, groups and 联系点 that exist."""
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    for m in members:
        key = m.userid.casefold()
        if not key:
            continue
        if key in first_row:
            reason = MSG_DUP_USERID.format(first=first_row[key], value=m.userid)
            errors.append(RowError(m.row, "企业微信账号", reason))
        else:
            first_row[key] = m.row
    if orgs is None:
        branches = {m.branch for m in members if m.branch}
        groups = None
    else:
        branches = {o.name for o in orgs if o.kind in BRANCH_KINDS}
        listed = {o.name for o in orgs if o.kind == "党小组"}
        groups = listed or None  # a sheet listing no groups leaves them to the members' rows
    for m in members:
        if not m.branch:
            continue
        if orgs is not None and m.branch not in branches:
            reason = MSG_BRANCH_NOT_IN_SHEET.format(value=_clip(m.branch))
            errors.append(RowError(m.row, "所在支部", reason))
        elif groups is not None and m.group and m.group_org_name not in groups:
            reason = MSG_GROUP_NOT_IN_SHEET.format(branch=_clip(m.branch), value=_clip(m.group))
            errors.append(RowError(m.row, "党小组", reason))
        if m.liaison and m.liaison not in branches:
            reason = MSG_UNKNOWN_LIAISON.format(value=_clip(m.liaison))
            errors.append(RowError(m.row, "联系点", reason))
    return errors


def read_roster(path: Path, *, today: date | None = None) -> Roster:
    """Parse and validate a roster file without touching the database.

    Bad rows (and an unreadable file) do not raise: they come back in ``Roster.errors``,
    sorted by sheet and row. ``today`` (Asia/Shanghai) enables the "入党日期 in the future"
    check.
    """
    path = Path(path)
    member_table, org_table, errors = _load(path)
    roster = Roster(errors=errors)
    if member_table is None:
        return roster
    errors.extend(_missing_columns(member_table, REQUIRED_MEMBER_COLUMNS))
    roster.member_columns = frozenset(c for c in MEMBER_COLUMNS if c in member_table.headers)
    if org_table is not None:
        errors.extend(_missing_columns(org_table, REQUIRED_ORG_COLUMNS))
        roster.org_columns = frozenset(c for c in ORG_COLUMNS if c in org_table.headers)
    if errors:
        return roster  # without the required columns every row would be bad for one reason
    members, member_errors = _parse_members(member_table, today)
    errors.extend(member_errors)
    orgs: list[OrgRow] | None = None
    if org_table is not None:
        orgs, org_errors = _parse_orgs(org_table)
        errors.extend(org_errors)
        errors.extend(_check_org_tree(orgs))
    errors.extend(_check_members(members, orgs))
    if not members and not errors:
        # An empty file would deactivate everybody: surely a mistake.
        errors.append(RowError(0, "", MSG_NO_MEMBERS))
    errors.sort(key=lambda e: (e.sheet != MEMBER_SHEET, e.row, _COLUMN_ORDER.get(e.column, 99)))
    bad = {(e.sheet, e.row) for e in errors}
    roster.members = [m for m in members if (MEMBER_SHEET, m.row) not in bad]
    if orgs is not None:
        roster.orgs = [o for o in orgs if (ORG_SHEET, o.row) not in bad]
    return roster


# --- writing to the database ---------------------------------------------------------------


@dataclass
class _OrgSpec:
    name: str
    kind: str
    parent: str | None
    term_started_on: date | None = None
    robot_key: str | None = None
    set_term: bool = False
    set_robot: bool = False


def _sole_root(orgs: Mapping[str, Org]) -> str | None:
    roots = [o.name for o in orgs.values() if o.active and o.kind == "党委" and not o.parent_id]
    return roots[0] if len(roots) == 1 else None


def _derived_specs(
    roster: Roster, existing: Mapping[str, Org], root_name: str | None
) -> tuple[dict[str, _OrgSpec], list[RowError]]:
    """The tree implied by a members-only file (see the module docstring)."""
    root = root_name or _sole_root(existing) or DEFAULT_ROOT
    specs: dict[str, _OrgSpec] = {root: _OrgSpec(root, "党委", None)}
    by_id = {o.id: o for o in existing.values()}
    errors: list[RowError] = []

    def keep_ancestors(org: Org) -> None:
        parent = by_id.get(org.parent_id)
        while parent is not None and parent.name not in specs:
            grand = by_id.get(parent.parent_id)
            specs[parent.name] = _OrgSpec(parent.name, parent.kind, grand.name if grand else None)
            parent = grand

    for m in roster.members:
        if m.branch == root:
            errors.append(RowError(m.row, "所在支部", MSG_BRANCH_IS_ROOT.format(value=m.branch)))
            continue
        if m.branch not in specs:
            old = existing.get(m.branch)
            old_parent = by_id.get(old.parent_id) if old else None
            if old and old.kind in BRANCH_KINDS and old_parent is not None:
                specs[m.branch] = _OrgSpec(m.branch, old.kind, old_parent.name)
                keep_ancestors(old)
            else:
                specs[m.branch] = _OrgSpec(m.branch, "党支部", root)
        group = m.group_org_name
        if group and group not in specs:
            specs[group] = _OrgSpec(group, "党小组", m.branch)
    return specs, errors


def _sheet_specs(roster: Roster) -> dict[str, _OrgSpec]:
    assert roster.orgs is not None
    specs = {
        o.name: _OrgSpec(
            o.name,
            o.kind,
            o.parent,
            o.term_started_on,
            o.robot_key,
            set_term="换届日期" in roster.org_columns,
            set_robot="群机器人" in roster.org_columns,
        )
        for o in roster.orgs
    }
    for m in roster.members:
        group = m.group_org_name
        if group and group not in specs:
            specs[group] = _OrgSpec(group, "党小组", m.branch)
    return specs


def _depth(name: str, specs: Mapping[str, _OrgSpec]) -> int:
    depth, parent = 0, specs[name].parent
    while parent is not None and parent in specs and depth < len(specs):
        depth, parent = depth + 1, specs[parent].parent
    return depth


def _named_org(org: Org | _OrgSpec) -> Named:
    # The full name even for a 党小组: a report saying only "第一党小组" would not say
    # which branch's group changed.
    return (org.kind, org.name)


def _upsert_orgs(
    session: Session,
    specs: Mapping[str, _OrgSpec],
    existing: dict[str, Org],
    report: ImportReport,
) -> None:
    # Parents first, one flush per level, so that every child knows its parent's id.
    levels: dict[int, list[_OrgSpec]] = {}
    for name, spec in specs.items():
        levels.setdefault(_depth(name, specs), []).append(spec)
    for depth in sorted(levels):
        for spec in levels[depth]:
            parent_id = existing[spec.parent].id if spec.parent else None
            org = existing.get(spec.name)
            if org is None:
                org = Org(
                    name=spec.name,
                    kind=spec.kind,
                    parent_id=parent_id,
                    term_started_on=spec.term_started_on,
                    robot_key=spec.robot_key,
                    active=True,
                )
                session.add(org)
                existing[spec.name] = org
                report.orgs_added.append(_named_org(spec))
                continue
            target: dict[str, Any] = {"kind": spec.kind, "parent_id": parent_id, "active": True}
            if spec.set_term:
                target["term_started_on"] = spec.term_started_on
            if spec.set_robot:
                target["robot_key"] = spec.robot_key
            diff = {k: v for k, v in target.items() if getattr(org, k) != v}
            if diff:
                for key, value in diff.items():
                    setattr(org, key, value)
                report.orgs_changed.append(_named_org(spec))
        session.flush()
    for org in existing.values():
        if org.name not in specs and org.active:
            org.active = False
            report.orgs_deactivated.append(_named_org(org))


_MEMBER_FIELDS = (
    # (Member attribute, the column that feeds it)
    ("userid", "企业微信账号"),
    ("name", "姓名"),
    ("branch_id", "所在支部"),
    ("group_id", "党小组"),
    ("duties", "职务"),
    ("roles", "角色"),
    ("category", "人员类别"),
    ("joined_on", "入党日期"),
    ("full_on", "转正日期"),
    ("phone", "手机号"),
    ("liaison_branch_id", "联系点"),
)


def _member_values(row: MemberRow, orgs: Mapping[str, Org]) -> dict[str, Any]:
    group = row.group_org_name
    return {
        "userid": row.userid,
        "name": row.name,
        "branch_id": orgs[row.branch].id,
        "group_id": orgs[group].id if group else None,
        "duties": row.duties,
        "roles": row.roles,
        "category": row.category,
        "joined_on": row.joined_on,
        "full_on": row.full_on,
        "phone": row.phone,
        "liaison_branch_id": orgs[row.liaison].id if row.liaison else None,
    }


def _upsert_members(
    session: Session,
    roster: Roster,
    orgs: Mapping[str, Org],
    now: datetime,
    report: ImportReport,
) -> None:
    # One query for everybody; per-row queries would make a 10,000-row file take minutes.
    existing = {m.userid.casefold(): m for m in session.scalars(select(Member))}
    columns = roster.member_columns | set(REQUIRED_MEMBER_COLUMNS)
    seen: set[str] = set()
    new: list[dict[str, Any]] = []
    for row in roster.members:
        key = row.userid.casefold()
        seen.add(key)
        values = _member_values(row, orgs)
        member = existing.get(key)
        if member is None:
            new.append({**values, "active": True, "updated_at": now})
            report.added.append((row.userid, row.name))
            continue
        if "党小组" not in columns and member.branch_id != values["branch_id"]:
            columns_here = columns | {"党小组"}  # a group of the old branch cannot stay
        else:
            columns_here = columns
        changed = [
            column
            for attr, column in _MEMBER_FIELDS
            if column in columns_here and getattr(member, attr) != values[attr]
        ]
        for attr, column in _MEMBER_FIELDS:
            if column in changed:
                setattr(member, attr, values[attr])
        if changed:
            report.changed_columns[row.userid] = changed
        if not member.active:
            member.active = True
            member.updated_at = now
            report.reactivated.append((row.userid, row.name))
        elif changed:
            member.updated_at = now
            report.changed.append((row.userid, row.name))
        else:
            report.unchanged += 1
    if new:
        # Core executemany: building 10,000 SQLModel objects costs more than the insert.
        session.execute(insert(Member.__table__), new)  # type: ignore[attr-defined]
    for key, member in existing.items():
        if key not in seen and member.active:
            member.active = False
            member.updated_at = now
            report.deactivated.append((member.userid, member.name))
    session.flush()


def apply_roster(
    *,
    session: Session,
    roster: Roster,
    dry_run: bool,
    now: datetime,
    root_name: str | None = None,
) -> ImportReport:
    """Write a parsed roster, all or nothing; with ``dry_run`` roll it back afterwards.

    The caller owns the transaction (``session_scope`` commits it). A roster with errors
    writes nothing and returns them.
    """
    report = ImportReport(dry_run=dry_run, total=len(roster.members))
    if roster.errors:
        report.errors = list(roster.errors)
        return report
    existing = {o.name: o for o in session.scalars(select(Org))}
    if roster.orgs is None:
        specs, errors = _derived_specs(roster, existing, root_name)
    else:
        specs, errors = _sheet_specs(roster), []
    if errors:
        report.errors = errors
        return report
    # A savepoint makes a dry run the very same code path, undone at the end.
    savepoint = session.begin_nested()
    try:
        _upsert_orgs(session, specs, existing, report)
        _upsert_members(session, roster, existing, now, report)
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    log.info(
        "roster_import dry_run=%s rows=%d added=%d changed=%d reactivated=%d deactivated=%d "
        "orgs_added=%d orgs_changed=%d orgs_deactivated=%d",
        dry_run,
        report.total,
        len(report.added),
        len(report.changed),
        len(report.reactivated),
        len(report.deactivated),
        len(report.orgs_added),
        len(report.orgs_changed),
        len(report.orgs_deactivated),
    )
    return report


def import_roster(
    *,
    session: Session,
    path: Path,
    dry_run: bool,
    now: datetime,
    root_name: str | None = None,
) -> ImportReport:
    """Read ``path`` and write it (DESIGN §4.4); see :func:`read_roster`, :func:`apply_roster`."""
    roster = read_roster(Path(path), today=local(now).date())
    if roster.errors:
        log.info("roster_rejected path=%s errors=%d", path, len(roster.errors))
    return apply_roster(
        session=session, roster=roster, dry_run=dry_run, now=now, root_name=root_name
    )


# --- writing files (templates, tests, benches) -----------------------------------------------


def _columns(rows: Sequence[Mapping[str, Any]], known: Sequence[str]) -> list[str]:
    present = {k for row in rows for k in row}
    extra = [k for row in rows for k in row if k not in known]
    return [c for c in known if c in present] + list(dict.fromkeys(extra))


def _cells(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Iterator[list[Any]]:
    for row in rows:
        yield [row.get(c) for c in columns]


def write_roster_xlsx(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    orgs: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Write a roster workbook: sheet 党员 from ``rows`` (dicts keyed by column name) and,
    if given, sheet 组织. Dates are written as Excel dates."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    # A normal (not write-only) workbook: write-only files carry no <dimension>, and then
    # openpyxl's read-only reader parses the whole sheet twice. Excel's own files have one.
    wb = openpyxl.Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    sheets: list[tuple[str, Sequence[Mapping[str, Any]], Sequence[str]]] = [
        (MEMBER_SHEET, rows, MEMBER_COLUMNS)
    ]
    if orgs is not None:
        sheets.append((ORG_SHEET, orgs, ORG_COLUMNS))
    for title, data, known in sheets:
        ws = wb.create_sheet(title)
        columns = _columns(data, known) or list(known)
        ws.append(columns)
        for cells in _cells(data, columns):
            ws.append(cells)
        ws.freeze_panes = "A2"
        for index, column in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(index)].width = max(10, 2 * len(column) + 4)
    wb.save(path)


def write_roster_csv(
    path: Path, rows: Sequence[Mapping[str, Any]], encoding: str = "utf-8-sig"
) -> None:
    """Write the 党员 columns as CSV (``utf-8-sig`` by default: Excel opens it right)."""
    columns = _columns(rows, MEMBER_COLUMNS) or list(MEMBER_COLUMNS)
    with Path(path).open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for cells in _cells(rows, columns):
            writer.writerow(["" if v is None else _text(v) for v in cells])


def roster_template_rows() -> list[dict[str, Any]]:
    """Three example rows for a template file: a secretary, a committee member who is also
    in the office, and a probationary member."""
    return [
        {
            "姓名": "张伟",
            "企业微信账号": "zhangwei",
            "所在支部": "机关第一党支部",
            "党小组": "第一党小组",
            "职务": "书记",
            "角色": "",
            "人员类别": "正式党员",
            "入党日期": date(2005, 7, 1),
            "转正日期": date(2006, 7, 1),
            "手机号": "",
            "联系点": "",
        },
        {
            "姓名": "李娜",
            "企业微信账号": "lina",
            "所在支部": "机关第一党支部",
            "党小组": "第二党小组",
            "职务": "组织委员",
            "角色": "党委办",
            "人员类别": "正式党员",
            "入党日期": date(2012, 5, 4),
            "转正日期": date(2013, 5, 4),
            "手机号": "",
            "联系点": "",
        },
        {
            "姓名": "王芳",
            "企业微信账号": "wangfang",
            "所在支部": "机关第一党支部",
            "党小组": "第一党小组",
            "职务": "党员",
            "角色": "",
            "人员类别": "预备党员",
            "入党日期": date(2025, 6, 28),
            "转正日期": date(2026, 6, 28),
            "手机号": "",
            "联系点": "",
        },
    ]
