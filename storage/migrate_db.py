"""`pixverse-bot migrate-db`: copy a SQLite deployment's whole state into an empty
PostgreSQL database — jobs (queued and in flight too), the quota ledger with its
overrides and resets, group settings, filters, strikes, mutes, bans, the moderation
log, images and the bot's own settings (meta) — so an operator moves without losing
quotas or jobs.

The source is read in one read transaction (a consistent snapshot, safe while the bot
runs; what the bot writes after it is not copied, so stop the bot first); the target
is written in one transaction (all or nothing) and refused unless empty. Both schemas
are the same version's, so the copy is row for row, column for column.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.postgres import is_postgresql, open_postgres, without_password
from storage.sql import SQLITE, load_migrations

# Every table that holds state, parents before children (jobs name their parent job).
# The tables the jobs triggers keep come last: the triggers fill them as jobs arrive,
# then the source's rows replace them (queue_users' also say when each user was last served).
TABLES = (
    "meta",
    "jobs",
    "blobs",
    "quota_ledger",
    "quota_overrides",
    "quota_resets",
    "group_settings",
    "group_filters",
    "strikes",
    "mutes",
    "bans",
    "moderation_log",
    "queue_users",
)
_KEPT_BY_TRIGGERS = ("queue_users",)
# Tables whose ids PostgreSQL numbers itself: its counter moves past the copied ids.
_NUMBERED = ("strikes", "moderation_log")
# Rows in source order where order matters (a job after its parent).
_ORDER = {"jobs": " ORDER BY created_at, id"}
_COPY_LOCK = "migrate-db"


class MigrateError(Exception):
    """The copy was refused or failed (nothing was written); `str()` says why, for the operator."""


@dataclass(frozen=True)
class Copied:
    """How many rows of each table were copied."""

    rows: dict[str, int]


async def copy_sqlite_to_postgres(source: Path, target: str) -> Copied:
    """Copy the SQLite database at `source` into the empty PostgreSQL database at `target`."""
    if not is_postgresql(target):
        raise MigrateError(f"--to must be a postgresql:// URL, not {target!r}")
    if not source.is_file():
        raise MigrateError(f"there is no SQLite database at {source}")
    snapshot = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    try:
        snapshot.execute("PRAGMA busy_timeout = 5000")
        snapshot.execute("BEGIN")  # one read transaction: every table as of one moment
        _check_source_version(snapshot, source)
        try:
            database = await open_postgres(target)
        except RuntimeError as error:
            raise MigrateError(str(error)) from None
        async with database, database.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _COPY_LOCK)
            for table in TABLES:
                if table not in _KEPT_BY_TRIGGERS and await connection.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {table})"
                ):
                    raise MigrateError(
                        f"the PostgreSQL database {without_password(target)} already holds {table}: "
                        "migrate-db copies into an empty database only (nothing was written)"
                    )
            copied: dict[str, int] = {}
            for table in TABLES:
                cursor = snapshot.execute(f"SELECT * FROM {table}{_ORDER.get(table, '')}")
                columns = [column[0] for column in cursor.description]
                if table in _KEPT_BY_TRIGGERS:
                    await connection.execute(f"DELETE FROM {table}")
                await connection.copy_records_to_table(table, columns=columns, records=cursor)
                copied[table] = await connection.fetchval(f"SELECT COUNT(*) FROM {table}")
            for table in _NUMBERED:
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false)"
                    f" FROM {table}"
                )
        return Copied(copied)
    except sqlite3.Error as error:
        raise MigrateError(f"reading {source} failed: {error}") from None
    finally:
        snapshot.close()


def _check_source_version(snapshot: sqlite3.Connection, source: Path) -> None:
    known = load_migrations(SQLITE)[-1].version
    try:
        (version,) = snapshot.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    except sqlite3.OperationalError:
        version = 0
    if version != known:
        raise MigrateError(
            f"{source} is at schema version {version}, this bot's is {known}: "
            "start this version of the bot on it once (it migrates at start), then copy"
        )
