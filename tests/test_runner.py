"""The planning pass: sending policy (workdays, window, merge, spread), exactly once,
just in time, catch-up after downtime, nudge counting, milestones written as tasks."""

from __future__ import annotations

import io
import logging
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from bot.channels.console import ConsoleChannel
from bot.clock import SHANGHAI, FixedClock, local
from bot.models import DuesRecord, Notice, NoticeReceipt, OutboxMessage, Task
from bot.runtime import Runtime
from schedules import RULES
from schedules.runner import MERGED, forecast, last_pass, plan_and_enqueue, run_pass
from tests.factories import member, small_bureau


def sh(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def rows(engine, **where) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        stmt = select(OutboxMessage).order_by(col(OutboxMessage.id))
        for name, value in where.items():
            stmt = stmt.where(getattr(OutboxMessage, name) == value)
        return list(s.scalars(stmt))


# 2026-12-04 is a Friday and December's 党费日 (the 5th is a Saturday).
DUES_DAY = sh(2026, 12, 4, 9, 20)


def test_a_pass_enqueues_due_reminders_once(engine, settings, bureau):
    first = run_pass(engine, settings, DUES_DAY)
    assert first.enqueued > 0
    again = run_pass(engine, settings, DUES_DAY)
    later = run_pass(engine, settings, DUES_DAY + timedelta(minutes=1))
    assert again.enqueued == 0 and later.enqueued == 0
    sent = rows(engine)
    keys = [r.key for r in sent]
    assert len(keys) == len(set(keys))
    assert "dues:2026-12:member-{}:zhangsan".format(bureau["member"].id) in keys
    for r in sent:
        assert r.key.endswith(":" + r.recipient)
        at = local(r.due_at)
        assert at.minute not in (0, 30) and (8, 30) <= (at.hour, at.minute) < (18, 0)
        assert at.date() == date(2026, 12, 4)


def test_reminders_due_to_one_person_at_once_are_merged(engine, settings, bureau):
    run_pass(engine, settings, DUES_DAY)
    secretary = [r for r in rows(engine, recipient="wangshuji")]
    messages = [r for r in secretary if r.status != MERGED]
    markers = [r for r in secretary if r.status == MERGED]
    assert len(messages) == 1 and markers
    text = messages[0].body["text"]
    assert text.startswith(f"您有{len(markers) + 1}条提醒")
    assert "12月党费请按时交纳" in text and "尚未交纳（" in text
    for m in markers:
        assert m.body == {"msgtype": "merged", "into": messages[0].key}


def test_nothing_goes_before_its_moment_and_a_payment_in_between_is_respected(
    engine, settings, bureau, session
):
    early = run_pass(engine, settings, sh(2026, 12, 4, 8, 45))
    assert not any(r.rule == "dues" for r in rows(engine))
    assert early.next_at is not None and local(early.next_at) > sh(2026, 12, 4, 9, 0)
    session.add(
        DuesRecord(member_id=bureau["member"].id, month="2026-12", paid_at=sh(2026, 12, 4, 8, 50))
    )
    session.commit()
    run_pass(engine, settings, DUES_DAY)
    keys = {r.key for r in rows(engine)}
    assert not any(k.startswith(f"dues:2026-12:member-{bureau['member'].id}:") for k in keys)
    assert any(k.startswith(f"dues:2026-12:member-{bureau['member2'].id}:") for k in keys)


def test_outside_the_window_and_on_days_off_nothing_goes(engine, settings, bureau):
    assert run_pass(engine, settings, sh(2026, 12, 4, 7, 0)).enqueued == 0
    assert run_pass(engine, settings, sh(2026, 12, 5, 10, 0)).enqueued == 0  # Saturday
    assert run_pass(engine, settings, sh(2026, 10, 2, 10, 0)).enqueued == 0  # 国庆
    assert rows(engine) == []


def test_a_reminder_appearing_later_goes_alone(engine, settings, bureau, session):
    run_pass(engine, settings, DUES_DAY)
    before = {r.key for r in rows(engine)}
    session.add(
        Task(
            name="补报材料",
            branch_id=bureau["b1"].id,
            due_on=date(2026, 12, 5),
            created_at=DUES_DAY,
        )
    )
    session.commit()
    result = run_pass(engine, settings, DUES_DAY + timedelta(minutes=5))
    new = [r for r in rows(engine) if r.key not in before]
    assert result.enqueued == 1 and len(new) == 1
    assert new[0].recipient == "wangshuji" and new[0].key.startswith("task:")
    assert new[0].body["text"].startswith("第一党支部：「补报材料」")


def test_catch_up_sends_what_is_still_relevant_and_drops_the_rest(
    engine, settings, session, caplog
):
    root = small_bureau(session)
    birthday = member(session, root["b1"], "寿星", userid="shouxing", joined_on=date(2010, 11, 24))
    session.add(
        Task(
            name="周五截止",
            branch_id=root["b1"].id,
            due_on=date(2026, 11, 27),
            created_at=sh(2026, 11, 1, 9),
        )
    )
    session.commit()
    run_pass(engine, settings, sh(2026, 11, 23, 17, 0))  # Monday: last pass before the outage
    assert last_pass(session) is not None
    caplog.set_level(logging.INFO, logger="mofan.planner")
    # Down all of Tuesday 24th; back on Wednesday morning.
    result = run_pass(engine, settings, sh(2026, 11, 25, 10, 7))
    assert result.days == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
    keys = {r.key for r in rows(engine)}
    # The T-3 of Friday's task was due Tuesday and stays relevant until the T-1 step.
    assert "task:{}:T-3:2026-11-27:wangshuji".format(_task_id(session, "周五截止")) in keys
    # The birthday greeting was for Tuesday only: dropped, with a log line.
    assert not any(k.startswith(f"birthday:2026:member-{birthday.id}") for k in keys)
    assert any("dropped birthday:2026:member-" in m for m in caplog.messages)
    assert result.dropped >= 1


def _task_id(session, name):  # type: ignore[no-untyped-def]
    session.rollback()
    return session.scalar(select(Task.id).where(Task.name == name))


def test_notice_nudge_is_counted_on_the_receipt(engine, settings, bureau, session):
    n = Notice(
        text="请报送推进情况",
        scope="全体",
        sender_id=bureau["office"].id,
        created_at=sh(2026, 11, 24, 9, 0),
    )
    session.add(n)
    session.flush()
    for p in ("member", "member2"):
        session.add(NoticeReceipt(notice_id=n.id, member_id=bureau[p].id))
    session.add(
        NoticeReceipt(
            notice_id=n.id, member_id=bureau["other"].id, confirmed_at=sh(2026, 11, 24, 10)
        )
    )
    session.commit()
    run_pass(engine, settings, sh(2026, 11, 25, 9, 30))
    run_pass(engine, settings, sh(2026, 11, 25, 9, 31))
    session.rollback()
    receipts = {r.member_id: r for r in session.scalars(select(NoticeReceipt))}
    assert receipts[bureau["member"].id].nudges == 1
    assert receipts[bureau["member"].id].last_nudged_at is not None
    assert receipts[bureau["other"].id].nudges == 0
    nudges = [r for r in rows(engine) if ":nudge:" in r.key]
    assert {r.recipient for r in nudges} == {"zhangsan", "zhaosi"}
    assert all(r.body["msgtype"] == "template_card" for r in nudges)


def test_config_milestones_are_written_as_tasks(engine, settings, bureau, session):
    run_pass(engine, settings, sh(2026, 4, 20, 10, 0))
    session.rollback()
    tasks = list(session.scalars(select(Task).where(Task.kind == "milestone")))
    assert {(t.name, t.due_on) for t in tasks} == {
        ("全覆盖启动", date(2026, 3, 31)),
        ("报送基层党组织计划方案", date(2026, 4, 30)),
    }
    assert {t.branch_id for t in tasks} == {bureau["b1"].id, bureau["b2"].id}
    run_pass(engine, settings, sh(2026, 4, 20, 10, 1))
    session.rollback()
    assert len(list(session.scalars(select(Task)))) == 4


def test_a_failing_rule_does_not_stop_the_others(engine, settings, bureau, monkeypatch, caplog):
    def broken(now, data, settings):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    monkeypatch.setattr(RULES[0], "due", broken)
    with caplog.at_level(logging.ERROR, logger="mofan.planner"):
        assert run_pass(engine, settings, DUES_DAY).enqueued > 0
    assert any("rule cadence failed" in m for m in caplog.messages)


def test_forecast_leaves_out_what_is_sent_and_what_is_past(engine, settings, bureau):
    days = [date(2026, 12, 4) + timedelta(days=i) for i in range(14)]
    before = forecast(engine, settings, sh(2026, 12, 4, 8, 0), days)
    assert any(r.rule == "dues" for p in before for r in p.reminders)
    run_pass(engine, settings, DUES_DAY)
    after = forecast(engine, settings, DUES_DAY, days)
    assert not any(r.rule == "dues" for p in after for r in p.reminders)
    assert any(local(p.send_at).date() == date(2026, 12, 11) for p in after)  # theme day


def test_plan_and_enqueue_uses_the_runtime_clock(engine, settings, bureau):
    console = ConsoleChannel(out=io.StringIO())
    rt = Runtime(
        settings=settings,
        clock=FixedClock(DUES_DAY),
        engine_override=engine,
        channels_override={"console": console, "wecom": console, "robot": console},
    )
    assert plan_and_enqueue(rt) > 0
    assert plan_and_enqueue(rt) == 0


def test_a_pass_outside_the_window_keeps_the_catch_up_for_the_next_opening(
    engine, settings, bureau
):
    run_pass(engine, settings, sh(2026, 12, 3, 17, 0))  # Thursday, the last pass in the window
    assert run_pass(engine, settings, sh(2026, 12, 4, 7, 0)).enqueued == 0  # before the window
    # Down for the rest of Friday; the weekend passes plan nothing and move nothing on.
    assert run_pass(engine, settings, sh(2026, 12, 5, 10, 0)).enqueued == 0
    monday = run_pass(engine, settings, sh(2026, 12, 7, 8, 31))
    assert monday.enqueued > 0
    dues = [r for r in rows(engine) if r.rule == "dues"]
    assert dues and all(local(r.due_at).date() == date(2026, 12, 4) for r in dues)


def test_catch_up_starts_after_a_day_that_was_finished(settings):
    from schedules.runner import calendar_for, catch_up_from

    cal = calendar_for(settings.calendar)
    monday = sh(2026, 11, 30, 9, 0)
    assert catch_up_from(None, monday, settings, cal) == date(2026, 11, 30)
    assert catch_up_from(sh(2026, 11, 27, 17, 0), monday, settings, cal) == date(2026, 11, 27)
    # A pass in the window's last minute saw all of Friday.
    assert catch_up_from(sh(2026, 11, 27, 17, 59), monday, settings, cal) == date(2026, 11, 28)
    # Never more than ten days back; a clock set back starts afresh.
    assert catch_up_from(sh(2026, 10, 1, 9, 0), monday, settings, cal) == date(2026, 11, 20)
    assert catch_up_from(sh(2026, 12, 1, 9, 0), monday, settings, cal) == date(2026, 11, 30)


def test_only_workdays_are_planned_on_catch_up(engine, settings, bureau):
    run_pass(engine, settings, sh(2026, 11, 27, 16, 0))
    result = run_pass(engine, settings, sh(2026, 11, 30, 8, 31))
    assert result.days == [date(2026, 11, 27), date(2026, 11, 30)]


def test_a_roster_change_reaches_the_next_pass(engine, settings, bureau, session):
    run_pass(engine, settings, sh(2026, 11, 25, 9, 30))
    newcomer = member(session, bureau["b2"], "新人", userid="xinren", joined_on=date(2016, 11, 25))
    session.commit()
    run_pass(engine, settings, sh(2026, 11, 25, 9, 31))
    assert any(r.key == f"birthday:2026:member-{newcomer.id}:xinren" for r in rows(engine))


def test_history_counts_follow_a_late_change(engine, settings, bureau, session):
    from schedules.data import load_plan_data
    from schedules.runner import calendar_for

    cal = calendar_for(settings.calendar)
    now = sh(2026, 11, 25, 10, 0)

    def kinds():  # type: ignore[no-untyped-def]
        with Session(engine) as s:
            data = load_plan_data(s, settings, cal, first_day=now.date(), now=now)
        return sorted(m.kind for m in data.meetings)

    assert kinds() == []
    from bot.models import Meeting

    old = Meeting(
        branch_id=bureau["b1"].id,
        kind="党课",
        starts_at=sh(2026, 8, 20, 14),
        ends_at=sh(2026, 8, 20, 16),
        status="held",
        created_at=now,
    )
    session.add(old)
    session.commit()
    assert kinds() == ["党课"]
    old.status = "cancelled"
    session.commit()
    assert kinds() == []


def test_dues_history_and_study_are_read_only_when_a_rule_needs_them(engine, settings, bureau):
    from schedules import dues
    from schedules.data import load_plan_data
    from schedules.runner import calendar_for, collect

    cal = calendar_for(settings.calendar)
    with Session(engine) as s:
        ordinary = load_plan_data(
            s, settings, cal, first_day=date(2026, 11, 25), now=sh(2026, 11, 25, 10)
        )
        dues_day = load_plan_data(
            s, settings, cal, first_day=date(2026, 12, 4), now=sh(2026, 12, 4, 10)
        )
        quarter_end = load_plan_data(
            s, settings, cal, first_day=date(2026, 12, 31), now=sh(2026, 12, 31, 10)
        )
    assert not ordinary.dues_history and not ordinary.study_loaded
    assert dues_day.dues_history and not dues_day.study_loaded
    assert quarter_end.study_loaded
    # A rule that would need what was not read fails loudly (logged), never silently.
    with pytest.raises(RuntimeError):
        dues.due(sh(2026, 12, 4, 10), ordinary, settings)
    assert collect(sh(2026, 11, 25, 10), ordinary, settings) is not None
