"""bot/scorecard.py: a branch's compliance score for a year, each part explained in words,
ranked only when the office turns ranking on, study weightless by default.

Three branches are built for a year that is over (2025, seen from the fixed clock in
November 2026): 第一党支部 does everything (100), 第二党支部 nothing it owes (0), 第三党支部
half of it (51). The rubric's cadence is cut to two rules so each figure can be counted
by hand: 支委会 once a quarter and 党课 once a year.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot import messages as msg
from bot.clock import SHANGHAI, to_utc
from bot.config import CadenceRule
from bot.models import StudyRecord
from bot.scorecard import as_of, ranks, render_explained, year_scorecards
from bot.store import create_tasks, record_dues, record_progress, schedule_meeting, sign_in
from tests.factories import member, org, small_bureau


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return to_utc(datetime(y, m, d, hh, mm, tzinfo=SHANGHAI))


def hold(session, branch, kind, starts, *, sign=(), topic="", now):
    """A meeting as 安排 records it (its audience invited), then the given people sign in."""
    meeting, _ = schedule_meeting(
        session=session, branch_id=branch.id, kind=kind, group_id=None, starts_at=starts,
        ends_at=starts + timedelta(minutes=90), place="", topic=topic, created_by=None, now=now,
    )  # fmt: skip
    for p in sign:
        sign_in(session=session, meeting_id=meeting.id, member_id=p.id, at=starts)
    return meeting


def pay(session, who, months, *, recorder):
    record_dues(
        session=session, member=who, months=[f"2025-{m:02d}" for m in months],
        at=at(2025, 12, 1), recorded_by=recorder,
    )  # fmt: skip


@pytest.fixture
def rubric(settings):
    settings.cadence = [
        CadenceRule(kind="支委会", period="quarter"),
        CadenceRule(kind="党课", period="year"),
    ]
    return settings


@pytest.fixture
def year_2025(session, clock, rubric):
    """第一 does everything, 第二 nothing, 第三 half; returns the bureau's people."""
    now = clock.now()
    p = small_bureau(session)
    b1, b2 = p["b1"], p["b2"]
    b3 = org(session, "第三党支部", parent=p["root"])
    s3 = member(session, b3, "郑书记", userid="zhengshuji", duties="书记")
    m3 = member(session, b3, "冯六", userid="fengliu")
    committee1 = [p["secretary"], p["committee"]]
    everyone1 = [*committee1, p["member"], p["member2"]]
    # 第一: a 支委会 every quarter and a 党课, everyone there; all dues; the task on time.
    for month in (1, 4, 7, 10):
        hold(session, b1, "支委会", at(2025, month, 20, 14), sign=committee1, now=now)
    hold(session, b1, "党课", at(2025, 6, 15, 9), sign=everyone1, now=now)
    for who in everyone1:
        pay(session, who, range(1, 13), recorder=p["secretary"])
    # 第二: only a 中心组学习 (no cadence rule) that nobody attended; no dues; the task open.
    hold(session, b2, "中心组学习", at(2025, 3, 3, 9), now=now)
    # 第三: 支委会 in Q1 (attended) and Q2 (absent), no 党课; dues 12 + 6 months; one
    # task on time, one late.
    hold(session, b3, "支委会", at(2025, 2, 10, 14), sign=[s3], now=now)
    hold(session, b3, "支委会", at(2025, 5, 10, 14), now=now)
    pay(session, s3, range(1, 13), recorder=s3)
    pay(session, m3, range(1, 7), recorder=s3)
    plan = create_tasks(
        session=session, name="报送计划方案", due_on=date(2025, 4, 30),
        branch_ids=[b1.id, b2.id, b3.id], created_by=p["office"], now=at(2025, 3, 1),
    )  # fmt: skip
    by_branch = {t.branch_id: t for t in plan}
    record_progress(
        session=session, task=by_branch[b1.id], member=p["secretary"], note="已报送",
        done=True, at=at(2025, 4, 28),
    )  # fmt: skip
    record_progress(
        session=session, task=by_branch[b3.id], member=s3, note="已报送", done=True,
        at=at(2025, 4, 29),
    )  # fmt: skip
    (late,) = create_tasks(
        session=session, name="整改清单", due_on=date(2025, 11, 30), branch_ids=[b3.id],
        created_by=p["office"], now=at(2025, 10, 1),
    )  # fmt: skip
    record_progress(
        session=session, task=late, member=s3, note="已完成", done=True, at=at(2025, 12, 5)
    )
    session.commit()
    return p | {"b3": b3, "s3": s3, "m3": m3}


