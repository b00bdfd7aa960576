"""Scheduled meetings: the workday before at 09:00 and an hour before the start, cards with
签到/请假; afterwards the secretary confirms attendance and absentees are asked to 补学."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import meetings
from tests.snapshot import (
    B1,
    G2,
    at,
    by_key,
    local_hm,
    meeting,
    people,
    person,
    run_days,
    settings_with,
    snapshot,
)

S = Settings()
INVITED_B1 = {1: "invited", 2: "invited", 3: "invited", 4: "invited"}


def plan(m, first, last, data=None, s=S):  # type: ignore[no-untyped-def]
    return by_key(run_days(meetings.due, data or snapshot(meetings=[m]), s, first, last))


def test_day_before_and_hour_before_with_meeting_card():
    m = meeting(1, "支部党员大会", at(2026, 11, 26, 14, 30), attendance=dict(INVITED_B1))
    found = plan(m, date(2026, 11, 20), date(2026, 11, 26))
    day, r = found["meeting:1:day-before"]
    assert day == date(2026, 11, 25) and local_hm(r) == "09:00"
    assert r.to == ["shuji", "weiyuan", "zhangsan", "lisi"]
    assert r.until == m.starts_at
    assert r.body is not None and r.body["msgtype"] == "template_card"
    keys = [b["key"] for b in r.body["template_card"]["button_list"]]
    assert keys == ["签到 1", "请假 1"]
    assert "11月26日（周四）14:30" in r.text and "三楼会议室" in r.text
    day, r = found["meeting:1:hour-before"]
    assert day == date(2026, 11, 26) and local_hm(r) == "13:30"


def test_monday_meeting_reminded_on_friday_and_after_national_day_on_september_30():
    monday = meeting(1, "支委会", at(2026, 11, 30, 9, 30))
    assert plan(monday, date(2026, 11, 25), date(2026, 11, 30))["meeting:1:day-before"][0] == date(
        2026, 11, 27
    )
    after_holiday = meeting(2, "支委会", at(2026, 10, 8, 9, 30))
    found = plan(after_holiday, date(2026, 9, 25), date(2026, 10, 8))
    assert found["meeting:2:day-before"][0] == date(2026, 9, 30)
    # The hour before 09:30 is 08:30, the window's first minute.
    assert local_hm(found["meeting:2:hour-before"][1]) == "08:30"


def test_meeting_on_an_adjusted_saturday_and_on_a_real_saturday():
    working_sat = meeting(1, "支委会", at(2026, 10, 10, 14, 30))
    found = plan(working_sat, date(2026, 10, 8), date(2026, 10, 10))
    assert found["meeting:1:day-before"][0] == date(2026, 10, 9)
    assert found["meeting:1:hour-before"][0] == date(2026, 10, 10)
    # A meeting on a day off: the workday before only; nobody is messaged on their day off.
    weekend = meeting(2, "主题党日", at(2026, 11, 28, 9, 0))
    found = plan(weekend, date(2026, 11, 25), date(2026, 11, 28))
    assert set(found) == {"meeting:2:day-before"} and found["meeting:2:day-before"][0] == date(
        2026, 11, 27
    )


def test_hour_before_at_the_window_edges():
    early = meeting(1, "支委会", at(2026, 11, 25, 8, 30))  # 07:30 -> 08:30, not before the start
    assert "meeting:1:hour-before" not in plan(early, date(2026, 11, 25), date(2026, 11, 25))
    evening = meeting(2, "支委会", at(2026, 11, 25, 19, 0))  # 18:00 is outside -> 17:59
    r = plan(evening, date(2026, 11, 25), date(2026, 11, 25))["meeting:2:hour-before"][1]
    assert local_hm(r) == "17:59"


def test_meeting_scheduled_for_today():
    # Scheduled at 10:00 for 15:00 today: 安排 told the attendees, so no day-before
    # reminder; the hour-before one still goes.
    m = meeting(1, "支委会", at(2026, 11, 25, 15, 0), created=at(2026, 11, 25, 10, 0))
    found = plan(m, date(2026, 11, 24), date(2026, 11, 25))
    assert set(found) >= {"meeting:1:hour-before"} and "meeting:1:day-before" not in found
    late = meeting(2, "支委会", at(2026, 11, 25, 15, 0), created=at(2026, 11, 25, 14, 30))
    assert "meeting:2:hour-before" not in plan(late, date(2026, 11, 25), date(2026, 11, 25))


def test_attendees_by_kind_leave_excluded_and_joiners_included():
    committee = meeting(1, "支委会", at(2026, 11, 26, 14, 30))
    r = plan(committee, date(2026, 11, 25), date(2026, 11, 25))["meeting:1:day-before"][1]
    assert r.to == ["shuji", "weiyuan"]
    group = meeting(2, "党小组会", at(2026, 11, 26, 9, 30), group=G2)
    assert plan(group, date(2026, 11, 25), date(2026, 11, 25))["meeting:2:day-before"][1].to == [
        "weiyuan",
        "lisi",
    ]
    members = people()
    members[9] = person(9, "newcomer")  # joined after 安排: no attendance row yet
    del members[4]  # lisi left the roster
    invited = meeting(
        3,
        "支部党员大会",
        at(2026, 11, 26, 14, 30),
        attendance={1: "invited", 2: "leave", 3: "invited", 4: "invited"},
    )
    r = plan(
        invited,
        date(2026, 11, 25),
        date(2026, 11, 25),
        snapshot(members=members, meetings=[invited]),
    )["meeting:3:day-before"][1]
    assert r.to == ["shuji", "zhangsan", "newcomer"]


def test_after_the_meeting_confirmation_and_makeup():
    m = meeting(
        1,
        "支部党员大会",
        at(2026, 11, 26, 14, 30),
        status="held",
        attendance={1: "signed_in", 2: "leave", 3: "invited", 4: "absent"},
    )
    found = plan(m, date(2026, 11, 26), date(2026, 11, 30))
    day, confirm = found["meeting:1:confirm"]
    assert day == date(2026, 11, 26) and local_hm(confirm) == "16:00"
    assert confirm.to == ["shuji"]
    assert "签到1人，请假1人，未签到2人（zhangsan、lisi）" in confirm.text
    day, makeup = found["meeting:1:makeup"]
    assert day == date(2026, 11, 27) and makeup.to == ["zhangsan", "lisi"]
    assert "补学" in makeup.text


def test_meeting_ending_after_the_window_is_confirmed_next_workday_morning():
    m = meeting(1, "支委会", at(2026, 11, 27, 17, 0), attendance={1: "signed_in", 2: "invited"})
    found = plan(m, date(2026, 11, 27), date(2026, 12, 1))
    day, confirm = found["meeting:1:confirm"]
    assert day == date(2026, 11, 30) and local_hm(confirm) == "08:30"
    assert found["meeting:1:makeup"][0] == date(2026, 11, 30)


def test_meeting_before_national_day_follow_ups_after_it():
    m = meeting(1, "支委会", at(2026, 9, 30, 16, 30), attendance={1: "signed_in", 2: "invited"})
    found = plan(m, date(2026, 9, 30), date(2026, 10, 9))
    assert found["meeting:1:confirm"][0] == date(2026, 10, 8)
    assert found["meeting:1:makeup"][0] == date(2026, 10, 8)


def test_no_absentee_nothing_to_make_up_and_someone_who_joined_later_is_not_absent():
    members = people()
    members[9] = person(9, "newcomer", joined_on=date(2026, 11, 28))
    m = meeting(1, "支部党员大会", at(2026, 11, 26, 14, 30), status="held")  # no rows: old data
    found = plan(m, date(2026, 11, 26), date(2026, 11, 30), snapshot(members=members, meetings=[m]))
    assert "newcomer" not in found["meeting:1:makeup"][1].to
    full = meeting(2, "支委会", at(2026, 11, 26, 14, 30), attendance={1: "signed_in", 2: "made_up"})
    found = plan(full, date(2026, 11, 26), date(2026, 11, 30))
    assert "meeting:2:makeup" not in found and "未签到0人" in found["meeting:2:confirm"][1].text


def test_cancelled_meetings_get_nothing():
    m = meeting(1, "支委会", at(2026, 11, 26, 14, 30), status="cancelled")
    assert plan(m, date(2026, 11, 20), date(2026, 11, 30)) == {}


def test_configured_times():
    s = settings_with(
        meetings={"day_before_at": "15:00", "hours_before": 2, "makeup_after_workdays": 2}
    )
    m = meeting(1, "支委会", at(2026, 11, 26, 14, 30), attendance={1: "invited", 2: "signed_in"})
    found = plan(m, date(2026, 11, 20), date(2026, 12, 2), s=s)
    assert local_hm(found["meeting:1:day-before"][1]) == "15:00"
    assert local_hm(found["meeting:1:hour-before"][1]) == "12:30"
    assert found["meeting:1:makeup"][0] == date(2026, 11, 30)


def test_branch_scope():
    m = meeting(1, "支部党员大会", at(2026, 11, 26, 14, 30), branch=B1)
    assert (
        "shuji2"
        not in plan(m, date(2026, 11, 25), date(2026, 11, 25))["meeting:1:day-before"][1].to
    )
