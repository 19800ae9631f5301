"""The PostgreSQL database (`BOT_DATABASE=postgresql://…`): a pool of asyncpg connections
behind the same `storage.sql.SqlDatabase` the stores use on SQLite.

The stores write SQL once with `?` placeholders; they are numbered (`$1`, `$2` …) here.
Each statement outside a unit of work runs on its own (autocommit); a unit of work
(`transaction`) holds one connection and one transaction from start to end, and its
`lock` takes transaction-scoped advisory locks (released at commit or rollback).
Migrations (`storage/migrations/postgresql/`) are applied at open under such a lock,
so two processes starting together do not race.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.sql import POSTGRESQL, Params, SchemaAndMeta, T, Unit, load_migrations

# What a broken constraint (a repeated id, a missing parent) raises, on either backend.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
# The URL schemes that name a PostgreSQL server in BOT_DATABASE (libpq's two spellings).
SCHEMES = ("postgresql://", "postgres://")
# Connections per process: a unit of work holds one from start to end.
POOL_SIZE = 10


def is_postgresql(location: str) -> bool:
    """Whether BOT_DATABASE names a PostgreSQL server (else it is a SQLite file)."""
    return location.startswith(SCHEMES)


def without_password(url: str) -> str:
    """`url` fit for a log line or an error message: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """`sql` with each `?` placeholder numbered as PostgreSQL wants them: `$1`, `$2` ….

    A `?` inside a quoted string or identifier is left alone. The stores' SQL is fixed
    text (values are always bound), so the cache holds a bounded set of statements.
    """
    out: list[str] = []
    count = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            count += 1
            out.append(f"${count}")
            continue
        out.append(char)
    return "".join(out)


def _changed(status: str) -> int:
    """Rows changed, from a command status such as 'DELETE 3' or 'INSERT 0 1'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTransaction:
    """`storage.sql.Transaction` on one pooled connection, inside its transaction."""

    dialect = POSTGRESQL

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        return await self._connection.fetchrow(numbered(sql), *params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        return await self._connection.fetch(numbered(sql), *params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _changed(await self._connection.execute(numbered(sql), *params))

    async def lock(self, keys: Iterable[str]) -> None:
        """Transaction-scoped advisory locks on `keys`, always taken in the same (sorted)
        order, so two units wanting the same keys cannot deadlock."""
        for key in sorted(set(keys)):
            await self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)

    async def run_script(self, script: str) -> None:
        # No parameters: asyncpg sends it as one simple query, several statements and all.
        await self._connection.execute(script)


class PostgresDatabase(SchemaAndMeta):
    """An open PostgreSQL database. Use `open_postgres()`; close it when done."""

    dialect = POSTGRESQL

    def __init__(self, pool: asyncpg.Pool, connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None) -> None:
        self._pool = pool
        # Opens a connection outside the pool (`open_session`); `open_postgres` gives one.
        self._connect = connect

    async def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        if not self._pool.is_closing():
            await self._pool.close()

    async def fetch_one(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        return await self._pool.fetchrow(numbered(sql), *params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        return await self._pool.fetch(numbered(sql), *params)

    async def write(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        return await self._pool.fetch(numbered(sql), *params)

    async def transaction(self, unit: Unit[T]) -> T:
        """Run `unit` in one transaction on one connection (READ COMMITTED, PostgreSQL's
        default: a unit that reads before it writes takes the locks it needs, `lock`).

        Cancelled half-way, the transaction rolls back: nothing of the unit is kept."""
        async with self._pool.acquire() as connection, connection.transaction():
            return await unit(PostgresTransaction(connection))

    async def open_session(self) -> asyncpg.Connection:
        """A new connection of its own, outside the pool, that the caller closes: a session
        whose locks and LISTENs live as long as it does (`storage.coordination`)."""
        if self._connect is None:
            raise RuntimeError("this PostgreSQL database was opened without a way to open sessions")
        return await self._connect()

    def connection(self) -> Any:
        """One pooled connection (`async with`), for a caller that runs its own
        transaction with asyncpg's API (`storage.migrate_db`)."""
        return self._pool.acquire()


async def open_postgres(url: str, *, pool_size: int = POOL_SIZE) -> PostgresDatabase:
    """Connect to the PostgreSQL database at `url` and bring its schema up to date."""
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
    except (OSError, asyncpg.PostgresError) as error:
        raise RuntimeError(f"cannot connect to PostgreSQL at {without_password(url)}: {error}") from None
    database = PostgresDatabase(pool, functools.partial(asyncpg.connect, url))
    try:
        await database.migrate(load_migrations(POSTGRESQL))
    except BaseException:
        await database.close()
        raise
    return database
