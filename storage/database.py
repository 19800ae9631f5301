"""The SQLite database: one connection, schema migrations at open, a key/value table.

Every store in `storage/` runs its SQL through a `Database`. There is one aiosqlite
connection per process; writes are serialized with an asyncio lock so a multi-statement
transaction never interleaves with another coroutine's writes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from bot.domain import utcnow

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# RETURNING (used for compare-and-set that hands back the row) arrived in SQLite 3.35.
MIN_SQLITE_VERSION = (3, 35, 0)
# Set on every connection, after WAL (which lets reads go on while a write commits;
# set apart because its answer is checked). Under WAL, synchronous=NORMAL survives an application crash (a power cut may lose the last
# commits) and saves an fsync per write; SQLite leaves foreign keys off unless asked;
# busy_timeout waits out another process's lock (a backup, a second bot) instead of
# failing at once.
_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)
_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""

Params = Sequence[Any]


def to_sql_time(value: datetime) -> str:
    """A timezone-aware datetime as fixed-width ISO-8601 UTC text.

    Fixed width (microseconds always written) makes text order equal time order,
    so SQL can sort and compare the column directly.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_sql_time(value: str) -> datetime:
    """The inverse of `to_sql_time`."""
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: `storage/migrations/NNNN_name.sql`."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order.

    Read with importlib.resources so they are found in an installed wheel too.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            raise RuntimeError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match[1])
        if version in found:
            raise RuntimeError(f"two migration files have version {version}")
        found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def _statements(script: str) -> list[str]:
    """The statements of a SQL script, in order.

    sqlite3's executescript() commits any open transaction first, which would break
    all-or-nothing migrations, so statements are run one by one. complete_statement()
    knows that a semicolon in a string, a comment or a trigger body ends nothing.
    """
    statements: list[str] = []
    start = 0
    for end, char in enumerate(script, start=1):
        if char == ";" and sqlite3.complete_statement(script[start:end]):
            statements.append(script[start:end])
            start = end
    if script[start:].strip():
        # A trailing comment runs as a no-op; an unfinished statement fails loudly.
        statements.append(script[start:])
    return statements


class Database:
    """An open SQLite database. Use `open_database()` to get one; close it when done
    (or use it as `async with`)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        await self._connection.close()

    # --- running SQL

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row a query answers, or None."""
        rows = await self._connection.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Every row a query answers."""
        return list(await self._connection.execute_fetchall(sql, params))

    async def write(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run one writing statement as its own transaction; returns its RETURNING rows."""
        async with self._write_lock:
            return list(await self._connection.execute_fetchall(sql, params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several statements, all or nothing. Holds the write lock throughout.

        Reads elsewhere share this connection and see the transaction's writes before
        it commits: keep transactions short and await nothing else inside them.
        """
        async with self._write_lock:
            # IMMEDIATE takes SQLite's write lock now, so another process cannot make
            # the transaction fail half-way with "database is locked".
            await self._connection.execute_fetchall("BEGIN IMMEDIATE")
            try:
                yield self._connection
                await self._connection.commit()
            except BaseException:
                # Also after a failed COMMIT, so the connection is never left inside
                # a transaction (rolling back none is a no-op).
                await self._connection.rollback()
                raise

    # --- schema

    async def migrate(self, migrations: Iterable[Migration]) -> list[int]:
        """Apply the migrations not recorded yet, in version order, in one transaction.

        Returns the versions applied (none when the schema is current). Refuses a
        database that a newer version of the bot has migrated further.
        """
        ordered = sorted(migrations, key=lambda migration: migration.version)
        async with self.transaction() as connection:
            await connection.execute_fetchall(_CREATE_MIGRATIONS_TABLE)
            rows = await connection.execute_fetchall("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in rows}
            known = ordered[-1].version if ordered else 0
            if applied and max(applied) > known:
                raise RuntimeError(
                    f"the database schema is at version {max(applied)}, newer than this bot "
                    f"knows ({known}): run the newer bot version, or restore a backup"
                )
            pending = [migration for migration in ordered if migration.version not in applied]
            for migration in pending:
                for statement in _statements(migration.sql):
                    await connection.execute_fetchall(statement)
                await connection.execute_fetchall(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, to_sql_time(utcnow())),
                )
        for migration in pending:
            log.info("applied database migration %04d_%s", migration.version, migration.name)
        return [migration.version for migration in pending]

    async def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        row = await self.fetch_one("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
        assert row is not None  # an aggregate always answers one row
        return int(row["version"])

    # --- meta: small settings the bot keeps for itself

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetch_one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        await self.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def get_or_create_meta(self, key: str, factory: Callable[[], str]) -> str:
        """The value under `key`; if there is none, store `factory()` and return it.

        `factory` runs only when the key is missing (e.g. to generate a secret once),
        and two callers, even in two processes, always end up with the same value.
        """
        async with self.transaction() as connection:
            rows = await connection.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,))
            existing = next(iter(rows), None)
            if existing is not None:
                return str(existing["value"])
            value = factory()
            await connection.execute_fetchall("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value


async def open_database(path: Path | str) -> Database:
    """Open (creating if needed) the database at `path` and bring its schema up to date.

    `":memory:"` gives a private in-memory database, for tests.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the bot needs "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer"
        )
    location = str(path)
    if location != MEMORY:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; `Database.transaction()` opens them.
    connection = await aiosqlite.connect(location, isolation_level=None)
    connection.row_factory = sqlite3.Row
    database = Database(connection)
    try:
        mode = await database.fetch_one("PRAGMA journal_mode = WAL")
        if location != MEMORY and (mode is None or mode[0] != "wal"):
            log.warning("SQLite refused WAL mode for %s (journal_mode=%s)", location, mode and mode[0])
        for pragma in _PRAGMAS:
            await connection.execute_fetchall(pragma)
        await database.migrate(load_migrations())
    except BaseException:
        await database.close()
        raise
    return database
