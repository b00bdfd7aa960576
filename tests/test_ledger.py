"""bot/ledger.py: the year-end 台账 workbook, opened with openpyxl and checked against the
records that produced it — sheets, headers, print setup, one row of each register, the
totals, and the year's edges (31 December 23:30 in Shanghai is that year; 1 January 00:10
the next)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.clock import SHANGHAI, to_utc
from bot.ledger import (
    BIRTHDAY_COLUMNS,
    DEED_COLUMNS,
    DUES_COLUMNS,
    MEETING_COLUMNS,
    NOTICE_COLUMNS,
    STUDY_BRANCH_COLUMNS,
    STUDY_COLUMNS,
    TASK_COLUMNS,
    write_ledger,
)
from bot.models import Meeting, StudyRecord, Task
from bot.scorecard import year_scorecards
from bot.store import (
    ask_leave,
    confirm_notice,
    create_notice,
    create_tasks,
    record_deed,
    record_dues,
    record_makeup,
    record_progress,
    record_study,
    schedule_meeting,
    sign_in,
)
from tests.factories import small_bureau

SHEETS = [
    "汇总",
    "合规自查",
    "会议台账",
    "学习台账",
    "通知台账",
    "党费台账",
    "任务台账",
    "政治生日",
    "办实事",
]


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return to_utc(datetime(y, m, d, hh, mm, tzinfo=SHANGHAI))


def meeting(session, branch, kind, starts, *, now, topic="", minutes=90):
    m, _ = schedule_meeting(
        session=session, branch_id=branch.id, kind=kind, group_id=None, starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes), place="三楼会议室", topic=topic,
        created_by=None, now=now,
    )  # fmt: skip
    return m


@pytest.fixture
def records(session, clock):
    """A year of 第一党支部's records in 2025, and a few just outside it."""
    now = clock.now()
    p = small_bureau(session)
    b1, sec, com, zhang, zhao = p["b1"], p["secretary"], p["committee"], p["member"], p["member2"]
    # 支委会 in March: the secretary signs in, the committee member misses it and makes it up.
    m1 = meeting(session, b1, "支委会", at(2025, 3, 10, 14, 30), now=now, topic="研究发展党员工作")
    m1.first_topic = "学习总书记重要讲话精神"
    sign_in(session=session, meeting_id=m1.id, member_id=sec.id, at=m1.starts_at)
    record_makeup(session=session, meeting_id=m1.id, member_id=com.id, at=at(2025, 3, 12))
    # 主题党日 at 23:30 on New Year's Eve: still 2025 in Shanghai (15:30 UTC).
    m2 = meeting(session, b1, "主题党日", at(2025, 12, 31, 23, 30), now=now, minutes=20)
    for who in (sec, zhang):
        sign_in(session=session, meeting_id=m2.id, member_id=who.id, at=m2.starts_at)
    ask_leave(
        session=session, meeting_id=m2.id, member_id=com.id, reason="病假", at=at(2025, 12, 30)
    )
    # 10 minutes into 2026 in Shanghai (still 31 December in UTC): next year's.
    meeting(session, b1, "支委会", at(2026, 1, 1, 0, 10), now=now, topic="新年第一次支委会")
    cancelled = meeting(session, b1, "党课", at(2025, 6, 1, 9), now=now)
    cancelled.status = "cancelled"
    record_study(session=session, member=zhang, minutes=90, topic="党章", at=at(2025, 4, 1))
    record_study(session=session, member=zhang, minutes=30, topic="党史", at=at(2025, 8, 1))
    record_study(
        session=session, member=zhang, minutes=30, topic="跨年", at=at(2025, 12, 31, 23, 50)
    )
    record_study(session=session, member=zhang, minutes=600, topic="新年", at=at(2026, 1, 1, 0, 5))
    record_study(session=session, member=sec, minutes=60, topic="党章", at=at(2025, 4, 2))
    notice = create_notice(
        session=session, text="关于开展主题教育的通知", scope="第一党支部", sender=p["office"],
        recipients=[sec, com, zhang, zhao], now=at(2025, 5, 6, 10), deadline=None,
    )  # fmt: skip
    confirm_notice(
        session=session, notice_id=notice.id, member_id=zhang.id, at=at(2025, 5, 6, 11, 20)
    )
    confirm_notice(session=session, notice_id=notice.id, member_id=sec.id, at=at(2025, 5, 7, 9, 5))
    record_dues(
        session=session, member=zhang, months=[f"2025-{m:02d}" for m in range(1, 7)],
        at=at(2025, 1, 5), recorded_by=zhang,
    )  # fmt: skip
    (task,) = create_tasks(
        session=session, name="报送计划方案", due_on=date(2025, 4, 30), branch_ids=[b1.id],
        created_by=p["office"], now=at(2025, 3, 1),
    )  # fmt: skip
    record_progress(
        session=session, task=task, member=sec, note="已起草", done=False, at=at(2025, 4, 20)
    )
    record_progress(
        session=session, task=task, member=sec, note="已报送", done=True, at=at(2025, 4, 28)
    )
    session.add(
        Task(name="接受复核评价", branch_id=b1.id, due_on=date(2025, 12, 31), kind="milestone")
    )
    record_deed(session=session, member=zhang, text="帮助社区老人办理医保", at=at(2025, 9, 9))
    zhao.joined_on = date(2024, 8, 1)  # a 预备党员 who joined last year
    session.commit()
    return p


