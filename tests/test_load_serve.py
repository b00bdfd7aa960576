"""A burst of 收到 right after a broadcast, against the bot served live on loopback: every
member's reply is answered, once, and the notice is confirmed once per member
(bench/load_serve.py's correctness checks at test size; the bench adds the 1 s latency target
and sustained load)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from bench._serve_kit import burst, wire
from bot import messages
from bot.app import create_app
from bot.clock import to_utc
from bot.demo import generate_bureau
from bot.models import InboundMessage, Member, NoticeReceipt, OutboxMessage
from tests.fakes.live import LiveServer
from tests.fakes.wecom import configure_wecom, player_for

MEMBERS = 100
BURST_SECONDS = 1.0


@pytest.fixture
def served(runtime, settings, session, clock) -> Iterator[tuple[str, Any]]:
    """The bot on a loopback port, and its callback service (to change the reply budget)."""
    generate_bureau(session=session, members=MEMBERS, branches=5, now=to_utc(clock.now()))
    session.commit()
    configure_wecom(settings, "http://127.0.0.1:9")  # late answers stay in the outbox
    app = create_app(runtime, scheduler=False)
    with LiveServer(app) as url:
        yield url, app.state.callback


def wait_until_handled(engine, keys: list[str], timeout: float = 20.0) -> None:
    """A handler past the reply budget goes on after its empty 200: wait for its reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as s:
            done = s.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(
                    col(InboundMessage.dedupe_key).in_(keys), col(InboundMessage.reply).is_not(None)
                )
            )
        if done == len(keys):
            return
        time.sleep(0.05)


@pytest.mark.parametrize(
    "budget",
    [None, 0.0],
    # usual: 收到 is quick, handled on the event loop and answered in the HTTP reply;
    # tight: handled on the handler threads with no time to wait for them, so answers go
    # through the outbox (but for one whose handler is already storing its passive reply).
    ids=["usual_budget", "tight_budget"],
)
def test_a_burst_of_replies_after_a_broadcast_is_answered_and_confirmed_exactly_once(
    served, engine, budget, monkeypatch
):
    bot_url, callback = served
    with player_for(bot_url) as wecom:
        said = wecom.say("office", "通知 全体 周五下午三点在三楼会议室学习，请准时参加").content
        m = re.search(r"已发出通知(\d+)，共(\d+)人", said)
        assert m, said
        notice_id, recipients = int(m.group(1)), int(m.group(2))
        assert recipients == MEMBERS

        with Session(engine) as s:
            userids = list(
                s.scalars(
                    select(col(Member.userid))
                    .join(NoticeReceipt, col(NoticeReceipt.member_id) == col(Member.id))
                    .where(col(NoticeReceipt.notice_id) == notice_id)
                    .order_by(col(Member.userid))
                )
            )
        msg_ids = {u: 7_000_000 + i for i, u in enumerate(userids)}
        reqs = [wire(wecom, u, "收到", msg_ids[u], close=True) for u in userids]
        port = urlsplit(bot_url).port
        assert port is not None
        if budget is not None:
            callback.budget = budget
            monkeypatch.setattr(callback.runtime.router, "is_quick", lambda text: False)
        shots = asyncio.run(burst(port, reqs, BURST_SECONDS))

        assert Counter(s.status for s in shots) == {200: MEMBERS}, [s.error for s in shots]
        confirmed = messages.CONFIRM_DONE.format(id=notice_id, text="")[:-2]
        passive = {}
        for u, shot in zip(userids, shots, strict=True):
            if shot.body:  # the reply verifies and decrypts, and confirms this notice
                passive[u] = wecom.read(200, shot.body.decode()).content
                assert passive[u].startswith(confirmed), passive[u]

    burst_keys = sorted(f"msg:{i}" for i in msg_ids.values())
    wait_until_handled(engine, burst_keys)
    with Session(engine) as s:
        receipts = s.execute(
            select(col(NoticeReceipt.member_id), col(NoticeReceipt.confirmed_at)).where(
                col(NoticeReceipt.notice_id) == notice_id
            )
        ).all()
        late = [  # answers that went to the outbox (key reply:<dedupe key>:<part>)
            (row.recipient, str(row.body.get("text", "")))
            for row in s.scalars(select(OutboxMessage).where(col(OutboxMessage.rule) == "reply"))
            if row.key.rsplit(":", 1)[0].removeprefix("reply:") in burst_keys
        ]
        inbound = Counter(
            s.scalars(
                select(col(InboundMessage.userid)).where(
                    col(InboundMessage.dedupe_key).in_(burst_keys)
                )
            )
        )
    # None lost: every recipient confirmed once (the receipt is unique per member).
    assert len(receipts) == MEMBERS
    assert all(at is not None for _, at in receipts)
    # Each message handled once, and each member answered once: in the HTTP reply or, when
    # the handler passed the reply budget, through the outbox — never both.
    assert inbound == Counter(userids)
    by_outbox = Counter(u for u, _ in late)
    answers = Counter({u: int(u in passive) + by_outbox[u] for u in userids})
    assert set(answers.values()) == {1}, answers
    assert all(text.startswith(confirmed) for _, text in late), late
    if budget is not None:
        assert late, "with a tight budget, answers go through the outbox"
