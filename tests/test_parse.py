"""bot/parse.py on a table of real-world spellings: full-width digits and punctuation, Chinese
numerals, extra spaces — and the invalid ones, which must name the bad token."""

from __future__ import annotations

from datetime import date, time

import pytest

from bot.parse import (
    ParseError,
    cn_int,
    parse_date,
    parse_duration,
    parse_int,
    parse_time,
    take_date,
    take_duration,
    take_int,
    take_meeting_kind,
    take_months,
    take_time,
)

TODAY = date(2026, 11, 25)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一", 1), ("十", 10), ("十二", 12), ("二十", 20), ("二十五", 25), ("两", 2), ("一百零五", 105),
        ("三百", 300), ("一千二百三十四", 1234), ("二〇二七", 2027), ("壹拾贰", 12), ("零", 0),
    ],
)  # fmt: skip
def test_chinese_numerals(text, value):
    assert cn_int(text) == value


@pytest.mark.parametrize("text", ["", "十百", "二三十", "abc", "十二点"])
def test_not_chinese_numerals(text):
    assert cn_int(text) is None


@pytest.mark.parametrize(
    ("text", "value"), [("12", 12), ("１２", 12), ("十二", 12), (" 12 ", 12), ("1.5", None)]
)
def test_parse_int(text, value):
    assert parse_int(text) == value


def test_take_int_needs_a_word_boundary():
    assert take_int("12 家中有事") == (12, "家中有事")
    assert take_int("１２") == (12, "")
    assert take_int("3天后出差") == (None, "3天后出差")


DURATIONS = [
    ("40分钟", 40), ("40 分钟", 40), ("４０分钟", 40), ("40分", 40), ("半小时", 30), ("半个小时", 30),
    ("半个钟头", 30), ("一个半小时", 90), ("1个半小时", 90), ("两个半小时", 150), ("1.5小时", 90),
    ("１．５小时", 90), ("1.5h", 90), ("2h", 120), ("2H", 120), ("2 hours", 120), ("90min", 90),
    ("90 mins", 90), ("90m", 90), ("三十分钟", 30), ("四十五分钟", 45), ("一小时", 60), ("两小时", 120),
    ("两个小时", 120), ("一个小时", 60), ("一小时半", 90), ("1小时30分钟", 90), ("1小时30分", 90),
    ("1小时30", 90), ("1h30m", 90), ("1h30min", 90), ("一小时二十分钟", 80), ("一刻钟", 15),
    ("三刻钟", 45), ("2个钟头", 120), ("十分钟", 10), ("一百分钟", 100), ("10小时", 600),
]  # fmt: skip


@pytest.mark.parametrize(("text", "minutes"), DURATIONS)
def test_durations(text, minutes):
    assert parse_duration(text) == minutes


@pytest.mark.parametrize(
    ("text", "minutes", "rest"),
    [
        ("40分钟 第一议题：党章", 40, "第一议题:党章"),
        ("40分钟党章", 40, "党章"),
        ("  一个半小时   党史  ", 90, "党史"),
        ("半小时，党章", 30, "党章"),
        ("二十大精神", None, "二十大精神"),
        ("党史 40分钟", None, "党史 40分钟"),
        ("", None, ""),
        ("2026年工作要点", None, "2026年工作要点"),
    ],
)
def test_take_duration_leaves_the_topic(text, minutes, rest):
    assert take_duration(text) == (minutes, rest)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("0分钟", "0分钟"), ("0小时", "0小时"), ("25小时", "25小时"), ("601分钟", "601分钟"),
        ("40 党章", "40"), ("1.5", "1.5"), ("1小时60分钟", "1小时60分钟"),
    ],
)  # fmt: skip
def test_invalid_durations_name_the_token(text, token):
    with pytest.raises(ParseError) as err:
        take_duration(text)
    assert (err.value.what, err.value.token) == ("duration", token)


