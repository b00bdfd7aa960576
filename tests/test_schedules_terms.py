"""换届: 6, 3 and 1 months before the term ends, on the day, then monthly while overdue;
转正: the member and the secretary a month before the probation ends."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import terms
from tests.snapshot import by_key, person, run_days, settings_with, snapshot

S = Settings()


def test_term_steps_before_and_after_the_end():
    data = snapshot(term_started_on=date(2023, 12, 15))  # ends Tue 15 Dec 2026
    found = by_key(run_days(terms.due, data, S, date(2026, 1, 1), date(2027, 3, 31)))
    term = {k: d for k, (d, _) in found.items() if k.startswith("term:")}
    assert term == {
        "term:org-2:2026-12-15:T-6m": date(2026, 6, 15),
        "term:org-2:2026-12-15:T-3m": date(2026, 9, 15),
        "term:org-2:2026-12-15:T-1m": date(2026, 11, 13),  # 15 Nov is a Sunday
        "term:org-2:2026-12-15:overdue-0": date(2026, 12, 15),
        "term:org-2:2026-12-15:overdue-1": date(2027, 1, 15),
        "term:org-2:2026-12-15:overdue-2": date(2027, 2, 15),
        "term:org-2:2026-12-15:overdue-3": date(2027, 3, 15),
    }
    r = found["term:org-2:2026-12-15:T-3m"][1]
    assert r.to == ["shuji", "office"] and "2026年12月15日届满" in r.text and "3个月" in r.text
    assert "尚未换届" in found["term:org-2:2026-12-15:overdue-1"][1].text


def test_term_ending_in_national_day():
    data = snapshot(term_started_on=date(2023, 10, 3))
    found = by_key(run_days(terms.due, data, S, date(2026, 9, 1), date(2026, 10, 31)))
    assert found["term:org-2:2026-10-03:overdue-0"][0] == date(2026, 9, 30)
    assert found["term:org-2:2026-10-03:T-1m"][0] == date(2026, 9, 3)


def test_probation_month_before_on_an_adjusted_saturday():
    members = {
        1: person(1, "shuji", duties="书记"),
        2: person(2, "yubei", category="预备党员", joined_on=date(2025, 11, 10)),
        3: person(
            3,
            "planned",
            category="预备党员",
            joined_on=date(2025, 10, 20),
            full_on=date(2026, 11, 1),
        ),
        4: person(4, "full", joined_on=date(2025, 11, 10)),
    }
    found = by_key(
        run_days(terms.due, snapshot(members=members), S, date(2026, 9, 1), date(2026, 11, 30))
    )
    day, r = found["probation:member-2:2026-11-10"]
    assert day == date(2026, 10, 10) and r.to == ["yubei", "shuji"]  # 调休 Saturday
    assert "2026年11月10日期满" in r.text
    assert found["probation:member-3:2026-11-01"][0] == date(2026, 9, 30)  # 1 Oct -> 30 Sep
    assert not any(k.startswith("probation:member-4") for k in found)


def test_configured_years_and_steps():
    s = settings_with(terms={"years": 5, "months_before": [2]})
    data = snapshot(term_started_on=date(2021, 12, 15))
    found = by_key(run_days(terms.due, data, s, date(2026, 10, 1), date(2026, 12, 31)))
    assert found["term:org-2:2026-12-15:T-2m"][0] == date(2026, 10, 15)