def cards_by_name(session, settings, year, now):
    return {
        c.branch: c for c in year_scorecards(session=session, settings=settings, year=year, now=now)
    }


def figures(card):
    return {p.key: (p.part.done, p.part.due) for p in card.parts}


def test_full_marks_every_part_done(session, rubric, clock, year_2025):
    card = cards_by_name(session, rubric, 2025, clock.now())["第一党支部"]
    assert card.closed and card.year == 2025
    assert card.total == 100
    assert figures(card) == {
        "cadence": (5, 5),  # four quarters of 支委会 and the year's 党课
        "attendance": (12, 12),  # 2 committee × 4 + 4 at the 党课
        "dues": (48, 48),  # 4 members × 12 months
        "tasks": (1, 1),
        "study": (0, 0),
    }
    for p in card.parts[:4]:
        assert p.owed == msg.SCORE_OWES_NOTHING
        assert p.part.points == p.part.weight
    cadence = card.part("cadence")
    assert cadence.counted == "自1月20日有记录起，应按期召开的会议周期5个，达到次数要求的5个"
    assert {(r.kind, r.required, r.held) for r in card.cadence} == {
        ("支委会", 4, 4),
        ("党课", 1, 1),
    }


def test_nothing_done_scores_zero_and_says_what_is_owed(session, rubric, clock, year_2025):
    card = cards_by_name(session, rubric, 2025, clock.now())["第二党支部"]
    assert card.total == 0
    assert figures(card) == {
        "cadence": (0, 5),
        "attendance": (0, 4),  # the 中心组学习: four invited, nobody came
        "dues": (0, 48),
        "tasks": (0, 1),
        "study": (0, 0),
    }
    cadence = card.part("cadence")
    assert cadence.owed.startswith("未达标：支委会第一季度（0/1次）、支委会第二季度（0/1次）")
    assert "党课全年（0/1次）" in cadence.owed
    assert card.part("attendance").owed == "缺席且未补学4人次，可安排补学"
    assert card.part("dues").owed == "未交48人·月"
    assert card.part("tasks").owed == "逾期未完成：报送计划方案"
    assert all(p.part.points == 0 for p in card.parts if p.part.weight)


def test_half_done_scores_in_between_part_by_part(session, rubric, clock, year_2025):
    card = cards_by_name(session, rubric, 2025, clock.now())["第三党支部"]
    assert figures(card) == {
        "cadence": (2, 5),
        "attendance": (1, 2),
        "dues": (18, 24),
        "tasks": (1, 2),
        "study": (0, 0),
    }
    points = {p.key: p.part.points for p in card.parts}
    assert points == {"cadence": 16, "attendance": 10, "dues": 15, "tasks": 10, "study": None}
    assert card.total == 51
    assert card.part("cadence").owed == (
        "未达标：支委会第三季度（0/1次）、支委会第四季度（0/1次）、党课全年（0/1次）"
    )
    assert card.part("tasks").owed == "逾期完成：整改清单"
    assert card.part("dues").counted == "应交党费24人·月（自1月起），已交18人·月"
    # The words agree with the figure: one missed period per point not earned.
    missed = sum(len(r.missed) for r in card.cadence)
    assert missed == card.part("cadence").part.due - card.part("cadence").part.done
    text = render_explained(card)
    assert text.splitlines()[0] == "第三党支部 51.0分"
    assert "· 会议按期召开 16/40：" in text and "第" not in text.splitlines()[0][5:]