DATES = [
    ("12月5日", date(2026, 12, 5)), ("12月5号", date(2026, 12, 5)), ("12月5", date(2026, 12, 5)),
    ("１２月５日", date(2026, 12, 5)), ("12 月 5 日", date(2026, 12, 5)), ("十二月五日", date(2026, 12, 5)),
    ("十二月五号", date(2026, 12, 5)), ("2027-03-05", date(2027, 3, 5)), ("2027-3-5", date(2027, 3, 5)),
    ("2027/3/5", date(2027, 3, 5)), ("2027.3.5", date(2027, 3, 5)), ("２０２７－０３－０５", date(2027, 3, 5)),
    ("2027年3月5日", date(2027, 3, 5)), ("二〇二七年三月五日", date(2027, 3, 5)), ("27年3月5日", date(2027, 3, 5)),
    ("12/5", date(2026, 12, 5)), ("今天", TODAY), ("今日", TODAY), ("明天", date(2026, 11, 26)),
    ("后天", date(2026, 11, 27)), ("大后天", date(2026, 11, 28)), ("昨天", date(2026, 11, 24)),
    ("周五", date(2026, 11, 27)), ("星期五", date(2026, 11, 27)), ("礼拜五", date(2026, 11, 27)),
    ("周三", TODAY), ("周一", date(2026, 11, 30)), ("周日", date(2026, 11, 29)), ("星期天", date(2026, 11, 29)),
    ("下周三", date(2026, 12, 2)), ("下星期一", date(2026, 11, 30)), ("下下周一", date(2026, 12, 7)),
    ("本周五", date(2026, 11, 27)), ("这周一", date(2026, 11, 23)), ("上周五", date(2026, 11, 20)),
    ("5号", date(2026, 12, 5)), ("30号", date(2026, 11, 30)), ("25日", TODAY),
    # Without a year: the nearest — a few days back is this year, months back is next year.
    ("11月20日", date(2026, 11, 20)), ("1月5日", date(2027, 1, 5)), ("9月1日", date(2026, 9, 1)),
    ("8月1日", date(2027, 8, 1)), ("12月5日（周六）", date(2026, 12, 5)), ("12月5日(周六)", date(2026, 12, 5)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_dates(text, expected):
    assert parse_date(text, TODAY) == expected


def test_dates_looking_back():
    assert parse_date("12月5日", date(2027, 1, 3), prefer="past") == date(2026, 12, 5)
    assert parse_date("周五", TODAY, prefer="past") == date(2026, 11, 20)
    assert parse_date("30号", TODAY, prefer="past") == date(2026, 10, 30)
    assert parse_date("12月5日", date(2027, 1, 3)) == date(2026, 12, 5)  # a month ago is still near


def test_leap_day_without_a_year():
    assert parse_date("2月29日", date(2027, 11, 1)) == date(2028, 2, 29)
    with pytest.raises(ParseError):
        parse_date("2月29日", date(2026, 11, 1))  # 2027 has none


@pytest.mark.parametrize(
    "text",
    [
        "13月40日",
        "2月30日",
        "12月32日",
        "0月5日",
        "2027-02-29",
        "2027-13-01",
        "十三月五日",
        "32号",
        "4月31日",
    ],
)
def test_impossible_dates_name_the_token(text):
    with pytest.raises(ParseError) as err:
        parse_date(text, TODAY)
    assert err.value.what == "date" and err.value.token == text


@pytest.mark.parametrize("text", ["三楼会议室", "二十大", "开会", "14:30"])
def test_not_dates(text):
    assert take_date(text, TODAY) == (None, text)


def test_take_date_leaves_the_rest():
    assert take_date("12月5日 14:30 三楼会议室", TODAY) == (date(2026, 12, 5), "14:30 三楼会议室")
    assert take_date("明天下午两点半", TODAY) == (date(2026, 11, 26), "下午两点半")
    assert take_date("12月5日14:30", TODAY) == (date(2026, 12, 5), "14:30")


TIMES = [
    ("14:30", time(14, 30)), ("14：30", time(14, 30)), ("１４：３０", time(14, 30)), ("14 : 30", time(14, 30)),
    ("14.30", time(14, 30)), ("9:00", time(9, 0)), ("09:00", time(9, 0)), ("下午两点半", time(14, 30)),
    ("下午2点半", time(14, 30)), ("下午2:30", time(14, 30)), ("下午 2:30", time(14, 30)), ("上午九点", time(9, 0)),
    ("上午9点", time(9, 0)), ("早上八点半", time(8, 30)), ("2点半", time(14, 30)), ("两点", time(14, 0)),
    ("3点", time(15, 0)), ("8点", time(8, 0)), ("十点", time(10, 0)), ("14点", time(14, 0)), ("14点30分", time(14, 30)),
    ("14时30分", time(14, 30)), ("十四点三十分", time(14, 30)), ("两点一刻", time(14, 15)), ("九点三刻", time(9, 45)),
    ("中午12点", time(12, 0)), ("中午一点", time(13, 0)), ("晚上7点", time(19, 0)), ("晚上七点半", time(19, 30)),
    ("傍晚6点", time(18, 0)), ("凌晨2点", time(2, 0)), ("02:30", time(2, 30)), ("9点整", time(9, 0)),
    ("12点", time(12, 0)), ("上午11:30", time(11, 30)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), TIMES)
def test_times(text, expected):
    span = parse_time(text)
    assert (span.start, span.end) == (expected, None)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("14:30-16:00", time(14, 30), time(16, 0)),
        ("14:30－16:00", time(14, 30), time(16, 0)),
        ("14:30~16:00", time(14, 30), time(16, 0)),
        ("14:30 至 16:00", time(14, 30), time(16, 0)),
        ("9点到11点", time(9, 0), time(11, 0)),
        ("下午3点-5点", time(15, 0), time(17, 0)),
        ("下午两点半到四点", time(14, 30), time(16, 0)),
    ],
)
def test_time_ranges(text, start, end):
    span = parse_time(text)
    assert (span.start, span.end) == (start, end)


