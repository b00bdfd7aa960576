"""``mofan backup`` / ``mofan restore``: a restored backup reads back; unsafe restores are refused.

SQLite files live under the test's own directory, whatever database the suite runs on; the
PostgreSQL case only checks the guidance (it never dumps the shared test database).
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session

import bot.cli_ops  # noqa: F401  (registers backup and restore)
from bot import backup as ops
from bot.db import make_engine, upgrade
from bot.demo import load_demo
from bot.models import Member
from tests.chatkit import mofan
from tests.factories import small_bureau

NOW = datetime(2026, 11, 25, 2, 7, tzinfo=UTC)


def _config(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


@pytest.fixture
def live(tmp_path: Path) -> tuple[Path, Path]:
    """A migrated SQLite database holding the demo bureau, and its config."""
    db = tmp_path / "live.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    with Session(engine) as s:
        load_demo(session=s, now=NOW)
        s.commit()
    engine.dispose()
    return db, _config(tmp_path, "live", f"sqlite:///{db}")


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _names(db: Path) -> list[str]:
    with connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT userid FROM member ORDER BY userid")]


def test_a_restored_backup_reads_back_through_the_bot(live, tmp_path):
    db, cfg = live
    result = mofan(cfg, "backup", str(tmp_path / "b.db"))
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output and "schema 0001" in result.output

    fresh = _config(tmp_path, "fresh", f"sqlite:///{tmp_path / 'fresh.db'}")
    restored = mofan(fresh, "restore", str(tmp_path / "b.db"))
    assert restored.exit_code == 0, restored.output
    assert _names(tmp_path / "fresh.db") == _names(db)
    # The bot itself works on the restored database.
    chat = mofan(fresh, "chat", "--as", "zhangwei", "帮助")
    assert chat.exit_code == 0 and "您好" in chat.output


def test_backup_is_private_self_contained_and_taken_while_another_writer_is_open(live, tmp_path):
    db, cfg = live
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE member SET name = 'uncommitted' WHERE id = 1")
    try:
        result = mofan(cfg, "backup", str(tmp_path / "b.db"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 0, result.output
    target = tmp_path / "b.db"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds phone numbers
    with connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT count(*) FROM member WHERE name='uncommitted'").fetchone() == (
            0,
        )
    assert not (tmp_path / "b.db-wal").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_backup_into_a_directory_keeps_the_newest(live, tmp_path):
    db, _ = live
    out = tmp_path / "backups"
    out.mkdir()
    names = []
    for minute in range(3):
        at = NOW.replace(minute=minute)
        names.append(ops.backup(f"sqlite:///{db}", out, now=at).path.name)
    assert names == [
        "mofan-20261125-100000.db",  # Shanghai time in the name
        "mofan-20261125-100100.db",
        "mofan-20261125-100200.db",
    ]
    (out / "notes.txt").write_text("not a backup")
    removed = ops.prune(out, keep=2)
    assert [p.name for p in removed] == ["mofan-20261125-100000.db"]
    assert sorted(p.name for p in out.iterdir()) == [*names[1:], "notes.txt"]


def test_backup_dir_with_keep_via_the_cli(live, tmp_path):
    _, cfg = live
    out = str(tmp_path / "nightly") + "/"
    first = mofan(cfg, "backup", out, "--keep", "1")
    assert first.exit_code == 0, first.output
    assert len(list((tmp_path / "nightly").glob("mofan-*.db"))) == 1


def test_restore_refuses_to_overwrite_data_without_force(live, tmp_path):
    db, cfg = live
    assert mofan(cfg, "backup", str(tmp_path / "b.db")).exit_code == 0
    # The live database changes after the backup: a restore would lose this.
    with connect(db) as conn:
        conn.execute("UPDATE member SET name = '改过的名字' WHERE userid = 'zhangwei'")

    refused = mofan(cfg, "restore", str(tmp_path / "b.db"))
    assert refused.exit_code == 1 and "--force" in refused.output
    with connect(db) as conn:
        assert conn.execute("SELECT name FROM member WHERE userid='zhangwei'").fetchone() == (
            "改过的名字",
        )

    forced = mofan(cfg, "restore", "--force", str(tmp_path / "b.db"))
    assert forced.exit_code == 0, forced.output
    with connect(db) as conn:
        assert conn.execute("SELECT name FROM member WHERE userid='zhangwei'").fetchone() != (
            "改过的名字",
        )
    # What --force replaced is kept beside the database.
    saved = list(tmp_path.glob("live.db.before-restore-*"))
    assert len(saved) == 1 and "previous database saved" in forced.output
    with connect(saved[0]) as conn:
        assert conn.execute("SELECT name FROM member WHERE userid='zhangwei'").fetchone() == (
            "改过的名字",
        )


def test_restore_into_an_initialised_empty_database_needs_no_force(live, tmp_path):
    _, cfg = live
    assert mofan(cfg, "backup", str(tmp_path / "b.db")).exit_code == 0
    empty = _config(tmp_path, "empty", f"sqlite:///{tmp_path / 'empty.db'}")
    assert mofan(empty, "init").exit_code == 0
    result = mofan(empty, "restore", str(tmp_path / "b.db"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "make_bad, reason",
    [
        (lambda p: p.write_bytes(b"this is not a database" * 100), "not a SQLite database"),
        (lambda p: _with_table(p), "no schema revision"),
        (lambda p: _with_revision(p, "9999"), "unknown to this version"),
        (lambda p: None, "not found"),
    ],
    ids=["garbage", "not-ours", "newer-schema", "missing"],
)
def test_restore_refuses_a_bad_backup_and_writes_nothing(live, tmp_path, make_bad, reason):
    db, cfg = live
    before = db.read_bytes()
    bad = tmp_path / "bad.db"
    make_bad(bad)
    result = mofan(cfg, "restore", "--force", str(bad))
    assert result.exit_code == 1 and reason in result.output
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("live.db.before-restore-*"))


def _with_table(path: Path) -> None:
    with connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")


def _with_revision(path: Path, rev: str) -> None:
    with connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (rev,))


def test_restore_of_an_older_schema_says_to_upgrade(live, tmp_path, monkeypatch):
    db, cfg = live
    assert mofan(cfg, "backup", str(tmp_path / "b.db")).exit_code == 0
    # Pretend this version's head is a later revision than the backup's.
    monkeypatch.setattr("bot.db.head_revision", lambda: "0002")
    fresh = _config(tmp_path, "fresh", f"sqlite:///{tmp_path / 'fresh.db'}")
    result = mofan(fresh, "restore", str(tmp_path / "b.db"))
    assert result.exit_code == 0 and "mofan db upgrade" in result.output


def test_backup_of_a_missing_database_says_to_init(tmp_path):
    cfg = _config(tmp_path, "none", f"sqlite:///{tmp_path / 'none.db'}")
    result = mofan(cfg, "backup", str(tmp_path / "b.db"))
    assert result.exit_code == 1 and "mofan init" in result.output
    assert not (tmp_path / "b.db").exists()


def test_postgresql_gets_pg_dump_guidance_without_the_password(tmp_path):
    cfg = _config(tmp_path, "pg", "postgresql+psycopg://mofan:s3cret-pw@db.internal:5432/mofan")
    for args in (("backup", str(tmp_path / "x.db")), ("restore", str(tmp_path / "x.db"))):
        result = mofan(cfg, *args)
        assert result.exit_code == bot.cli_ops.PG_EXIT
        assert "pg_dump --format=custom" in result.output and "pg_restore" in result.output
        assert "postgresql://mofan:***@db.internal:5432/mofan" in result.output
        assert "s3cret-pw" not in result.output


def test_backup_and_restore_of_the_suite_database(db_url, engine, tmp_path):
    """On the suite's own database: SQLite round-trips; PostgreSQL points at pg_dump."""
    with Session(engine) as s:
        small_bureau(s)
        s.commit()
    if not db_url.startswith("sqlite"):
        with pytest.raises(ops.UsePgTools):
            ops.backup(db_url, tmp_path / "x.db", now=NOW)
        return
    info = ops.backup(db_url, tmp_path / "x.db", now=NOW)
    assert info.rows["member"] > 0
    with Session(engine) as s:
        gone = s.execute(text("DELETE FROM member WHERE userid = 'zhangsan'"))
        assert gone.rowcount == 1  # type: ignore[attr-defined]
        s.commit()
    ops.restore(db_url, tmp_path / "x.db", force=True, now=NOW)
    with Session(engine) as s:
        count = s.execute(select(func.count()).select_from(Member)).scalar_one()
    assert count == info.rows["member"]
