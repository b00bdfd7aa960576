"""Property tests of what people type (issue 8 item 3): every chat parser in bot/parse.py and
the keyword matching of bot/router.py over bot/text.py.

- Nothing a member can type makes a parser raise anything but :class:`ParseError`.
- What we render reads back: a duration in minutes written as ``N分钟``, ``N小时M分钟`` or in
  Chinese numerals parses back to N; dates, clock times and months likewise.
- Full-width input (what Chinese IMEs type) means exactly what half-width input means.

Deterministic: fixed ``max_examples``, ``derandomize=True``, no example database.
"""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import parse
from bot.parse import ParseError
from bot.roles import Role
from bot.router import commands, find_command
from bot.text import clean_name, normalize

CI = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TODAY = date(2026, 11, 25)  # a Wednesday, as in tests/conftest.py
ALL_ROLES = frozenset(Role)
DIGITS = "零一二三四五六七八九"

# What the parsers look for, plus what breaks them: mixed so that near-misses are common.
VOCAB = [
    *"0123456789", *"零〇一二两三四五六七八九十百千半刻整", "分钟", "分", "小时", "个", "钟头",
    "h", "min", "月", "日", "号", "年", "点", "时", ":", "：", ".", "-", "~", "到", "至", "/",
    "周", "星期", "下", "上", "本", "这个", "上午", "下午", "晚上", "凌晨", "中午", "今天", "明天",
    "上个月", "本月", "、", "，", "和", " ", "　", "(", ")", "份", "党章", "支委会", "学习",
    "收到", "党费", "缴纳", "\u200b", "\ufeff", "\x00", "９", "１２", "Ｈ", "99999999999999999999",
]  # fmt: skip
hostile = st.one_of(
    st.lists(st.sampled_from(VOCAB), max_size=12).map("".join),
    st.text(max_size=30),
)


def fullwidth(text: str) -> str:
    """What a Chinese IME types: ASCII as its full-width twin, space as the ideographic one."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def cn(n: int) -> str:
    """``n`` (0 < n < 1000) in Chinese numerals as people write them: 十二, 三十, 一百零五."""
    if n < 10:
        return DIGITS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return ("" if tens == 1 else DIGITS[tens]) + "十" + (DIGITS[ones] if ones else "")
    hundreds, rest = divmod(n, 100)
    head = DIGITS[hundreds] + "百"
    if rest == 0:
        return head
    if rest < 10:
        return head + "零" + DIGITS[rest]
    tens, ones = divmod(rest, 10)
    return head + DIGITS[tens] + "十" + (DIGITS[ones] if ones else "")


def outcome(fn, *args, **kw):  # type: ignore[no-untyped-def]
    """The result, or the ParseError's kind: anything else escapes and fails the test."""
    try:
        return ("ok", fn(*args, **kw))
    except ParseError as exc:
        return ("error", exc.what)


PARSERS = [
    ("take_int", lambda t: parse.take_int(t)),
    ("parse_int", lambda t: parse.parse_int(t)),
    ("cn_int", lambda t: parse.cn_int(t)),
    ("take_duration", lambda t: parse.take_duration(t)),
    ("parse_duration", lambda t: parse.parse_duration(t)),
    ("take_date", lambda t: parse.take_date(t, TODAY)),
    ("take_date_past", lambda t: parse.take_date(t, TODAY, prefer="past")),
    ("parse_date", lambda t: parse.parse_date(t, TODAY)),
    ("take_time", lambda t: parse.take_time(t)),
    ("parse_time", lambda t: parse.parse_time(t)),
    ("take_months", lambda t: parse.take_months(t, TODAY)),
    ("take_meeting_kind", lambda t: parse.take_meeting_kind(t)),
    ("find_command", lambda t: find_command(normalize(t), ALL_ROLES, commands())[:2]),
]
NORMALISED = {"take_int", "parse_int", "take_duration", "parse_duration", "take_date",
              "take_date_past", "parse_date", "take_time", "parse_time", "take_months",
              "take_meeting_kind", "find_command"}  # fmt: skip
"""The parsers that normalise their input (cn_int reads raw numerals only)."""


@pytest.mark.parametrize("name, fn", PARSERS, ids=[n for n, _ in PARSERS])
@CI
@given(text=hostile)
def test_parsers_raise_nothing_but_parse_error(name, fn, text):
    outcome(fn, text)  # a ValueError other than ParseError, IndexError, … fails here
    assert normalize(text) == normalize(normalize(text))
    clean_name(text)