@pytest.mark.parametrize(
    "text", ["25:00", "24:00", "14:61", "上午十五点", "16:00-14:00", "25点", "下午3点-2点"]
)
def test_impossible_times_name_the_token(text):
    with pytest.raises(ParseError) as err:
        parse_time(text)
    assert err.value.what == "time" and err.value.token == text


def test_take_time_leaves_the_place():
    span, rest = take_time("14:30 三楼会议室 第一议题学习")
    assert span is not None and span.start == time(14, 30) and rest == "三楼会议室 第一议题学习"
    assert take_time("三楼会议室") == (None, "三楼会议室")


MONTHS = [
    ("11月", ["2026-11"]), ("十一月", ["2026-11"]), ("11月份", ["2026-11"]), ("１１月", ["2026-11"]),
    ("2026年11月", ["2026-11"]), ("2026-11", ["2026-11"]), ("2026/9", ["2026-09"]), ("本月", ["2026-11"]),
    ("上月", ["2026-10"]), ("上个月", ["2026-10"]), ("下月", ["2026-12"]), ("9-11月", ["2026-09", "2026-10", "2026-11"]),
    ("9月-11月", ["2026-09", "2026-10", "2026-11"]), ("9月至11月", ["2026-09", "2026-10", "2026-11"]),
    ("10月、11月", ["2026-10", "2026-11"]), ("1月", ["2027-01"]), ("5月", ["2026-05"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "months"), MONTHS)
def test_months(text, months):
    assert take_months(text, TODAY) == (months, "")


def test_month_in_january_is_last_december():
    assert take_months("12月", date(2027, 1, 6)) == (["2026-12"], "")


@pytest.mark.parametrize("text", ["13月", "0月", "11-9月", "十三月"])
def test_impossible_months(text):
    with pytest.raises(ParseError) as err:
        take_months(text, TODAY)
    assert err.value.what == "month"


def test_months_leave_a_name():
    assert take_months("11月 张三", TODAY) == (["2026-11"], "张三")
    assert take_months("张三 11月", TODAY) == ([], "张三 11月")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("支委会", "支委会"), ("支委", "支委会"), ("支部委员会", "支委会"), ("党员大会", "支部党员大会"),
        ("支部大会", "支部党员大会"), ("小组会", "党小组会"), ("党日活动", "主题党日"), ("书记讲党课", "书记讲党课"),
        ("中心组", "中心组学习"), ("民主评议", "民主评议党员"),
    ],
)  # fmt: skip
def test_meeting_kinds(text, kind):
    assert take_meeting_kind(f"{text} 12月5日") == (kind, "12月5日")


def test_unknown_meeting_kind():
    assert take_meeting_kind("茶话会") == (None, "茶话会")
