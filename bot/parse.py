"""Reading what people type: numbers, durations, dates, times and months, the way they write them.

Pure functions: no clock, no database. Anything relative (明天, 下周三, 12月5日 without a year)
is resolved against the ``today`` the caller passes. Input may be full-width or half-width,
carry extra spaces, and use Chinese numerals (三十分钟, 下午两点半, 十二月五日); each function
normalises it first (NFKC), so callers may pass raw text.

The ``take_*`` functions read one item from the *start* of a string and return it with the
rest, so that a command's arguments can be read left to right (``12月5日 14:30 三楼会议室``).
They return ``(None, text)`` when the text does not start with such an item, and raise
:class:`ParseError` when it plainly does but the item is impossible (``13月40日``, ``25:00``,
``0分钟``): the error carries the offending token so the reply can quote it.

Conventions worth knowing:

- A date without a year is the first one no more than about three months behind ``today``
  (``11月20日`` said on 25 November is five days ago; ``1月5日`` said in November is next
  January; ``12月5日`` said on 3 January is last month). ``prefer="past"`` flips the rule for
  commands that look back (考勤): the last one no more than three months ahead.
- A time without 上午/下午 from 1 to 6 o'clock is afternoon (``2点半`` is 14:30): nobody
  meets at 2 a.m. Written with a leading zero (``02:30``) it is taken as written.
- Weeks run Monday to Sunday: ``下周三`` is the Wednesday of next week, ``周五`` the next
  Friday from today (today itself if it is Friday).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Literal

from bot.text import normalize

Prefer = Literal["future", "past"]

MAX_STUDY_MINUTES = 600
"""One study session longer than ten hours is a typo, not a session."""

NEAR_DAYS = 92
"""How far behind (or ahead, for ``prefer="past"``) a yearless date may fall and still be this year's."""


class ParseError(ValueError):
    """``token`` was meant as a ``what`` (date, time, duration, month, number) but cannot be one."""

    def __init__(self, what: str, token: str) -> None:
        super().__init__(f"bad {what}: {token!r}")
        self.what = what
        self.token = token


# Numbers --------------------------------------------------------------------------------

