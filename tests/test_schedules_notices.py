"""Notice follow-ups: one nudge 24 h after the notice, the secretary's list after 48 h,
never outside the window, at most 2 nudges per person, nothing past the deadline."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import notices
from tests.snapshot import at, by_key, local_hm, notice, people, run_days, settings_with, snapshot

S = Settings()


def plan(n, first, last, s=S, members=None):  # type: ignore[no-untyped-def]
    return by_key(run_days(notices.due, snapshot(notices=[n], members=members), s, first, last))


def test_nudge_after_24_hours_list_after_48_with_a_card():
    n = notice(5, at(2026, 11, 24, 10, 7), open_for=[3, 4, 6])
    found = plan(n, date(2026, 11, 24), date(2026, 11, 30))
    day, r = found["notice:5:nudge:member-3"]
    assert day == date(2026, 11, 25) and local_hm(r) == "10:07" and r.to == ["zhangsan"]
    assert r.nudge_receipt == 103
    assert r.body is not None and r.body["msgtype"] == "template_card"
    assert [b["key"] for b in r.body["template_card"]["button_list"]] == ["收到 5"]
    assert "收到 5" in r.text
    day, lst = found["notice:5:unconfirmed:branch-2"]
    assert day == date(2026, 11, 26) and local_hm(lst) == "10:07" and lst.to == ["shuji"]
    assert "（2人）：zhangsan、lisi" in lst.text and "催办 5" in lst.text
    assert found["notice:5:unconfirmed:branch-3"][1].to == ["shuji2"]


def test_friday_evening_notice_waits_for_monday_first_minute():
    n = notice(6, at(2026, 11, 27, 17, 0), open_for=[3])
    found = plan(n, date(2026, 11, 27), date(2026, 12, 2))
    day, r = found["notice:6:nudge:member-3"]
    assert day == date(2026, 11, 30) and local_hm(r) == "08:30"
    assert found["notice:6:unconfirmed:branch-2"][0] == date(2026, 11, 30)


def test_window_edges_and_national_day():
    last_minute = notice(7, at(2026, 11, 24, 17, 59), open_for=[3])
    assert (
        local_hm(
            plan(last_minute, date(2026, 11, 25), date(2026, 11, 25))["notice:7:nudge:member-3"][1]
        )
        == "17:59"
    )
    closing = notice(8, at(2026, 11, 24, 18, 0), open_for=[3])
    day, r = plan(closing, date(2026, 11, 24), date(2026, 11, 27))["notice:8:nudge:member-3"]
    assert day == date(2026, 11, 26) and local_hm(r) == "08:30"
    before_holiday = notice(9, at(2026, 9, 30, 11, 0), open_for=[3])
    found = plan(before_holiday, date(2026, 9, 30), date(2026, 10, 9))
    assert found["notice:9:nudge:member-3"][0] == date(2026, 10, 8)
    assert local_hm(found["notice:9:nudge:member-3"][1]) == "08:30"


def test_nudge_cap_counts_the_secretarys_chasing():
    twice = notice(10, at(2026, 11, 24, 10, 0), open_for=[3, 4], nudges={3: 2, 4: 1})
    found = plan(twice, date(2026, 11, 24), date(2026, 11, 30))
    assert "notice:10:nudge:member-3" not in found and "notice:10:nudge:member-4" in found
    assert "zhangsan" in found["notice:10:unconfirmed:branch-2"][1].text
    one_cap = settings_with(notices={"max_nudges": 1})
    found = plan(twice, date(2026, 11, 24), date(2026, 11, 30), one_cap)
    assert not any(":nudge:" in k for k in found)


def test_recent_chasing_pushes_the_nudge_back():
    n = notice(
        11,
        at(2026, 11, 24, 10, 0),
        open_for=[3],
        nudges={3: 1},
        last_nudged={3: at(2026, 11, 25, 9, 0)},
    )
    day, r = plan(n, date(2026, 11, 24), date(2026, 11, 30))["notice:11:nudge:member-3"]
    assert day == date(2026, 11, 26) and local_hm(r) == "09:00"


def test_deadline_ends_the_chasing():
    n = notice(12, at(2026, 11, 24, 10, 0), open_for=[3], deadline=at(2026, 11, 25, 9, 0))
    assert plan(n, date(2026, 11, 24), date(2026, 11, 30)) == {}
    n = notice(13, at(2026, 11, 24, 10, 0), open_for=[3], deadline=at(2026, 11, 25, 18, 0))
    found = plan(n, date(2026, 11, 24), date(2026, 11, 30))
    assert set(found) == {"notice:13:nudge:member-3"}
    assert found["notice:13:nudge:member-3"][1].until == at(2026, 11, 25, 18, 0)


def test_leaver_is_not_chased_and_the_list_is_per_branch():
    members = people()
    del members[3]
    n = notice(14, at(2026, 11, 24, 10, 0), open_for=[3, 4])
    found = plan(n, date(2026, 11, 24), date(2026, 11, 30), members=members)
    assert "notice:14:nudge:member-3" not in found
    assert "zhangsan" not in found["notice:14:unconfirmed:branch-2"][1].text


def test_month_end_configured_hours():
    s = settings_with(notices={"nudge_after_hours": 4, "secretary_after_hours": 30})
    n = notice(15, at(2026, 11, 30, 15, 0), open_for=[3])
    found = plan(n, date(2026, 11, 30), date(2026, 12, 2), s)
    assert found["notice:15:nudge:member-3"][0] == date(2026, 12, 1)
    assert local_hm(found["notice:15:nudge:member-3"][1]) == "08:30"
    # 30 hours after 15:00 is 21:00 the next day, after the window: the morning after.
    assert found["notice:15:unconfirmed:branch-2"][0] == date(2026, 12, 2)
    assert local_hm(found["notice:15:unconfirmed:branch-2"][1]) == "08:30"
