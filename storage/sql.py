"""What the stores need of a database, whichever it is: SQLite (`storage.database`) or
PostgreSQL (`storage.postgres`).

The stores (`storage.jobs`, `storage.admission` …) are written once, against
`SqlDatabase`: SQL with `?` placeholders (PostgreSQL's backend numbers them), times as
fixed-width ISO-8601 UTC text in both (so text order is time order, and a copy from
one to the other is verbatim), and the few phrases the two dialects spell differently
taken from `Dialect`. A unit of work that reads and then writes is an `async` function
of a `Transaction`, all or nothing on both backends.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from bot.domain import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
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


class Row(Protocol):
    """A result row: sqlite3.Row and asyncpg.Record both read by column name or position."""

    def __getitem__(self, key: str | int, /) -> Any: ...


class Transaction(Protocol):
    """The statements of one unit of work (see `SqlDatabase.transaction`)."""

    @property
    def dialect(self) -> Dialect: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row a query answers, or None."""
        ...

    async def fetch_all(self, sql: str, params: Params = ()) -> Sequence[Row]:
        """Every row a query answers (RETURNING rows for a write)."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        ...

    async def lock(self, keys: Iterable[str]) -> None:
        """Hold `keys` until the unit ends, so units that name the same key run one
        after the other (a read-then-write, such as a quota check, cannot interleave)."""
        ...

    async def run_script(self, script: str) -> None:
        """Run a migration script (several statements, no parameters)."""
        ...


Unit = Callable[[Transaction], Awaitable[T]]


class SqlDatabase(Protocol):
    """An open database the stores run their SQL through (`async with` closes it)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    @property
    def dialect(self) -> Dialect: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    async def write(self, sql: str, params: Params = ()) -> Sequence[Row]:
        """Run one writing statement on its own; returns its RETURNING rows."""
        ...

    async def transaction(self, unit: Unit[T]) -> T:
        """Run `unit` in one transaction: its writes are all kept or, if it raises, none.

        The unit awaits only its transaction's statements (on SQLite it runs on the
        database thread, where there is no event loop)."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def get_or_create_meta(self, key: str, factory: Callable[[], str]) -> str: ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """The phrases SQLite and PostgreSQL spell differently; everything else the stores
    write once."""

    name: str
    # The later of two times (fixed-width text): scalar MAX() in SQLite, GREATEST() in PostgreSQL.
    later_of: str
    # The smaller of two numbers: scalar MIN() in SQLite, LEAST() in PostgreSQL.
    lesser_of: str
    # An index hint after a table name ('' where the planner takes none).
    indexed_by: str
    # A column that names a row of any table, for "delete these rows" by a subquery.
    row_id: str
    # True when blobs.id is named by a jobs row's request as a picture it still has to upload.
    request_names_blob: str

    def later(self, first: str, second: str) -> str:
        return self.later_of.format(first, second)

    def lesser(self, first: str, second: str) -> str:
        return self.lesser_of.format(first, second)

    def index_hint(self, index: str) -> str:
        return self.indexed_by.format(index) if self.indexed_by else ""


SQLITE = Dialect(
    name="sqlite",
    later_of="MAX({}, {})",
    lesser_of="MIN({}, {})",
    indexed_by=" INDEXED BY {}",
    row_id="rowid",
    request_names_blob=(
        "((json_extract(request, '$.image_blob_id') = blobs.id AND json_extract(request, '$.image_path') IS NULL)"
        " OR EXISTS (SELECT 1 FROM json_each(request, '$.more_images') AS image"
        " WHERE json_extract(image.value, '$.blob_id') = blobs.id AND json_extract(image.value, '$.path') IS NULL))"
    ),
)

POSTGRESQL = Dialect(
    name="postgresql",
    later_of="GREATEST({}, {})",
    lesser_of="LEAST({}, {})",
    indexed_by="",
    row_id="ctid",
    # ->> answers SQL NULL for a JSON null too, as json_extract does.
    request_names_blob=(
        "((request::jsonb ->> 'image_blob_id' = blobs.id AND request::jsonb ->> 'image_path' IS NULL)"
        " OR EXISTS (SELECT 1 FROM jsonb_array_elements(request::jsonb -> 'more_images') AS image"
        " WHERE image ->> 'blob_id' = blobs.id AND image ->> 'path' IS NULL))"
    ),
)


def placeholders(count: int) -> str:
    """`?, ?, …`: `count` bound parameters."""
    return ", ".join("?" * count)


_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""
# The lock every process takes before it looks at the schema, so two starting together
# apply the migrations once, one after the other.
_MIGRATION_LOCK = "schema-migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: `storage/migrations/NNNN_name.sql` (SQLite) or
    `storage/migrations/postgresql/NNNN_name.sql`."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: Dialect = SQLITE) -> list[Migration]:
    """The migrations shipped with the package for `dialect`, in version order:
    `storage/migrations/` for SQLite, `storage/migrations/postgresql/` for PostgreSQL
    (numbered the same, each the other's equivalent).

    Read with importlib.resources so they are found in an installed wheel too.
    """
    found: dict[int, Migration] = {}
    folder = resources.files("storage").joinpath("migrations")
    if dialect is not SQLITE:
        folder = folder.joinpath(dialect.name)
    for entry in folder.iterdir():
        if not entry.is_file() or not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            raise RuntimeError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match[1])
        if version in found:
            raise RuntimeError(f"two migration files have version {version}")
        found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


class SchemaAndMeta:
    """Migrations, the `meta` table and `async with`, written once for both backends on
    top of a database's `fetch_one`, `write`, `transaction` and `close`."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        raise NotImplementedError

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        raise NotImplementedError

    async def write(self, sql: str, params: Params = ()) -> Sequence[Row]:
        raise NotImplementedError

    async def transaction(self, unit: Unit[T]) -> T:
        raise NotImplementedError

    # --- schema

    async def migrate(self, migrations: Iterable[Migration]) -> list[int]:
        """Apply the migrations not recorded yet, in version order, in one transaction,
        under a lock (two processes starting together apply them once).

        Returns the versions applied (none when the schema is current). Refuses a
        database that a newer version of the bot has migrated further.
        """
        ordered = sorted(migrations, key=lambda migration: migration.version)
        known = ordered[-1].version if ordered else 0

        async def apply(transaction: Transaction) -> list[Migration]:
            await transaction.lock([_MIGRATION_LOCK])
            await transaction.run_script(_CREATE_MIGRATIONS_TABLE)
            applied = {row["version"] for row in await transaction.fetch_all("SELECT version FROM schema_migrations")}
            if applied and max(applied) > known:
                raise RuntimeError(
                    f"the database schema is at version {max(applied)}, newer than this bot "
                    f"knows ({known}): run the newer bot version, or restore a backup"
                )
            pending = [migration for migration in ordered if migration.version not in applied]
            for migration in pending:
                await transaction.run_script(migration.sql)
                await transaction.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, to_sql_time(utcnow())),
                )
            return pending

        pending = await self.transaction(apply)
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

        `factory` runs only when the key is missing (e.g. to generate a secret once);
        two callers, even in two processes, always end up with the same value: the
        second's insert gives way to the first's, and both read back what was kept.
        """

        async def get_or_create(transaction: Transaction) -> str:
            read = "SELECT value FROM meta WHERE key = ?"
            existing = await transaction.fetch_one(read, (key,))
            if existing is None:
                await transaction.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, factory())
                )
                existing = await transaction.fetch_one(read, (key,))
            assert existing is not None  # just written, by this unit or another
            return str(existing["value"])

        return await self.transaction(get_or_create)