_CN_DIGITS = {
    "零": 0, "〇": 0, "○": 0, "一": 1, "壹": 1, "幺": 1, "二": 2, "贰": 2, "两": 2, "俩": 2,
    "三": 3, "叁": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7,
    "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_CHARS = "".join(_CN_DIGITS) + "".join(_CN_UNITS)
NUM = rf"(?:\d+(?:\.\d+)?|[{_CN_CHARS}]+)"
"""A number as people write it: 40, 1.5, 三十, 两, 一百零五."""
INT = rf"(?:\d+|[{_CN_CHARS}]+)"


def cn_int(text: str) -> int | None:
    """A Chinese numeral as an int (十二 → 12, 两 → 2, 一百零五 → 105, 二〇二七 → 2027), else None."""
    if not text or any(c not in _CN_DIGITS and c not in _CN_UNITS for c in text):
        return None
    if all(c in _CN_DIGITS for c in text):
        # Digit by digit (二〇二七) or a single digit.
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, digit, last_unit = 0, None, 10_000
    for c in text:
        if c in "零〇○" and digit is None:
            continue  # 一百零五: a placeholder for the missing tens
        if c in _CN_DIGITS:
            if digit is not None:
                return None  # 二三十: two digits in a row inside a unit numeral
            digit = _CN_DIGITS[c]
        else:
            unit = _CN_UNITS[c]
            if unit >= last_unit:
                return None  # 十百: units must fall
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
    if digit is not None:
        total += digit
    return total


def to_number(text: str) -> float | None:
    """Arabic (40, 1.5) or Chinese (三十) digits as a number, else None."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    value = cn_int(text)
    return None if value is None else float(value)


def parse_int(text: str) -> int | None:
    """A whole number written any way (12, １２, 十二), else None."""
    value = to_number(normalize(text))
    if value is None or value != int(value):
        return None
    return int(value)


def take_int(text: str) -> tuple[int | None, str]:
    """A leading whole number (``12 …``, ``十二 …``) followed by a space or the end."""
    text = normalize(text)
    m = re.match(rf"({INT})(?=\s|$)", text)
    if m:
        value = parse_int(m.group(1))
        if value is not None:
            return value, text[m.end() :].strip()
    return None, text


# Durations ------------------------------------------------------------------------------

_HOUR = r"(?:个\s*)?(?:小时|钟头|hours?|hrs?|h)"
_MINUTE = r"(?:分钟|分|minutes?|mins?|m)(?![a-z])"
_DURATIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"半\s*(?:个\s*)?(?:小时|钟头|钟)"), "half"),
    (re.compile(rf"(?P<h>{NUM})\s*个?\s*半\s*(?:小时|钟头|钟)"), "h_and_half"),
    (re.compile(rf"(?P<n>{INT})\s*刻钟"), "quarters"),
    (
        re.compile(
            rf"(?P<h>{NUM})\s*{_HOUR}(?![a-z])"
            rf"(?:\s*(?P<half>半)|\s*(?P<m>{INT})\s*{_MINUTE}|\s*(?P<m2>\d+)(?=\s|$))?"
        ),
        "hours",
    ),
    (re.compile(rf"(?P<m>{NUM})\s*{_MINUTE}"), "minutes"),
]
_SEPARATORS = " ,，:：、;；。.-—"


def take_duration(text: str) -> tuple[int | None, str]:
    """A leading study duration in minutes and the rest (the topic).

    ``40分钟 党章`` → (40, "党章"); ``一个半小时`` → (90, ""); ``二十大精神`` → (None, …).
    Raises :class:`ParseError` for an impossible duration (``0分钟``, ``25小时``) and for a
    bare number with no unit (``40 党章``: forty what?).
    """
    text = normalize(text)
    lowered = text.lower()
    if lowered.startswith("一刻钟"):
        return 15, _rest(text, 3)
    for pattern, kind in _DURATIONS:
        m = pattern.match(lowered)
        if not m:
            continue
        minutes = _duration_minutes(m, kind)
        token = text[: m.end()]
        if minutes is None or minutes <= 0 or minutes > MAX_STUDY_MINUTES:
            raise ParseError("duration", token)
        return minutes, _rest(text, m.end())
    bare = re.match(r"(\d{1,3}(?:\.\d+)?)(?=\s|$)", text)
    if bare:
        raise ParseError("duration", bare.group(1))
    return None, text


def _duration_minutes(m: re.Match[str], kind: str) -> int | None:
    if kind == "half":
        return 30
    if kind == "quarters":
        n = to_number(m.group("n"))
        return None if n is None else int(n * 15)
    if kind == "minutes":
        n = to_number(m.group("m"))
        return None if n is None else round(n)
    hours = to_number(m.group("h"))
    if hours is None:
        return None
    minutes = hours * 60
    if kind == "h_and_half" or m.groupdict().get("half"):
        minutes += 30
    extra = m.groupdict().get("m") or m.groupdict().get("m2")
    if extra:
        more = to_number(extra)
        if more is None or more >= 60:
            return None
        minutes += more
    return round(minutes)


def parse_duration(text: str) -> int:
    """The whole of ``text`` as a duration in minutes; raises :class:`ParseError` otherwise."""
    minutes, rest = take_duration(text)
    if minutes is None or rest:
        raise ParseError("duration", normalize(text))
    return minutes


def _rest(text: str, end: int) -> str:
    return text[end:].strip(_SEPARATORS)


# Dates ----------------------------------------------------------------------------------

_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_WEEK = r"(?:周|星期|礼拜)"
_PAREN_WEEKDAY = re.compile(rf"\s*\(?\s*{_WEEK}[一二三四五六日天]\s*\)?")
_RELATIVE_DAYS = {
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "今天": 0, "今日": 0,
    "明天": 1, "明日": 1, "后天": 2, "大后天": 3,
}  # fmt: skip
_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?P<y>\d{4})\s*[-/.]\s*(?P<m>\d{1,2})\s*[-/.]\s*(?P<d>\d{1,2})(?![\d:])"), "ymd"),
    (
        re.compile(rf"(?P<y>{INT})\s*年\s*(?P<m>{INT})\s*月\s*(?P<d>{INT})\s*(?:[日号]|(?=\s|$))"),
        "ymd",
    ),
    (re.compile(rf"(?P<m>{INT})\s*月\s*(?P<d>{INT})\s*(?:[日号]|(?=\s|$))"), "md"),
    (re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\d/])"), "md"),
    (
        re.compile(rf"(?P<next>(?:下\s*)+|本|这|这个|上)?\s*{_WEEK}\s*(?P<w>[一二三四五六日天七])"),
        "weekday",
    ),
    (re.compile(rf"(?P<d>{INT})\s*[日号]"), "day"),
]


def take_date(text: str, today: date, *, prefer: Prefer = "future") -> tuple[date | None, str]:
    """A leading date and the rest: ``12月5日 14:30 …`` → (2026-12-05, "14:30 …")."""
    text = normalize(text)
    for word, offset in sorted(_RELATIVE_DAYS.items(), key=lambda kv: -len(kv[0])):
        if text.startswith(word):
            return today + timedelta(days=offset), _after_date(text, len(word))
    for pattern, kind in _DATE_PATTERNS:
        m = pattern.match(text)
        if m:
            token = text[: m.end()].strip()
            return _resolve_date(m, kind, token, today, prefer), _after_date(text, m.end())
    return None, text


def _after_date(text: str, end: int) -> str:
    rest = text[end:]
    paren = _PAREN_WEEKDAY.match(rest)
    if paren:
        rest = rest[paren.end() :]
    return rest.strip(" ,，、")


def _resolve_date(m: re.Match[str], kind: str, token: str, today: date, prefer: Prefer) -> date:
    if kind == "weekday":
        target = _WEEKDAYS[m.group("w")]
        prefix = (m.group("next") or "").replace(" ", "")
        monday = today - timedelta(days=today.weekday())
        if prefix.startswith("下"):
            return monday + timedelta(weeks=prefix.count("下"), days=target)
        if prefix == "上":
            return monday - timedelta(weeks=1) + timedelta(days=target)
        if prefix in ("本", "这", "这个"):
            return monday + timedelta(days=target)
        # A bare 周五: the next one from today (today included); looking back, the last one.
        ahead = (target - today.weekday()) % 7
        if prefer == "past":
            return today - timedelta(days=(today.weekday() - target) % 7)
        return today + timedelta(days=ahead)
    values = {k: parse_int(v) for k, v in m.groupdict().items() if v is not None}
    if any(v is None for v in values.values()):
        raise ParseError("date", token)
    month, day = values.get("m"), values["d"]
    assert day is not None
    if kind == "day":
        return _nearest_day(day, today, prefer, token)
    assert month is not None
    if kind == "ymd":
        year = values["y"]
        assert year is not None
        if year < 100:
            year += 2000
        return _make_date(year, month, day, token)
    # The first of last, this and next year's dates not too far behind (or the last not too
    # far ahead, looking back): 12月5日 said on 3 January is a month ago, not next December.
    years = (today.year - 1, today.year, today.year + 1)
    candidates = [d for d in (_maybe_date(y, month, day) for y in years) if d is not None]
    if not candidates:
        raise ParseError("date", token)
    near = timedelta(days=NEAR_DAYS)
    if prefer == "future":
        return next((d for d in candidates if d >= today - near), candidates[-1])
    return next((d for d in reversed(candidates) if d <= today + near), candidates[0])


def _maybe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _make_date(year: int, month: int, day: int, token: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ParseError("date", token) from None


def _nearest_day(day: int, today: date, prefer: Prefer, token: str) -> date:
    """``5号``: this month's 5th if not long past, else the neighbouring month's."""
    if not 1 <= day <= 31:
        raise ParseError("date", token)
    months = [(today.year, today.month)]
    y, m = today.year, today.month
    step = 1 if prefer == "future" else -1
    for _ in range(2):
        m += step
        if m == 13:
            y, m = y + 1, 1
        if m == 0:
            y, m = y - 1, 12
        months.append((y, m))
    for year, month in months:
        try:
            d = date(year, month, day)
        except ValueError:
            continue
        if (prefer == "future" and d >= today) or (prefer == "past" and d <= today):
            return d
    raise ParseError("date", token)


def parse_date(text: str, today: date, *, prefer: Prefer = "future") -> date:
    """The whole of ``text`` as a date; raises :class:`ParseError` otherwise."""
    d, rest = take_date(text, today, prefer=prefer)
    if d is None or rest:
        raise ParseError("date", normalize(text))
    return d


# Times ----------------------------------------------------------------------------------

_DAYPARTS = {
    "凌晨": "early", "清晨": "am", "早晨": "am", "早上": "am", "上午": "am", "早": "am",
    "中午": "noon", "午后": "pm", "下午": "pm", "傍晚": "pm", "晚上": "pm", "晚间": "pm",
    "夜里": "pm", "晚": "pm",
}  # fmt: skip
_DAYPART = "|".join(sorted(_DAYPARTS, key=len, reverse=True))
_CLOCK = (
    rf"(?P<{{p}}>(?:{_DAYPART})\s*)?(?:"
    rf"(?P<{{h1}}>\d{{{{1,2}}}})\s*[:.]\s*(?P<{{m1}}>\d{{{{2}}}})"
    rf"|(?P<{{h2}}>{INT})\s*[点时]\s*(?:(?P<{{half}}>半)|(?P<{{q}}>[一三])刻|(?P<{{m2}}>{INT})\s*分?|整)?"
    rf")"
)
_TIME = re.compile(
    _CLOCK.format(p="p", h1="h1", m1="m1", h2="h2", half="half", q="q", m2="m2")
    + r"(?:\s*(?:-|~|到|至|—|－)\s*"
    + _CLOCK.format(p="ep", h1="eh1", m1="em1", h2="eh2", half="ehalf", q="eq", m2="em2")
    + r")?"
)


@dataclass(frozen=True)
class TimeSpan:
    start: time
    end: time | None = None


def take_time(text: str) -> tuple[TimeSpan | None, str]:
    """A leading clock time, optionally a range: ``下午两点半 …``, ``14:30-16:00 …``."""
    text = normalize(text)
    m = _TIME.match(text)
    if not m or not (m.group("h1") or m.group("h2")):
        return None, text
    token = text[: m.end()].strip()
    start = _clock(m, "p", "h1", "m1", "h2", "half", "q", "m2", token, None)
    end = None
    if m.group("eh1") or m.group("eh2"):
        # An end without its own 上午/下午 shares the start's half of the day.
        end = _clock(m, "ep", "eh1", "em1", "eh2", "ehalf", "eq", "em2", token, start)
        if end <= start:
            raise ParseError("time", token)
    return TimeSpan(start, end), text[m.end() :].strip(" ,，、")


def _clock(
    m: re.Match[str],
    p: str, h1: str, m1: str, h2: str, half: str, q: str, m2: str,
    token: str,
    start: time | None,
) -> time:  # fmt: skip
    raw_hour = m.group(h1) or m.group(h2)
    hour = parse_int(raw_hour)
    if m.group(h1):
        minute = parse_int(m.group(m1))
    elif m.group(half):
        minute = 30
    elif m.group(q):
        minute = 15 if m.group(q) == "一" else 45
    elif m.group(m2):
        minute = parse_int(m.group(m2))
    else:
        minute = 0
    if hour is None or minute is None or hour > 24 or minute > 59:
        raise ParseError("time", token)
    part = _DAYPARTS.get((m.group(p) or "").strip())
    if part is None and start is not None and start.hour >= 12 and hour < 12:
        part = "pm"
    if part in ("pm",) and hour < 12:
        hour += 12
    elif part == "noon" and 1 <= hour <= 2:
        hour += 12
    elif part is None and 1 <= hour <= 6 and not raw_hour.startswith("0"):
        hour += 12
    if part == "am" and hour > 12:
        raise ParseError("time", token)  # 上午十五点
    if hour == 24 and minute == 0:
        raise ParseError("time", token)
    if hour > 23:
        raise ParseError("time", token)
    return time(hour, minute)


def parse_time(text: str) -> TimeSpan:
    """The whole of ``text`` as a time (or range); raises :class:`ParseError` otherwise."""
    span, rest = take_time(text)
    if span is None or rest:
        raise ParseError("time", normalize(text))
    return span


# Months (党费) ---------------------------------------------------------------------------

_MONTH_WORDS = {"本月": 0, "这个月": 0, "当月": 0, "上月": -1, "上个月": -1, "下月": 1, "下个月": 1}
_MONTH_RANGE = re.compile(
    rf"(?:(?P<y>\d{{4}}|{INT})\s*年\s*)?(?P<a>{INT})\s*(?:月\s*)?"
    rf"(?:(?:-|~|到|至|—)\s*(?P<b>{INT})\s*)?月(?:份)?"
)
_MONTH_ISO = re.compile(r"(?P<y>\d{4})\s*[-/.]\s*(?P<a>\d{1,2})(?![\d.\-/])")


def take_months(text: str, today: date) -> tuple[list[str], str]:
    """Leading months as ``YYYY-MM`` keys: ``11月``, ``2026-11``, ``1-3月``, ``上月``, ``11月、12月``.

    A month without a year is the nearest one to ``today`` (``12月`` said in January is last
    December). Returns ``([], text)`` when the text does not start with a month.
    """
    text = normalize(text)
    months: list[str] = []
    while True:
        found, text = _take_month_item(text, today)
        if not found:
            return months, text
        months += [k for k in found if k not in months]
        if not text.startswith(("、", ",", "，", "和")):
            return months, text
        text = text[1:].strip()


def _take_month_item(text: str, today: date) -> tuple[list[str], str]:
    for word, offset in sorted(_MONTH_WORDS.items(), key=lambda kv: -len(kv[0])):
        if text.startswith(word):
            y, mo = _shift_month(today.year, today.month, offset)
            return [f"{y}-{mo:02d}"], text[len(word) :].strip()
    m = _MONTH_ISO.match(text) or _MONTH_RANGE.match(text)
    if not m:
        return [], text
    token = text[: m.end()].strip()
    a = parse_int(m.group("a"))
    b = parse_int(m.groupdict().get("b") or m.group("a"))
    year = parse_int(m.group("y")) if m.group("y") else None
    if a is None or b is None or not (1 <= a <= 12 and 1 <= b <= 12) or b < a:
        raise ParseError("month", token)
    if year is None:
        year = min(
            (today.year - 1, today.year, today.year + 1),
            key=lambda y: abs((y - today.year) * 12 + a - today.month),
        )
    return [f"{year}-{k:02d}" for k in range(a, b + 1)], text[m.end() :].strip()


def _shift_month(year: int, month: int, offset: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + offset
    return index // 12, index % 12 + 1


# Meeting kinds ----------------------------------------------------------------------------

MEETING_ALIASES = {
    "支部党员大会": "支部党员大会", "党员大会": "支部党员大会", "支部大会": "支部党员大会",
    "支委会": "支委会", "支委会议": "支委会", "支部委员会": "支委会", "支委": "支委会",
    "党小组会": "党小组会", "小组会": "党小组会", "党小组会议": "党小组会",
    "党课": "党课", "书记讲党课": "书记讲党课",
    "主题党日": "主题党日", "主题党日活动": "主题党日", "党日活动": "主题党日",
    "组织生活会": "组织生活会", "民主评议党员": "民主评议党员", "民主评议": "民主评议党员",
    "民主生活会": "民主生活会", "谈心谈话": "谈心谈话", "谈心": "谈心谈话",
    "中心组学习": "中心组学习", "中心组": "中心组学习",
}  # fmt: skip
"""What people call each meeting kind (config ``MEETING_KINDS``, plus 书记讲党课)."""


def take_meeting_kind(text: str) -> tuple[str | None, str]:
    """A leading meeting kind (``支委会``, ``党员大会``…) as its canonical name, and the rest."""
    text = normalize(text)
    for alias in sorted(MEETING_ALIASES, key=len, reverse=True):
        if text.startswith(alias):
            return MEETING_ALIASES[alias], text[len(alias) :].strip()
    return None, text