@pytest.mark.parametrize(
    "name, fn",
    [p for p in PARSERS if p[0] in NORMALISED],
    ids=[n for n, _ in PARSERS if n in NORMALISED],
)
@CI
@given(text=hostile)
def test_full_width_means_the_same_as_half_width(name, fn, text):
    assert outcome(fn, fullwidth(text)) == outcome(fn, text)


@CI
@given(n=st.integers(1, parse.MAX_STUDY_MINUTES), fw=st.booleans())
def test_a_duration_reads_back_in_every_spelling(n, fw):
    hours, minutes = divmod(n, 60)
    spellings = [f"{n}分钟", f"{n} 分钟", f"{cn(n)}分钟", f"{n}min"]
    if hours and not minutes:
        spellings += [f"{hours}小时", f"{cn(hours)}个小时", f"{hours}h"]
    if hours and minutes:
        spellings += [f"{hours}小时{minutes}分钟", f"{cn(hours)}小时{cn(minutes)}分"]
    if hours and minutes == 30:
        spellings += [f"{cn(hours)}个半小时", f"{hours}小时半"]
    for s in spellings:
        s = fullwidth(s) if fw else s
        assert parse.parse_duration(s) == n, s
        assert parse.take_duration(s + " 党章") == (n, "党章"), s


@CI
@given(n=st.integers(parse.MAX_STUDY_MINUTES + 1, 10**6))
def test_an_impossible_duration_is_refused_with_the_token(n):
    with pytest.raises(ParseError) as exc:
        parse.take_duration(f"{n}分钟 党章")
    assert exc.value.token == f"{n}分钟"


@CI
@given(n=st.integers(1, 999))
def test_chinese_numerals_read_back(n):
    assert parse.cn_int(cn(n)) == n
    assert parse.parse_int(cn(n)) == n
    assert parse.parse_int(fullwidth(str(n))) == n


@CI
@given(d=st.dates(TODAY - timedelta(days=parse.NEAR_DAYS), TODAY + timedelta(days=270)))
def test_a_date_reads_back(d):
    assert parse.parse_date(d.isoformat(), TODAY) == d
    assert parse.parse_date(f"{d.year}年{d.month}月{d.day}日", TODAY) == d
    # Without a year: this side of "about three months ago" (the module's rule).
    assert parse.parse_date(f"{d.month}月{d.day}日", TODAY) == d
    assert parse.parse_date(f"{cn(d.month)}月{cn(d.day)}号", TODAY) == d
    assert parse.take_date(fullwidth(f"{d.month}月{d.day}日 14:30"), TODAY) == (d, "14:30")


@CI
@given(h=st.integers(0, 23), m=st.integers(0, 59))
def test_a_clock_time_reads_back(h, m):
    assert parse.parse_time(f"{h:02d}:{m:02d}") == parse.TimeSpan(time(h, m))
    assert parse.parse_time(fullwidth(f"{h:02d}:{m:02d}")) == parse.TimeSpan(time(h, m))
    if 1 <= h <= 11:
        pm = parse.parse_time(f"下午{cn(h)}点{cn(m) if m else '整'}{'分' if m else ''}")
        assert pm == parse.TimeSpan(time(h + 12, m))


@CI
@given(y=st.integers(2000, 2099), a=st.integers(1, 12), b=st.integers(1, 12))
def test_months_read_back(y, a, b):
    assert parse.take_months(f"{y}-{a:02d}", TODAY) == ([f"{y}-{a:02d}"], "")
    lo, hi = min(a, b), max(a, b)
    keys = [f"{y}-{k:02d}" for k in range(lo, hi + 1)]
    assert parse.take_months(fullwidth(f"{y}年{lo}-{hi}月 党费"), TODAY) == (keys, "党费")
    if a != b:
        with pytest.raises(ParseError):
            parse.take_months(f"{y}年{hi}-{lo}月", TODAY)


@pytest.mark.parametrize("cmd", commands(), ids=lambda c: c.name)
def test_every_keyword_reaches_its_command_in_full_width_too(cmd):
    for kw in cmd.keywords:
        for text in (kw, fullwidth(kw), f"{kw} 12", fullwidth(f"{kw} 12")):
            found, matched, _ = find_command(normalize(text), ALL_ROLES, commands())
            if cmd.exact and text != kw and text != fullwidth(kw):
                continue
            assert found is not None, text
            # An earlier command may own a longer keyword that starts the same way; the
            # matched keyword is at least as specific as ours, never a shorter prefix.
            assert matched is not None and len(matched) >= len(normalize(kw)), (text, matched)
