"""党费日: the 5th (or the workday before); unpaid members reminded, the secretary gets the
list, and members unpaid 3 and 5 months in a row (and 6) are flagged."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import dues
from tests.snapshot import at, by_key, people, person, run_days, settings_with, snapshot

S = Settings()
EVERYONE = set(range(1, 9))


def paid(months: list[str], who: set[int] = EVERYONE) -> dict[int, set[str]]:
    return {m: set(months) for m in who}


def test_unpaid_members_and_the_list_on_the_fifth():
    data = snapshot(dues=paid(["2026-11"], {1, 2, 5, 6, 7, 8}), dues_since="2026-01")
    days = run_days(dues.due, data, S, date(2026, 11, 1), date(2026, 11, 30))
    assert list(days) == [date(2026, 11, 5)]
    found = by_key(days)
    assert set(found) == {
        "dues:2026-11:member-3",
        "dues:2026-11:member-4",
        "dues:2026-11:list:branch-2",
    }
    assert found["dues:2026-11:member-3"][1].to == ["zhangsan"]
    assert "11月党费" in found["dues:2026-11:member-3"][1].text
    lst = found["dues:2026-11:list:branch-2"][1]
    assert lst.to == ["shuji"] and "（2人）：zhangsan、lisi" in lst.text
    assert found["dues:2026-11:member-3"][1].until == at(2026, 12, 1, 0, 0)


def test_saturday_and_national_day_dues_days():
    # 5 December 2026 is a Saturday; 5 October is 国庆 (补假): 4 December and 30 September.
    days = run_days(
        dues.due, snapshot(dues_since="2026-01"), S, date(2026, 9, 1), date(2026, 12, 31)
    )
    assert sorted(days) == [
        date(2026, 9, 4),
        date(2026, 9, 30),
        date(2026, 11, 5),
        date(2026, 12, 4),
    ]
    assert "dues:2026-10:member-3" in {r.key for r in days[date(2026, 9, 30)]}


def test_year_end_january_dues_key():
    days = run_days(dues.due, snapshot(), S, date(2026, 12, 31), date(2027, 1, 6))
    assert "dues:2027-01:member-3" in {r.key for rs in days.values() for r in rs}


def test_flags_at_three_five_and_six_months():
    history = {
        3: {"2026-07", "2026-06"},  # Aug, Sep, Oct unpaid before November: 3
        4: {"2026-05"},  # Jun–Oct: 5
        6: {"2026-04"},  # May–Oct: 6
        2: {"2026-08"},  # Sep, Oct: 2, not flagged
    }
    data = snapshot(dues=history, dues_since="2026-01")
    found = by_key(run_days(dues.due, data, S, date(2026, 11, 5), date(2026, 11, 5)))
    flags = found["dues:2026-11:flags:branch-2"][1].text
    assert "zhangsan（3个月）" in flags and "lisi（5个月）" in flags and "weiyuan" not in flags
    assert "连续6个月" in flags
    assert "wangwu（6个月）" in found["dues:2026-11:flags:branch-3"][1].text


def test_no_flags_before_the_bureau_started_recording_dues():
    # The bot came into use in October: nobody owes since January.
    data = snapshot(dues=paid(["2026-10"], {1}), dues_since="2026-10")
    found = by_key(run_days(dues.due, data, S, date(2026, 11, 5), date(2026, 11, 5)))
    assert not any(":flags:" in k for k in found)
    assert not any(
        ":flags:" in k
        for k in by_key(run_days(dues.due, snapshot(), S, date(2026, 11, 5), date(2026, 11, 5)))
    )


def test_member_joining_mid_period_owes_from_admission_and_a_leaver_nothing():
    members = people()
    members[9] = person(9, "newcomer", joined_on=date(2026, 11, 20))
    members[10] = person(10, "nextmonth", joined_on=date(2026, 12, 1))
    del members[3]
    data = snapshot(members=members, dues_since="2026-01")
    found = by_key(run_days(dues.due, data, S, date(2026, 11, 5), date(2026, 11, 5)))
    assert "dues:2026-11:member-9" in found  # admitted in November: owes November
    assert "dues:2026-11:member-10" not in found
    assert "dues:2026-11:member-3" not in found


def test_configured_day_and_flags():
    s = settings_with(dues={"day": 20, "flag_months": [2], "leave_months": 4})
    data = snapshot(dues={3: {"2026-08"}}, dues_since="2026-01")
    found = by_key(run_days(dues.due, data, s, date(2026, 11, 1), date(2026, 11, 30)))
    assert found["dues:2026-11:member-3"][0] == date(2026, 11, 20)
    assert "zhangsan（2个月）" in found["dues:2026-11:flags:branch-2"][1].text
