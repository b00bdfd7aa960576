"""Milestones and tasks: T-14, T-7, T-3, T-1 to the responsible secretaries, then every
workday overdue until done, and one daily overdue summary for the office."""

from __future__ import annotations

from datetime import date

from bot.config import Settings
from schedules import milestones
from schedules.base import TaskInfo
from tests.snapshot import B1, B2, by_key, people, person, run_days, settings_with, snapshot

S = settings_with(milestones=[])
CAMPAIGN = Settings()


def test_task_countdown_and_keys():
    task = TaskInfo(7, "报送学习计划", B1, date(2026, 11, 30))
    found = by_key(
        run_days(milestones.due, snapshot(tasks=[task]), S, date(2026, 11, 1), date(2026, 11, 30))
    )
    assert found["task:7:T-14:2026-11-30"][0] == date(2026, 11, 16)
    assert found["task:7:T-7:2026-11-30"][0] == date(2026, 11, 23)
    # T-3 (Fri 27th) and T-1 (Sun 29th -> Fri 27th) share a day: only T-1 is sent.
    assert "task:7:T-3:2026-11-30" not in found
    day, r = found["task:7:T-1:2026-11-30"]
    assert day == date(2026, 11, 27) and r.to == ["shuji"]
    assert "11月30日（周一）截止，还有3天" in r.text


def test_due_on_a_saturday_and_after_national_day():
    sat = TaskInfo(1, "周六截止", B1, date(2026, 11, 28))
    found = by_key(
        run_days(milestones.due, snapshot(tasks=[sat]), S, date(2026, 11, 1), date(2026, 11, 28))
    )
    assert found["task:1:T-1:2026-11-28"][0] == date(2026, 11, 27)
    after = TaskInfo(2, "节后截止", B1, date(2026, 10, 8))
    found = by_key(
        run_days(milestones.due, snapshot(tasks=[after]), S, date(2026, 9, 1), date(2026, 10, 8))
    )
    assert set(found) == {"task:2:T-14:2026-10-08", "task:2:T-1:2026-10-08"}
    assert found["task:2:T-1:2026-10-08"][0] == date(2026, 9, 30)


def test_due_on_an_adjusted_saturday():
    task = TaskInfo(3, "调休日截止", B1, date(2026, 10, 10))
    found = by_key(
        run_days(milestones.due, snapshot(tasks=[task]), S, date(2026, 9, 20), date(2026, 10, 10))
    )
    # T-1 Fri 9 Oct; T-3 (7th) and T-7 (3rd) both fall in 国庆 and share 30 September, so
    # only T-3 goes; T-14 (Sat 26 Sep, after 中秋 on the 25th) goes on Thu 24 September.
    assert {k: d for k, (d, _) in found.items()} == {
        "task:3:T-14:2026-10-10": date(2026, 9, 24),
        "task:3:T-3:2026-10-10": date(2026, 9, 30),
        "task:3:T-1:2026-10-10": date(2026, 10, 9),
    }


def test_overdue_every_workday_until_done_and_office_summary():
    task = TaskInfo(4, "整改清单", B1, date(2026, 11, 25))
    days = run_days(
        milestones.due, snapshot(tasks=[task]), S, date(2026, 11, 26), date(2026, 12, 2)
    )
    assert sorted(days) == [
        date(2026, 11, 26),
        date(2026, 11, 27),
        date(2026, 11, 30),
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]
    first = {r.key: r for r in days[date(2026, 11, 26)]}
    assert first["task:4:overdue:2026-11-25:2026-11-26"].to == ["shuji"]
    assert "逾期1天" in first["task:4:overdue:2026-11-25:2026-11-26"].text
    summary = first["overdue-summary:2026-11-26"]
    assert summary.to == ["office"] and "第一党支部「整改清单」" in summary.text
    done = TaskInfo(4, "整改清单", B1, date(2026, 11, 25), done=True)
    assert (
        run_days(milestones.due, snapshot(tasks=[done]), S, date(2026, 11, 1), date(2026, 12, 2))
        == {}
    )


