"""政治生日: the month's list to the secretary on the first workday; the greeting on the day
or the workday before; which date counts is a setting."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import birthdays
from tests.snapshot import by_key, people, person, run_days, settings_with, snapshot

S = Settings()


def greetings(data, first, last, s=S):  # type: ignore[no-untyped-def]
    return by_key(run_days(birthdays.due, data, s, first, last))


def test_greeting_on_the_day():
    found = greetings(snapshot(), date(2026, 11, 1), date(2026, 11, 30))
    day, r = found["birthday:2026:member-3"]  # zhangsan joined 27 Nov 2015
    assert day == date(2026, 11, 27) and r.to == ["zhangsan"]
    assert "入党11周年" in r.text and "11月27日" in r.text


def test_greeting_on_a_day_off_goes_the_workday_before():
    members = {
        1: person(1, "sat", joined_on=date(2000, 11, 28)),  # Saturday 2026-11-28
        2: person(2, "national", joined_on=date(2000, 10, 1)),  # 国庆
        3: person(3, "newyear", joined_on=date(2000, 1, 1)),  # 1 Jan 2027 -> 31 Dec 2026
        4: person(4, "working_sun", joined_on=date(2000, 9, 20)),  # 调休 Sunday: that day
    }
    found = greetings(snapshot(members=members), date(2026, 9, 1), date(2026, 12, 31))
    assert found["birthday:2026:member-1"][0] == date(2026, 11, 27)
    assert found["birthday:2026:member-2"][0] == date(2026, 9, 30)
    assert found["birthday:2027:member-3"][0] == date(2026, 12, 31)
    assert found["birthday:2026:member-4"][0] == date(2026, 9, 20)


def test_leap_day_joiner_and_first_year():
    members = {
        1: person(1, "leap", joined_on=date(2016, 2, 29)),
        2: person(2, "fresh", joined_on=date(2026, 3, 2)),
    }
    found = greetings(snapshot(members=members), date(2026, 1, 1), date(2026, 12, 31))
    # 29 February falls back to the 28th, a Saturday, but a 调休 working day in 2026.
    assert found["birthday:2026:member-1"][0] == date(2026, 2, 28)
    assert not any(k.endswith("member-2") for k in found if k.startswith("birthday:"))


def test_monthly_list_on_the_first_workday():
    found = greetings(snapshot(), date(2026, 11, 1), date(2026, 11, 30))
    day, r = found["birthday-list:2026-11:branch-2"]
    assert day == date(2026, 11, 2) and r.to == ["shuji"]
    assert "zhangsan（11月27日，入党11周年）" in r.text
    # January 2026's first workday is Sunday the 4th (调休); October's is the 8th.
    members = {
        1: person(1, "jan", joined_on=date(2000, 1, 20), duties="书记"),
        2: person(2, "oct", joined_on=date(2000, 10, 20), duties="书记"),
    }
    found = greetings(snapshot(members=members), date(2026, 1, 1), date(2026, 12, 31))
    assert found["birthday-list:2026-01:branch-2"][0] == date(2026, 1, 4)
    assert found["birthday-list:2026-10:branch-2"][0] == date(2026, 10, 8)


def test_joiner_and_leaver():
    members = people()
    del members[3]
    members[9] = person(9, "newcomer", joined_on=date(2020, 11, 20))
    found = greetings(snapshot(members=members), date(2026, 11, 1), date(2026, 11, 30))
    assert "birthday:2026:member-9" in found and "birthday:2026:member-3" not in found
    assert "zhangsan" not in found["birthday-list:2026-11:branch-2"][1].text


def test_full_membership_date_setting():
    s = settings_with(bot={"political_birthday": "full"})
    members = {1: person(1, "a", joined_on=date(2010, 3, 3), full_on=date(2011, 11, 27))}
    found = greetings(snapshot(members=members), date(2026, 1, 1), date(2026, 12, 31), s)
    assert found["birthday:2026:member-1"][0] == date(2026, 11, 27)
    assert "入党15周年" in found["birthday:2026:member-1"][1].text