def export(session, settings, tmp_path, year, now, **kw):
    path = tmp_path / f"ledger-{year}.xlsx"
    result = write_ledger(session=session, settings=settings, year=year, now=now, path=path, **kw)
    assert result.path == path.resolve() and not (tmp_path / f"{path.name}.part").exists()
    return result, openpyxl.load_workbook(path)


def section(ws, title_prefix, first_row=3):
    """The data rows of one branch's section: after its title, up to its 小计 (inclusive)."""
    rows = list(ws.iter_rows(min_row=first_row, values_only=True))
    start = next(i for i, r in enumerate(rows) if str(r[0]).startswith(title_prefix))
    end = next(i for i in range(start, len(rows)) if rows[i][0] == "小计")
    return rows[start + 1 : end + 1]


def headers(ws, row=2):
    return [c.value for c in ws[row] if c.value is not None]


def test_sheets_headers_and_print_setup(session, settings, clock, tmp_path, records):
    result, wb = export(session, settings, tmp_path, 2025, clock.now())
    assert wb.sheetnames == SHEETS
    assert result.closed and result.branches == 2 and result.meetings == 2
    expected = {
        "会议台账": MEETING_COLUMNS, "学习台账": STUDY_COLUMNS, "通知台账": NOTICE_COLUMNS,
        "党费台账": DUES_COLUMNS, "任务台账": TASK_COLUMNS, "政治生日": BIRTHDAY_COLUMNS,
        "办实事": DEED_COLUMNS,
    }  # fmt: skip
    for name, columns in expected.items():
        assert headers(wb[name]) == [c.header for c in columns]
    assert headers(wb["合规自查"], row=4)[:3] == ["支部", "项目", "权重"]
    assert headers(wb["汇总"])[:4] == ["支部", "党员数", "支部党员大会\n应开", "支部党员大会\n实开"]
    assert "排名" not in headers(wb["汇总"])  # ranking is off by default
    for ws in wb.worksheets:
        assert ws["A1"].value.startswith("机关党委 2025年")
        header_row = 4 if ws.title == "合规自查" else 2
        assert ws.freeze_panes == f"A{header_row + 1}"
        assert ws.print_title_rows == f"${header_row}:${header_row}"
        assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9  # A4
        assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
    assert wb["会议台账"].column_dimensions["J"].width == 28
    # Each branch's section starts a new printed page.
    assert [b.id for b in wb["会议台账"].row_breaks.brk] == [6]