def test_campaign_milestones_from_config_reach_every_branch():
    found = by_key(
        run_days(milestones.due, snapshot(), CAMPAIGN, date(2026, 4, 1), date(2026, 4, 30))
    )
    for branch in (B1, B2):
        key = f"milestone:报送基层党组织计划方案:branch-{branch}"
        assert found[f"{key}:T-14:2026-04-30"][0] == date(2026, 4, 16)
        assert found[f"{key}:T-7:2026-04-30"][0] == date(2026, 4, 23)
        assert found[f"{key}:T-3:2026-04-30"][0] == date(2026, 4, 27)
        assert found[f"{key}:T-1:2026-04-30"][0] == date(2026, 4, 29)
    assert found["milestone:报送基层党组织计划方案:branch-3:T-1:2026-04-30"][1].to == ["shuji2"]
    assert (
        "请按时报送材料"
        in found["milestone:报送基层党组织计划方案:branch-2:T-1:2026-04-30"][1].text
    )


def test_materialised_milestone_keeps_the_key_and_closes_when_done():
    row = TaskInfo(40, "报送基层党组织计划方案", B1, date(2026, 4, 30), kind="milestone")
    found = by_key(
        run_days(
            milestones.due, snapshot(tasks=[row]), CAMPAIGN, date(2026, 4, 29), date(2026, 4, 29)
        )
    )
    assert "milestone:报送基层党组织计划方案:branch-2:T-1:2026-04-30" in found
    done = TaskInfo(
        40, "报送基层党组织计划方案", B1, date(2026, 4, 30), kind="milestone", done=True
    )
    found = by_key(
        run_days(
            milestones.due, snapshot(tasks=[done]), CAMPAIGN, date(2026, 5, 6), date(2026, 5, 6)
        )
    )
    assert not any("branch-2" in k and "计划方案" in k for k in found)
    assert "milestone:报送基层党组织计划方案:branch-3:overdue:2026-04-30:2026-05-06" in found


def test_milestone_without_submission_is_not_chased_afterwards():
    found = by_key(
        run_days(milestones.due, snapshot(), CAMPAIGN, date(2026, 4, 1), date(2026, 4, 3))
    )
    assert not any("全覆盖启动" in k for k in found)


def test_year_end_milestone_reminders_cross_into_the_new_year():
    s = settings_with(milestones=[{"name": "年初报送", "due": "01-08", "submit": True}])
    found = by_key(run_days(milestones.due, snapshot(), s, date(2026, 12, 20), date(2027, 1, 8)))
    assert found["milestone:年初报送:branch-2:T-14:2027-01-08"][0] == date(2026, 12, 25)
    assert found["milestone:年初报送:branch-2:T-7:2027-01-08"][0] == date(2026, 12, 31)


def test_scoped_milestone_and_a_branch_without_secretary_goes_to_committee():
    s = settings_with(
        milestones=[{"name": "专项", "due": "11-30", "scope": "第二党支部", "submit": True}]
    )
    members = people()
    del members[5]  # 第二党支部 lost its 书记
    members[9] = person(9, "zuzhi2", B2, duties="组织委员")
    found = by_key(
        run_days(
            milestones.due, snapshot(members=members), s, date(2026, 11, 27), date(2026, 11, 27)
        )
    )
    assert set(found) == {"milestone:专项:branch-3:T-1:2026-11-30"}
    assert found["milestone:专项:branch-3:T-1:2026-11-30"][1].to == ["zuzhi2"]


def test_only_milestones_asking_for_a_submission_say_so():
    found = by_key(
        run_days(milestones.due, snapshot(), CAMPAIGN, date(2026, 3, 17), date(2026, 3, 17))
    )
    text = found["milestone:全覆盖启动:branch-2:T-14:2026-03-31"][1].text
    assert "请按时报送材料" not in text and "全覆盖启动" in text
