"""Settings: one typed tree loaded from TOML, validated at start.

Lookup order (DESIGN §4.1): ``--config FILE``, else ``$MOFAN_CONFIG``, else ``./mofan.toml``,
else the built-in defaults (SQLite ``./mofan.db``, console channel). Secrets may also come
from the environment (``MOFAN_WECOM_SECRET``, ``MOFAN_WECOM_TOKEN``,
``MOFAN_WECOM_ENCODING_AES_KEY``, ``MOFAN_DATABASE_URL``) or from a file named by the same
variable with ``_FILE`` appended (systemd credentials, container secrets).

Every count, period and day of the reminder rules is data here, with per-branch overrides
(DESIGN §4.6), never a constant in code.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Period = Literal["month", "quarter", "half", "year"]
MEETING_KINDS = (
    "支部党员大会",
    "支委会",
    "党小组会",
    "党课",
    "主题党日",
    "组织生活会",
    "民主评议党员",
    "民主生活会",
    "谈心谈话",
    "中心组学习",
)


class ConfigError(Exception):
    """A bad config: the message names the key and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _hhmm(value: Any) -> time:
    if isinstance(value, time):
        return value
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"expected a time like 08:30, got {value!r}")
    return time(int(m.group(1)), int(m.group(2)))


class BotSettings(_Section):
    timezone: str = "Asia/Shanghai"
    channel: Literal["console", "wecom"] = "console"
    console_log: str = ""
    """If set, the console channel also appends every message as a JSON line to this file."""
    send_window: tuple[time, time] = (time(8, 30), time(18, 0))
    """Proactive messages go out only inside this window, on workdays."""
    political_birthday: Literal["joined", "full"] = "joined"
    """Which date is a member's 政治生日: admission (入党日期) or full membership (转正日期)."""
    default_study_minutes: int = Field(default=0, ge=0, le=600)
    """Minutes recorded for 学习 said without a duration; 0 records it without minutes."""
    scheduler_interval_seconds: int = Field(default=60, ge=5, le=3600)
    reminder_time: time = time(9, 0)
    """Day-level reminders (deadlines, lists, greetings) go out at this time on their day,
    moved a few minutes off :00/:30; a person's reminders of one day arrive as one message."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    _reminder_time = field_validator("reminder_time", mode="before")(
        classmethod(lambda cls, v: _hhmm(v))
    )

    @field_validator("send_window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> tuple[time, time]:
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ValueError('expected ["08:30", "18:00"]')
        start, end = _hhmm(v[0]), _hhmm(v[1])
        if start >= end:
            raise ValueError("the window's start must be before its end")
        return start, end

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DatabaseSettings(_Section):
    url: str = "sqlite:///mofan.db"
    sqlite_busy_timeout_ms: int = Field(default=1500, ge=50, le=4000)
    """SQLite's lock wait; kept well below WeCom's 5 s callback budget."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError("expected sqlite:///FILE or postgresql+psycopg://user@host/db")
        return v


