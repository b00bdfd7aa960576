"""Backups and restores of the SQLite database, checked both ways.

``backup`` copies through SQLite's online backup API, so it is consistent while the bot runs
(a plain file copy could miss the WAL). It writes a temporary file next to the target, checks
it (``PRAGMA integrity_check``, the schema revision), makes it self-contained (no WAL), and
only then renames it into place: a failed run never leaves a half backup under the real name.
Backups hold phone numbers, so they are created readable by their owner only.

``restore`` checks the backup first (it opens, it is intact, its schema revision is one this
code knows), refuses to overwrite a database that holds data unless forced, and, when forced,
saves the current database beside itself before replacing it.

PostgreSQL is backed up with its own tools; for it these functions raise :class:`UsePgTools`,
whose message says which commands to run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from bot.clock import local

BACKUP_GLOB = "mofan-*.db"
"""Names ``mofan backup DIR`` gives its files; ``--keep`` prunes only these."""


class BackupError(Exception):
    """A backup or restore that was refused or failed; the message says why."""


class UsePgTools(BackupError):
    """The database is PostgreSQL: the message holds the pg_dump / pg_restore commands."""


@dataclass(frozen=True)
class BackupInfo:
    """What a checked SQLite file holds."""

    path: Path
    size: int
    revision: str | None
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class RestoreResult:
    info: BackupInfo
    target: Path
    previous: Path | None
    """Where the replaced database was saved (only when ``force`` replaced data)."""
    needs_upgrade: bool
    """The backup's schema is behind the code: run ``mofan db upgrade`` before serving."""


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite URL; raises :class:`UsePgTools` for PostgreSQL."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        raise UsePgTools(pg_guidance(u))
    if not u.database or u.database == ":memory:":
        raise BackupError("the database is in memory: there is nothing to back up")
    return Path(u.database)


def pg_guidance(url: URL) -> str:
    """The PostgreSQL commands to use instead, for this database (password hidden)."""
    plain = url.set(drivername="postgresql").render_as_string(hide_password=True)
    return (
        "The database is PostgreSQL: back it up and restore it with PostgreSQL's own tools.\n"
        f'  backup:   pg_dump --format=custom --file=mofan.dump "{plain}"\n'
        f'  restore:  pg_restore --clean --if-exists --no-owner --dbname="{plain}" mofan.dump\n'
        "Stop the bot before restoring; then run `mofan db upgrade` if the dump is older "
        "than the installed version. (Give the password with PGPASSWORD or ~/.pgpass.)"
    )


def backup_target(dest: Path, now: datetime) -> Path:
    """``dest`` itself, or for a directory a new time-stamped file inside it."""
    if dest.is_dir():
        return dest / local(now).strftime("mofan-%Y%m%d-%H%M%S.db")
    return dest


def backup(url: str, dest: Path, *, now: datetime) -> BackupInfo:
    """Copy the live database at ``url`` to ``dest`` (a file, or a directory), checked."""
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"database file not found: {source} (run `mofan init` first?)")
    target = backup_target(dest, now)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _copy(source, tmp)
        inspect(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return inspect(target)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups named ``mofan-*.db`` in ``directory``."""
    if keep <= 0:
        return []
    files = sorted(directory.glob(BACKUP_GLOB), key=lambda p: p.name, reverse=True)
    removed = files[keep:]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def inspect(path: Path) -> BackupInfo:
    """Open ``path`` read-only and check it: a SQLite file, intact, with a known schema."""
    if not path.is_file():
        raise BackupError(f"backup file not found: {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot open: {exc}") from None
    try:
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path}: not a SQLite database ({exc})") from None
        if verdict != "ok":
            raise BackupError(f"{path}: integrity check failed: {verdict}")
        revision = _revision(conn)
        rows = _row_counts(conn)
    finally:
        conn.close()
    if revision is None:
        raise BackupError(f"{path}: no schema revision: not a Mofan Bot database")
    known = known_revisions()
    if revision not in known:
        raise BackupError(
            f"{path}: schema revision {revision} is unknown to this version "
            f"(it knows {', '.join(sorted(known))}): restore it with a newer Mofan Bot"
        )
    return BackupInfo(path=path, size=path.stat().st_size, revision=revision, rows=rows)


def restore(url: str, source: Path, *, force: bool, now: datetime) -> RestoreResult:
    """Replace the database at ``url`` with the backup ``source``, after checking both."""
    from bot.db import head_revision

    target = sqlite_path(url)
    info = inspect(source)
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError("the backup is the configured database itself")
    previous = None
    if target.is_file() and target.stat().st_size > 0:
        held = _rows_in(target)
        if held and not force:
            raise BackupError(
                f"{target} already holds {held} rows. Restoring would replace them: stop the "
                "bot, then run again with --force (the current database is saved beside it)."
            )
        if held:
            stamp = local(now).strftime("%Y%m%d-%H%M%S")
            previous = target.with_name(f"{target.name}.before-restore-{stamp}")
            _save_aside(target, previous)
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        # Through the backup API, not a file copy: the target's WAL and locks stay coherent.
        with contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
    finally:
        src.close()
    restored = inspect(target)
    if restored.rows != info.rows:
        raise BackupError(f"restore check failed: {target} does not match {source}")
    return RestoreResult(
        info=info,
        target=target,
        previous=previous,
        needs_upgrade=info.revision != head_revision(),
    )


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from bot.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(None))  # type: ignore[arg-type]
    return {rev.revision for rev in script.walk_revisions()}


def _copy(source: Path, dest: Path) -> None:
    """A consistent, self-contained copy of a live SQLite file, readable by its owner only."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        with contextlib.closing(sqlite3.connect(dest)) as dst:
            src.backup(dst)
            # The copy inherits WAL mode; a backup should be one self-contained file.
            dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        src.close()


def _save_aside(target: Path, dest: Path) -> None:
    """Keep the database a forced restore replaces, even one SQLite cannot read."""
    try:
        _copy(target, dest)
    except sqlite3.Error:
        dest.unlink(missing_ok=True)
        shutil.copyfile(target, dest)
        os.chmod(dest, 0o600)


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' "
            "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
        )
    ]
    return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}


def _rows_in(path: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return sum(_row_counts(conn).values())
    except sqlite3.DatabaseError:
        # Not a database we can read: treat it as holding something worth keeping.
        return 1
