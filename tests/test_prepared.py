"""Prepared statements on the hot path read and write exactly what the ORM would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import object_session
from sqlmodel import Session, col

from bot.models import Member, Notice, NoticeReceipt, Org
from bot.prepared import adopt, columns_of, connection, load
from bot.router import read_sender
from bot.store import confirm_notice, receipt_of
from tests.factories import small_bureau

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def _by_userid(dialect: str) -> Any:
    return select(*columns_of(Member)).where(col(Member.userid) == bindparam("userid"))


def _values(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in type(obj).model_fields}


def test_the_sender_loads_as_the_orm_would_load_them(engine):
    with Session(engine) as s:
        small_bureau(s)
        s.commit()
    with Session(engine) as orm:
        expected = orm.execute(
            select(Member, Org)
            .join(Org, col(Org.id) == col(Member.branch_id))
            .where(col(Member.userid) == "zhangsan")
        ).one()
        want = (_values(expected[0]), _values(expected[1]))
    with engine.connect() as conn, conn.begin():
        found = read_sender(conn, "zhangsan")
        assert found is not None and not found.handled
        member, branch = found.member, found.branch
        assert (_values(member), _values(branch)) == want
        assert member.updated_at.tzinfo is not None and member.active is True
        assert read_sender(conn, "nobody") is None
        # Adopted by a session, they are its rows: a change is written on flush, the
        # session's own queries return the same objects, and closing it lets them go.
        with Session(conn, join_transaction_mode="rollback_only") as s:
            adopt(s, (member, branch))
            assert s.get(Member, member.id) is member
            assert object_session(member) is s and not s.dirty
            member.duties = "宣传委员"
            assert [x is member for x in s.dirty] == [True]
            s.flush()
            assert not s.dirty
            s.expire(branch)
            assert branch.name == "第一党支部"  # reloaded through the session
        assert object_session(member) is None and member.duties == "宣传委员"
    with Session(engine) as s:
        assert s.scalars(select(Member).where(col(Member.userid) == "zhangsan")).one().duties == (
            "宣传委员"
        )


def test_the_senders_query_finds_the_messages_record(engine):
    """The dedupe record is read in the sender's query: handled or not, and its reply."""
    from bot.models import InboundMessage

    with Session(engine) as s:
        small_bureau(s)
        s.add(
            InboundMessage(
                dedupe_key="msg:1",
                userid="zhangsan",
                received_at=AT,
                reply='{"mode": "passive", "text": "好"}',
            )
        )
        s.add(InboundMessage(dedupe_key="msg:2", userid="zhangsan", received_at=AT, reply=None))
        s.commit()
    with engine.connect() as conn, conn.begin():
        one, two, three = (read_sender(conn, "zhangsan", k) for k in ("msg:1", "msg:2", "msg:3"))
        assert one and (one.handled, one.reply) == (True, '{"mode": "passive", "text": "好"}')
        assert two and (two.handled, two.reply) == (True, None)
        assert three and (three.handled, three.reply) == (False, None)
        assert read_sender(conn, "nobody", "msg:1") is None


def test_a_row_the_session_holds_comes_back_as_it_is_held(engine):
    with Session(engine) as s:
        small_bureau(s)
        s.commit()
    with Session(engine) as s:
        held = s.scalars(select(Member).where(col(Member.userid) == "zhangsan")).one()
        held.name = "张三丰"  # not flushed yet
        [again] = load(s, connection(s), _by_userid, (Member,), {"userid": "zhangsan"}) or []
        assert again is held and again.name == "张三丰"


def test_pending_changes_are_flushed_before_a_prepared_read(engine):
    from bot.store import unconfirmed_notices

    with Session(engine) as s:
        people = small_bureau(s)
        s.commit()
        notice = Notice(text="新通知", scope="全体", created_at=AT)
        s.add(notice)
        s.flush()
        s.add(NoticeReceipt(notice_id=notice.id, member_id=people["member"].id))  # pending
        assert unconfirmed_notices(session=s, member_id=people["member"].id) == [notice]


def test_confirming_the_latest_takes_the_newest_waiting_notice_once(engine):
    """收到 alone: the newest notice not yet confirmed, chosen and confirmed in one statement;
    then the one before it; then nothing. Another member's receipts are untouched."""
    from bot.store import confirm_latest

    with Session(engine) as s:
        people = small_bureau(s)
        mid, other = int(people["member"].id), int(people["member2"].id)
        older = Notice(text="旧通知", scope="全体", created_at=AT)
        newer = Notice(text="新通知", scope="全体", created_at=AT.replace(hour=3))
        s.add_all([older, newer])
        s.flush()
        for n in (older, newer):
            s.add_all([NoticeReceipt(notice_id=n.id, member_id=m) for m in (mid, other)])
        s.commit()
        ids = (int(newer.id or 0), int(older.id or 0))
    later = AT.replace(hour=5)
    with engine.connect() as conn, conn.begin():
        assert confirm_latest(conn=conn, member_id=mid, at=later) == (ids[0], "新通知")
        assert confirm_latest(conn=conn, member_id=mid, at=later) == (ids[1], "旧通知")
        assert confirm_latest(conn=conn, member_id=mid, at=later) is None
    with Session(engine) as s:
        assert receipt_of(session=s, notice_id=ids[0], member_id=mid).confirmed_at == later  # type: ignore[union-attr]
        assert receipt_of(session=s, notice_id=ids[0], member_id=other).confirmed_at is None  # type: ignore[union-attr]


def test_a_confirmation_reaches_the_receipt_the_session_holds(engine):
    with Session(engine) as s:
        people = small_bureau(s)
        notice = Notice(text="请确认", scope="全体", created_at=AT)
        s.add(notice)
        s.flush()
        s.add(NoticeReceipt(notice_id=notice.id, member_id=people["member"].id))
        s.commit()
        nid, mid = int(notice.id or 0), int(people["member"].id)
    with Session(engine) as s:
        receipt = receipt_of(session=s, notice_id=nid, member_id=mid)
        assert receipt is not None and receipt.confirmed_at is None
        assert confirm_notice(session=s, notice_id=nid, member_id=mid, at=AT)
        assert receipt.confirmed_at == AT
        assert not confirm_notice(session=s, notice_id=nid, member_id=mid, at=AT)
        s.commit()
    with Session(engine) as s:
        assert receipt_of(session=s, notice_id=nid, member_id=mid).confirmed_at == AT  # type: ignore[union-attr]


def test_every_row_loads_in_order_and_held_rows_come_back_as_held(engine):
    from bot.store import unconfirmed_notices

    with Session(engine) as s:
        people = small_bureau(s)
        mid = int(people["member"].id)
        for day in (1, 3, 2):
            n = Notice(text=f"第{day}号", scope="全体", created_at=AT.replace(day=day))
            s.add(n)
            s.flush()
            s.add(NoticeReceipt(notice_id=n.id, member_id=mid))
        s.commit()
    with Session(engine) as s:
        held = s.scalars(select(Notice).where(col(Notice.text) == "第2号")).one()
        found = unconfirmed_notices(session=s, member_id=mid, limit=2)
        assert [n.text for n in found] == ["第3号", "第2号"]  # newest first, limited
        assert found[1] is held