def test_study_carries_no_weight_by_default(session, rubric, clock, year_2025):
    # Plenty of study in 第二党支部 changes nothing: 学习时长 is no ground for assessment.
    for p in (year_2025["other"], year_2025["secretary2"]):
        session.add(StudyRecord(member_id=p.id, minutes=60 * 60, topic="学习", at=at(2025, 6, 1)))
    session.commit()
    assert rubric.score.study == 0
    card = cards_by_name(session, rubric, 2025, clock.now())["第二党支部"]
    assert card.total == 0
    study = card.part("study")
    assert study.part.weight == 0 and study.part.points is None
    assert study.counted == msg.SCORE_STUDY_NO_WEIGHT and "学习时长不作为考核依据" in study.counted
    # Only an office that gives it a weight makes it count (members at the pro-rata pace).
    rubric.score.study = 20
    card = cards_by_name(session, rubric, 2025, clock.now())["第二党支部"]
    assert figures(card)["study"] == (2, 4)
    assert card.total == pytest.approx(round(100 * (20 * 0.5) / 120, 1))


def test_no_rank_unless_the_office_turns_ranking_on(session, rubric, clock, year_2025):
    assert rubric.score.ranking is False
    cards = year_scorecards(session=session, settings=rubric, year=2025, now=clock.now())
    assert [c.branch for c in cards] == ["第一党支部", "第二党支部", "第三党支部"]  # roster order
    assert all(c.rank is None for c in cards)
    assert all("rank" not in c.to_json() for c in cards)
    assert ranks(cards, rubric) == {}
    rubric.score.ranking = True
    cards = year_scorecards(session=session, settings=rubric, year=2025, now=clock.now())
    assert [(c.branch, c.rank) for c in cards] == [
        ("第一党支部", 1),
        ("第三党支部", 2),
        ("第二党支部", 3),
    ]
    assert cards[0].to_json()["rank"] == 1
    assert render_explained(cards[1]).splitlines()[0] == "第三党支部 51.0分 第2名"


def test_a_score_is_per_branch_and_names_nobody(session, rubric, clock, year_2025):
    people = {p.name for p in year_2025.values() if hasattr(p, "userid")}
    for card in year_scorecards(session=session, settings=rubric, year=2025, now=clock.now()):
        text = render_explained(card) + str(card.to_json())
        assert not any(name in text for name in people)
        assert set(card.to_json()) == {"branch", "year", "year_closed", "score", "since", "parts"}


def test_this_year_counts_open_periods_only_once_met(session, rubric, clock, year_2025):
    # In the current year (to 25 Nov 2026) 第一党支部 held Q1–Q3's 支委会 but not yet Q4's or
    # the year's 党课: they are owed, not missed, and cost nothing yet.
    b1 = year_2025["b1"]
    for month in (2, 5, 8):
        hold(session, b1, "支委会", at(2026, month, 20, 14), now=clock.now())
    session.commit()
    card = cards_by_name(session, rubric, 2026, clock.now())["第一党支部"]
    assert not card.closed
    assert figures(card)["cadence"] == (3, 3)
    assert card.part("cadence").owed == (
        "本期还差：支委会第四季度1次（还剩36天）、党课全年1次（还剩36天）"
    )
    rule = next(r for r in card.cadence if r.kind == "支委会")
    assert (rule.required, rule.held, len(rule.missed), len(rule.open_owed)) == (4, 3, 0, 1)


def test_the_last_day_of_a_year_that_is_over_counts_whole(session, rubric, year_2025):
    # A task due on 31 December is due in that year's ledger once the year is over.
    b2 = year_2025["b2"]
    create_tasks(
        session=session, name="接受复核评价", due_on=date(2025, 12, 31), branch_ids=[b2.id],
        created_by=None, now=at(2025, 12, 1),
    )  # fmt: skip
    session.commit()
    on_the_day = cards_by_name(session, rubric, 2025, at(2025, 12, 31, 20))["第二党支部"]
    assert figures(on_the_day)["tasks"] == (0, 1)  # not yet late on the day itself
    after = cards_by_name(session, rubric, 2025, at(2026, 1, 2))["第二党支部"]
    assert figures(after)["tasks"] == (0, 2)
    assert after.part("tasks").owed == "逾期未完成：报送计划方案、接受复核评价"


def test_year_boundaries():
    last = at(2025, 12, 31, 23, 59)
    assert as_of(2025, last) == (last, False)
    end, closed = as_of(2025, at(2026, 1, 1, 0, 0))
    assert closed and end == at(2026, 1, 1, 0, 0) - timedelta(microseconds=1)
    with pytest.raises(ValueError):
        as_of(2027, at(2026, 12, 31, 23, 59))
