"""Per-handler latency through the router (target: every handler < 20 ms at p99) on a bureau of
10,000 members in 300 branches with a year of meetings, attendance, study, notices and dues.

Each sample is one ``Router.handle`` call — member lookup, the handler, its queries and writes
and the commit — timed in-process (no HTTP, no WeCom). Senders rotate over the branches so
that no one row is hot. Baselines from the same run: a transaction doing ``SELECT 1``, and
``帮助`` (the router with the least possible handler).

Run:  python bench/handlers_latency.py [--db URL] [--members 10000] [--branches 300] [--n 200]
      (PostgreSQL: flock /tmp/pg.lock python bench/handlers_latency.py --db postgresql+psycopg://…;
      the database's public schema is dropped and rebuilt.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from sqlalchemy import select, text  # noqa: E402
from sqlmodel import Session, col  # noqa: E402

from bot.clock import SHANGHAI, FixedClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.demo import generate_bureau  # noqa: E402
from bot.models import Feedback, Meeting, Member, Notice, Org  # noqa: E402
from bot.router import Inbound, Router  # noqa: E402
from bot.store import create_tasks, schedule_meeting  # noqa: E402
from tests.fakes.database import fresh_database  # noqa: E402

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=SHANGHAI)
TARGET_MS = 20.0


def build(url: str, members: int, branches: int) -> None:
    engine = fresh_database(url)
    with Session(engine) as session:
        t = time.perf_counter()
        counts = generate_bureau(
            session=session, members=members, branches=branches, now=NOW, year_of_data=True
        )
        session.commit()
        print(f"generated in {time.perf_counter() - t:.1f} s: {counts}")
    if url.startswith("postgresql"):
        # What autovacuum would have done by the time a real bureau has a year of data.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def fixtures(session: Session, clock: FixedClock) -> dict[str, list[str]]:
    """Senders by role, one per branch, and a meeting open for 签到 in each branch."""
    now = clock.now()
    branches = list(
        session.scalars(select(Org).where(col(Org.kind) == "党支部").order_by(col(Org.id)))
    )
    secretaries, members = [], []
    for b in branches:
        people = list(
            session.scalars(
                select(Member)
                .where(col(Member.branch_id) == b.id)
                .order_by(col(Member.id))
                .limit(8)
            )
        )
        secretaries.append(next(p.userid for p in people if "书记" in p.duties))
        members.append(next(p.userid for p in people if not p.duties and not p.roles))
        schedule_meeting(
            session=session, branch_id=b.id or 0, kind="支部党员大会", group_id=None,
            starts_at=now + timedelta(minutes=10), ends_at=now + timedelta(hours=2),
            place="会议室", topic="bench", created_by=None, now=now,
        )  # fmt: skip
    create_tasks(
        session=session, name="报送整改清单", due_on=(NOW + timedelta(days=20)).date(),
        branch_ids=[b.id or 0 for b in branches], created_by=None, now=now,
    )  # fmt: skip
    session.commit()
    leaders = list(session.scalars(select(Member.userid).where(col(Member.roles) == "党委委员")))
    return {"member": members, "secretary": secretaries, "office": ["office"], "leader": leaders}


def cases(
    people: dict[str, list[str]], branches: list[str]
) -> dict[str, tuple[str, Callable[[int], str]]]:
    """name → (role, message for iteration i)."""
    return {
        "帮助 (baseline)": ("member", lambda i: "帮助"),
        "签到": ("member", lambda i: "签到"),
        "请假": ("member", lambda i: "请假 出差"),
        "学习": ("member", lambda i: "学习 40分钟 第一议题"),
        "收到": ("member", lambda i: "收到"),
        "我的": ("member", lambda i: "我的"),
        "已交党费": ("member", lambda i: "已交党费 11月"),
        "意见": ("member", lambda i: "意见 周末请不要发提醒"),
        "办实事": ("member", lambda i: "办实事 帮社区老人代办医保续缴"),
        "状态": ("secretary", lambda i: "状态"),
        "考勤": ("secretary", lambda i: "考勤"),
        "未学习": ("secretary", lambda i: "未学习"),
        "未确认": ("secretary", lambda i: "未确认"),
        "催办": ("secretary", lambda i: "催办"),
        "安排": (
            "secretary",
            lambda i: f"安排 党课 12月{1 + i % 28}日 {8 + i % 9}:{i % 60:02d} 报告厅",
        ),
        "第一议题": ("secretary", lambda i: "第一议题 学习最新重要讲话精神"),
        "补学": ("secretary", lambda i: "补学 {member}"),
        "进度": ("secretary", lambda i: "进度 报送整改清单 已完成初稿"),
        "报告": ("secretary", lambda i: "报告 拟召开支部党员大会"),
        "代交党费": ("secretary", lambda i: "已交党费 {member} 10月"),
        "通知 (one branch)": (
            "office",
            lambda i: f"通知 {branches[i % len(branches)]} 请于周五前报送",
        ),
        "任务 (one branch)": (
            "office",
            lambda i: f"任务 专项检查{i} 12月20日 {branches[i % len(branches)]}",
        ),
        "已阅": ("office", lambda i: "已阅 {report}"),
        "总览": ("office", lambda i: "总览"),
        "状态 (office, a branch)": ("office", lambda i: f"状态 {branches[i % len(branches)]}"),
        "总览 (leader)": ("leader", lambda i: "总览"),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(router: Router, engine_url: str, people: dict[str, list[str]], n: int) -> None:
    engine = router.engine
    with Session(engine) as s:
        branches = list(
            s.scalars(select(Org.name).where(col(Org.kind) == "党支部").order_by(col(Org.id)))
        )
        names = {m.userid: m.name for m in s.scalars(select(Member))}
    # Baseline 1: one transaction doing SELECT 1.
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        with Session(engine) as s:
            s.execute(text("SELECT 1"))
            s.commit()
        samples.append((time.perf_counter() - t) * 1000)
    print(
        f"{'SELECT 1 (baseline)':<24} p50 {statistics.median(samples):6.2f} ms   p99 {percentile(samples, 0.99):6.2f} ms"
    )
    await router.handle(Inbound(userid=people["member"][0], text="帮助"))  # warm: imports, calendar
    await router.handle(Inbound(userid=people["member"][0], text="请假 热身"))
    from bot.status import warm_daily

    t = time.perf_counter()
    with Session(engine) as s:
        warm_daily(session=s, settings=router.settings, now=router.clock.now())
    print(
        f"{'总览 daily score snapshot':<24} {(time.perf_counter() - t) * 1000:8.0f} ms (once a day per process)"
    )
    worst = 0.0
    for name, (role, make) in cases(people, branches).items():
        senders = people[role]
        samples: list[float] = []
        cpu: list[float] = []
        for i in range(n):
            who = senders[i % len(senders)]
            msg = make(i)
            if "{member}" in msg:
                branch_member = people["member"][i % len(senders)]
                msg = msg.replace("{member}", names[branch_member])
            if "{report}" in msg:
                with Session(engine) as s:
                    rid = s.scalar(
                        select(Feedback.id)
                        .where(col(Feedback.kind) == "报告")
                        .order_by(col(Feedback.id).desc())
                    )
                msg = msg.replace("{report}", str(rid or 1))
            t, c = time.perf_counter(), time.thread_time()
            reply = await router.handle(Inbound(userid=who, text=msg))
            samples.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
            if "抱歉" in reply.text:
                raise SystemExit(f"{name}: {reply.text}")
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        if not name.endswith("(baseline)"):
            worst = max(worst, p99)
        flag = "" if p99 < TARGET_MS else "  <-- over target"
        print(
            f"{name:<24} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
            f"   (CPU p50 {statistics.median(cpu):6.2f}  p99 {percentile(cpu, 0.99):6.2f}){flag}"
        )
    print(
        f"worst p99 {worst:.2f} ms; target < {TARGET_MS:.0f} ms: {'met' if worst < TARGET_MS else 'NOT met'}"
    )


def use_cached_enqueue() -> None:
    """Swap in an outbox ``enqueue`` whose INSERT is one cached statement (executemany with
    RETURNING) instead of a multi-row VALUES compiled afresh on every call: the change this
    bench proposes for bot/outbox.py, measured side by side with ``--cached-enqueue``."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    import bot.outbox
    import bot.router
    from bot.models import OutboxMessage

    def enqueue(session: Session, items, *, now: datetime) -> int:  # type: ignore[no-untyped-def]
        rows = [
            {
                "key": o.key, "rule": o.rule, "channel": o.channel, "recipient": o.recipient,
                "body": o.body, "due_at": o.due_at, "status": "pending", "attempts": 0,
                "created_at": now,
            }
            for o in items
        ]  # fmt: skip
        if not rows:
            return 0
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
        return len(session.execute(stmt, rows).all())

    bot.outbox.enqueue = enqueue  # type: ignore[assignment]
    bot.router.enqueue = enqueue  # type: ignore[attr-defined]
    import bot.broadcast

    bot.broadcast.enqueue = enqueue  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=300)
    parser.add_argument("--n", type=int, default=200, help="samples per handler")
    parser.add_argument(
        "--cached-enqueue", action="store_true", help="measure with the proposed outbox enqueue"
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="skip the gc.freeze() that `mofan serve` does after start-up (bot/warmup.py): "
        "shows what full collections of the start-up heap cost the request path",
    )
    args = parser.parse_args()
    if args.cached_enqueue:
        use_cached_enqueue()
        print("with the proposed cached-statement outbox enqueue")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        build(url, args.members, args.branches)
        engine = make_engine(url)
        clock = FixedClock(NOW)
        settings = Settings()
        settings.database.url = url
        with Session(engine) as session:
            people = fixtures(session, clock)
            meetings = session.scalar(select(text("count(*)")).select_from(Meeting))
            notices = session.scalar(select(text("count(*)")).select_from(Notice))
        print(
            f"{engine.dialect.name}: {args.members} members, {args.branches} branches, {meetings} meetings, {notices} notices; {args.n} samples per handler"
        )
        router = Router(engine=engine, clock=clock, settings=settings)
        if not args.no_gc_freeze:  # as `mofan serve` does
            import gc

            gc.collect()
            gc.freeze()
            print("gc.freeze() after start-up")
        asyncio.run(measure(router, url, people, args.n))
        engine.dispose()


if __name__ == "__main__":
    main()