class WeComSettings(_Section):
    corp_id: str = ""
    agent_id: int = 0
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base: str = "https://qyapi.weixin.qq.com"
    robot_broadcast: bool = False
    """Branch-wide notices also go to the branch group robot, where the roster names one."""
    duplicate_check_interval: int = Field(default=1800, ge=0, le=14400)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    reply_budget_seconds: float = Field(default=3.0, gt=0, le=4.5)
    """A handler not done by then gets an empty 200 and its reply goes through the API."""
    text_only: bool = False
    """Send every message as plain text (for members reading WeCom inside WeChat)."""

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9]{43}", v):
            raise ValueError("EncodingAESKey must be exactly 43 letters and digits")
        return v

    @field_validator("api_base")
    @classmethod
    def _base(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected a URL like https://qyapi.weixin.qq.com")
        return v.rstrip("/")


class CalendarSettings(_Section):
    extra_holidays: list[date] = []
    extra_workdays: list[date] = []

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarSettings:
        both = set(self.extra_holidays) & set(self.extra_workdays)
        if both:
            raise ValueError(f"dates listed both as holiday and workday: {sorted(both)}")
        return self


class OutboxSettings(_Section):
    max_attempts: int = Field(default=8, ge=1, le=50)
    lease_seconds: int = Field(default=60, ge=5, le=3600)
    backoff_seconds: float = Field(default=30, ge=0, le=3600)
    backoff_max_seconds: float = Field(default=3600, ge=0)
    batch_size: int = Field(default=5000, ge=1, le=10000)
    """Rows claimed per dispatcher pass (a notice to the whole bureau in a pass or two)."""
    concurrency: int = Field(default=4, ge=1, le=16)
    """Calls of one message (to 1000 people each) in flight at once."""


class HealthSettings(_Section):
    max_outbox_age_seconds: int = Field(default=600, ge=30, le=86400)
    """``/readyz`` answers 503 once a due message has waited longer than this unsent."""


class CadenceOverride(_Section):
    period: Period | None = None
    minimum: int | None = Field(default=None, ge=0)
    enabled: bool | None = None


class CadenceRule(_Section):
    kind: str
    period: Period
    minimum: int = Field(default=1, ge=0)
    scope: Literal["branch", "group", "leadership"] = "branch"
    remind_days_before_end: list[int] = [10, 3]
    enabled: bool = True
    overrides: dict[str, CadenceOverride] = {}
    """Per-branch overrides by branch name."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in MEETING_KINDS and v != "书记讲党课":
            raise ValueError(f"unknown meeting kind {v!r}; one of {'、'.join(MEETING_KINDS)}")
        return v


def _default_cadence() -> list[CadenceRule]:
    return [
        CadenceRule(kind="支部党员大会", period="quarter"),
        CadenceRule(kind="支委会", period="month"),
        CadenceRule(kind="党小组会", period="month", scope="group"),
        CadenceRule(kind="党课", period="quarter"),
        CadenceRule(kind="主题党日", period="month"),
        CadenceRule(kind="组织生活会", period="year", remind_days_before_end=[60, 30, 10]),
        CadenceRule(kind="民主评议党员", period="year", remind_days_before_end=[60, 30, 10]),
        CadenceRule(
            kind="民主生活会", period="year", scope="leadership", remind_days_before_end=[60, 30]
        ),
        CadenceRule(kind="书记讲党课", period="year", remind_days_before_end=[60, 30, 10]),
        # 谈心谈话 counts coverage: every member talked with at least once a year.
        CadenceRule(kind="谈心谈话", period="year", remind_days_before_end=[60, 30]),
    ]


class ThemeDaySettings(_Section):
    day: int = Field(default=15, ge=1, le=28)
    member_days_before: int = Field(default=2, ge=0, le=20)
    secretary_days_before: int = Field(default=5, ge=0, le=20)


class DuesSettings(_Section):
    day: int = Field(default=5, ge=1, le=28)
    flag_months: list[int] = [3, 5]
    leave_months: int = 6


class StudySettings(_Section):
    member_target_hours: float = Field(default=32, ge=0)
    committee_target_hours: float = Field(default=56, ge=0)
    quarter_pace_note: bool = True
    weekly_nudge: bool = False


class NoticeSettings(_Section):
    nudge_after_hours: float = Field(default=24, gt=0)
    secretary_after_hours: float = Field(default=48, gt=0)
    max_nudges: int = Field(default=2, ge=0, le=2)


class MeetingReminderSettings(_Section):
    day_before_at: time = time(9, 0)
    hours_before: float = Field(default=1, gt=0, le=24)
    checkin_minutes_before: int = Field(default=30, ge=0, le=240)
    makeup_after_workdays: int = Field(default=1, ge=0, le=10)
    """Absentees are asked to make up the study this many workdays after the meeting day
    (time for the secretary to correct the attendance first)."""

    _t = field_validator("day_before_at", mode="before")(classmethod(lambda cls, v: _hhmm(v)))


class TaskSettings(_Section):
    days_before: list[int] = [14, 7, 3, 1]
    overdue_daily: bool = True


class TermSettings(_Section):
    years: int = Field(default=3, ge=1, le=10)
    months_before: list[int] = [6, 3, 1]
    probation_months_before: int = Field(default=1, ge=0, le=12)


class DigestSettings(_Section):
    weekly: bool = True


class LeaderSettings(_Section):
    quarterly_visit: bool = True
    attend_days_before: int = Field(default=14, ge=0)


class ScoreSettings(_Section):
    cadence: float = 40
    attendance: float = 20
    dues: float = 20
    tasks: float = 20
    study: float = 0
    ranking: bool = False


class LedgerSettings(_Section):
    export_dir: str = "exports"
    """Where 导出 台账 writes its workbooks (relative to the working directory) before they are sent."""
    keep_days: int = Field(default=30, ge=1, le=3650)
    """Exported workbooks older than this are deleted at the next export."""


class Milestone(_Section):
    name: str
    due: str
    """A yearly date ``MM-DD`` (every campaign year) or a full ``YYYY-MM-DD``."""
    scope: str = "全体"
    submit: bool = False

    @field_validator("due")
    @classmethod
    def _due(cls, v: str) -> str:
        m = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", v.strip())
        if not m:
            raise ValueError("expected MM-DD (every year) or YYYY-MM-DD")
        try:
            date(int(m.group(1) or 2000), int(m.group(2)), int(m.group(3)))
        except ValueError as exc:
            raise ValueError(f"no such date {v!r}") from exc
        return v.strip()

    def due_in(self, year: int) -> date | None:
        """The due date in ``year``; a dated milestone only falls in its own year."""
        parts = [int(p) for p in self.due.split("-")]
        if len(parts) == 3:
            return date(*parts) if parts[0] == year else None
        return date(year, parts[0], parts[1])


def _default_milestones() -> list[Milestone]:
    return [
        Milestone(name="全覆盖启动", due="03-31", submit=False),
        Milestone(name="报送基层党组织计划方案", due="04-30", submit=True),
        Milestone(name="初见成效", due="10-31", submit=True),
        Milestone(name="抓实整改提高", due="11-30", submit=True),
        Milestone(name="接受复核评价", due="12-31", submit=True),
    ]


class BranchOverride(_Section):
    theme_day: int | None = Field(default=None, ge=1, le=28)


class Settings(_Section):
    bot: BotSettings = BotSettings()
    database: DatabaseSettings = DatabaseSettings()
    wecom: WeComSettings = WeComSettings()
    calendar: CalendarSettings = CalendarSettings()
    outbox: OutboxSettings = OutboxSettings()
    health: HealthSettings = HealthSettings()
    cadence: list[CadenceRule] = Field(default_factory=_default_cadence)
    theme_day: ThemeDaySettings = ThemeDaySettings()
    dues: DuesSettings = DuesSettings()
    study: StudySettings = StudySettings()
    notices: NoticeSettings = NoticeSettings()
    meetings: MeetingReminderSettings = MeetingReminderSettings()
    tasks: TaskSettings = TaskSettings()
    terms: TermSettings = TermSettings()
    digest: DigestSettings = DigestSettings()
    leaders: LeaderSettings = LeaderSettings()
    score: ScoreSettings = ScoreSettings()
    ledger: LedgerSettings = LedgerSettings()
    milestones: list[Milestone] = Field(default_factory=_default_milestones)
    branches: dict[str, BranchOverride] = {}
    source: str = Field(default="(built-in defaults)", exclude=True)

    def cadence_for(self, branch: str) -> list[CadenceRule]:
        """The cadence rules that apply to ``branch``, its overrides folded in."""
        rules = []
        for rule in self.cadence:
            o = rule.overrides.get(branch)
            if o is not None:
                rule = rule.model_copy(
                    update={k: v for k, v in o.model_dump().items() if v is not None}
                )
            if rule.enabled:
                rules.append(rule)
        return rules

    def theme_day_for(self, branch: str) -> int:
        o = self.branches.get(branch)
        return o.theme_day if o and o.theme_day else self.theme_day.day


_ENV_SECRETS = {
    ("wecom", "secret"): "MOFAN_WECOM_SECRET",
    ("wecom", "token"): "MOFAN_WECOM_TOKEN",
    ("wecom", "encoding_aes_key"): "MOFAN_WECOM_ENCODING_AES_KEY",
    ("database", "url"): "MOFAN_DATABASE_URL",
}


def _env_value(name: str) -> str | None:
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return None


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against config.example.toml)"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The file to read, by DESIGN §4.1's lookup order; None means built-in defaults."""
    if explicit:
        return Path(explicit)
    if os.environ.get("MOFAN_CONFIG"):
        return Path(os.environ["MOFAN_CONFIG"])
    local = Path("mofan.toml")
    return local if local.exists() else None


def load_settings(path: str | Path | None = None, *, env: bool = True) -> Settings:
    """Read, merge environment secrets and validate. Raises :class:`ConfigError`."""
    source = config_path(path)
    raw: dict[str, Any] = {}
    if source is not None:
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {source}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    if env:
        for (section, key), var in _ENV_SECRETS.items():
            value = _env_value(var)
            if value:
                raw.setdefault(section, {})[key] = value
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        where = source or "built-in defaults"
        raise ConfigError(f"bad config in {where}:\n{_describe(exc)}") from None
    settings.source = str(source) if source else "(built-in defaults)"
    return settings