def test_meeting_register_rows_and_year_edges(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    ws = wb["会议台账"]
    rows = section(ws, "第一党支部")
    assert len(rows) == 3  # March, New Year's Eve, 小计; not the cancelled 党课 nor 1 January
    march, eve, subtotal = rows
    assert march == (
        datetime(2025, 3, 10), "14:30–16:00", "支委会", None, "三楼会议室", "研究发展党员工作",
        "学习总书记重要讲话精神", 2, 1, "王书记", None, None, "李委员",
    )  # fmt: skip
    assert eve[:3] == (datetime(2025, 12, 31), "23:30–23:50", "主题党日")
    assert eve[7:] == (4, 2, "王书记、张三", "李委员（病假）", "赵四", None)
    assert subtotal[:2] == ("小计", "2次") and subtotal[7:9] == (6, 3)
    assert ws["A4"].is_date and ws["A4"].number_format == "yyyy-mm-dd"
    last = [c.value for c in ws[ws.max_row]]
    assert last[:2] == ["合计", "2次"] and last[7:9] == [6, 3]
    _, wb26 = export(session, settings, tmp_path, 2026, clock.now())
    (jan1, _) = section(wb26["会议台账"], "第一党支部")
    assert jan1[:3] == (datetime(2026, 1, 1), "00:10–01:40", "支委会")
    assert wb26["汇总"]["A1"].value == "机关党委 2026年汇总（截至11月25日）"


def test_study_register(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    rows = section(wb["学习台账"], "第一党支部")
    by_name = {r[0]: r for r in rows}
    # 90 + 30 + 30 minutes; the 23:50 New Year's Eve session counts, the 00:05 one does not.
    assert by_name["张三"] == ("张三", None, "正式党员", 2.5, 32, pytest.approx(2.5 / 32), 32)
    assert by_name["王书记"][:5] == ("王书记", "书记", "正式党员", 1, 56)
    assert by_name["赵四"][2:4] == ("预备党员", 0)
    assert rows[-1][:6] == ("小计", "4人", None, 3.5, 32 + 56 + 32 + 56, pytest.approx(3.5 / 176))


def test_office_copy_shows_study_only_as_branch_aggregates(
    session, settings, clock, tmp_path, records
):
    _, wb = export(session, settings, tmp_path, 2025, clock.now(), member_study=False)
    ws = wb["学习台账"]
    assert "书记" in ws["A2"].value  # the note: per-person hours are the member's and secretary's
    assert headers(ws, row=3) == [c.header for c in STUDY_BRANCH_COLUMNS]
    values = [v for row in ws.iter_rows(values_only=True) for v in row if v is not None]
    assert not {"张三", "王书记", "李委员", "赵四"} & set(values)
    first = next(r for r in ws.iter_rows(values_only=True) if r[0] == "第一党支部")
    assert first == ("第一党支部", 4, 3.5, 0.9, 44, 0)
    assert list(ws.iter_rows(values_only=True))[-1][:3] == ("合计", 8, 3.5)


def test_notice_register(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    row, subtotal = section(wb["通知台账"], "第一党支部")
    assert row[1:7] == (
        datetime(2025, 5, 6, 10, 0),
        "关于开展主题教育的通知",
        "第一党支部",
        4,
        2,
        0.5,
    )
    assert row[7] == "王书记 5-7 9:05、张三 5-6 11:20"
    assert row[8] == "李委员、赵四"
    assert subtotal[:7] == ("小计", "1条", None, None, 4, 2, 0.5)


def test_dues_register(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    ws = wb["党费台账"]
    rows = {r[0]: r for r in section(ws, "第一党支部")}
    paid = datetime(2025, 1, 5)
    assert rows["张三"] == ("张三", *[paid] * 6, *["未交"] * 6, 6, 6)
    # Records begin with the first meeting (10 March): January and February are not asked.
    assert rows["王书记"] == ("王书记", None, None, *["未交"] * 10, 0, 10)
    assert rows["小计"] == ("小计", *[1] * 6, *[0] * 6, 6, 10 + 10 + 6 + 10)
    zhang = next(r for r in ws.iter_rows() if r[0].value == "张三")
    cell = zhang[1]
    assert cell.is_date and cell.number_format == "m/d"


def test_task_register(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    plan, review, subtotal = section(wb["任务台账"], "第一党支部")
    assert plan == (
        "任务", "报送计划方案", datetime(2025, 4, 30), datetime(2025, 4, 28), "按期完成",
        "4月20日 王书记：已起草\n4月28日 王书记：已报送",
    )  # fmt: skip
    assert review == ("节点", "接受复核评价", datetime(2025, 12, 31), None, "逾期未完成", None)
    assert subtotal[:2] == ("小计", "2项，按期完成1项")


def test_birthdays_and_deeds(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    rows = section(wb["政治生日"], "第一党支部")
    assert rows[0] == ("王书记", "正式党员", datetime(2010, 7, 1), None, datetime(2025, 7, 1), 15)
    assert rows[-2][0] == "赵四" and rows[-2][4:] == (datetime(2025, 8, 1), 1)
    assert rows[-1] == ("小计", "4人", None, None, None, None)
    deed, subtotal = section(wb["办实事"], "第一党支部")
    assert deed == (datetime(2025, 9, 9), "张三", "帮助社区老人办理医保")


def test_summary_agrees_with_the_scorecards(session, settings, clock, tmp_path, records):
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    ws = wb["汇总"]
    head = headers(ws)
    rows = {
        r[0]: dict(zip(head, r, strict=False)) for r in ws.iter_rows(min_row=3, values_only=True)
    }
    cards = {
        c.branch: c
        for c in year_scorecards(session=session, settings=settings, year=2025, now=clock.now())
    }
    first, card = rows["第一党支部"], cards["第一党支部"]
    assert first["党员数"] == 4
    # Records begin on 10 March: 支委会 is owed in ten months and was held once.
    assert (first["支委会\n应开"], first["支委会\n实开"]) == (10, 1)
    assert (first["主题党日\n应开"], first["主题党日\n实开"]) == (10, 1)
    assert first["出勤率"] == pytest.approx(card.part("attendance").part.ratio)
    assert first["通知确认率"] == 0.5
    assert first["任务按期率"] == 0.5
    assert first["合规自查分"] == card.total
    assert first["人均学时"] == 0.9  # 3.5 hours over 4 members
    total = rows["合计"]
    assert total["党员数"] == 8 and total["支委会\n应开"] == 20 and total["支委会\n实开"] == 1
    score_rows = [
        r for r in wb["合规自查"].iter_rows(min_row=5, values_only=True) if r[0] == "第一党支部"
    ]
    assert [r[1] for r in score_rows] == [
        "会议按期召开",
        "参会出勤",
        "党费按月交纳",
        "任务和节点按期完成",
        "学习",
        "总分",
    ]
    assert score_rows[-1][6] == card.total
    assert "学习时长不作为考核依据" in score_rows[4][7]


def test_rank_column_only_when_ranking_is_on(session, settings, clock, tmp_path, records):
    settings.score.ranking = True
    _, wb = export(session, settings, tmp_path, 2025, clock.now())
    head = headers(wb["汇总"])
    assert head[-1] == "排名"
    ranks = [
        r[len(head) - 1]
        for r in wb["汇总"].iter_rows(min_row=3, values_only=True)
        if r[0] != "合计"
    ]
    assert sorted(ranks) == [1, 2]


def test_one_branch_and_a_year_not_begun(session, settings, clock, tmp_path, records):
    result, wb = export(session, settings, tmp_path, 2025, clock.now(), branches=[records["b2"]])
    assert result.branches == 1
    assert wb["会议台账"]["A1"].value == "机关党委 第二党支部 2025年会议台账"
    assert [r[0] for r in wb["汇总"].iter_rows(min_row=3, values_only=True)] == [
        "第二党支部",
        "合计",
    ]
    with pytest.raises(ValueError):
        write_ledger(
            session=session, settings=settings, year=2027, now=clock.now(), path=tmp_path / "x.xlsx"
        )
    assert not (tmp_path / "x.xlsx").exists()


def test_nothing_is_written_to_the_database(session, settings, clock, tmp_path, records):
    def counts():
        return [
            session.scalar(select(func.count()).select_from(t))
            for t in (Meeting, StudyRecord, Task)
        ]

    before = counts()
    export(session, settings, tmp_path, 2025, clock.now())
    assert not session.dirty and not session.new
    assert counts() == before


def test_a_failure_leaves_no_file_and_no_temporary_files(
    session, settings, clock, tmp_path, records, monkeypatch
):
    import os

    from openpyxl.worksheet import _writer

    import bot.ledger

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(bot.ledger._Deeds, "add", broken)
    with pytest.raises(RuntimeError):
        write_ledger(
            session=session, settings=settings, year=2025, now=clock.now(), path=tmp_path / "x.xlsx"
        )
    assert not list(tmp_path.glob("x.xlsx*"))
    assert not [f for f in _writer.ALL_TEMP_FILES if os.path.exists(f)]
