"""Deleting records past their retention: `SqlRetentionStore` implements the core's
`RetentionStore` port on SQLite or PostgreSQL.

Each call deletes at most `limit` rows in one unit of work, picked by an index (see
migration 0006), oldest first. The database thread runs units in the order they
arrive, so a command queued while a prune is under way waits for one small batch,
not for the whole prune.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import JobState
from storage.database import to_sql_time
from storage.sql import SqlDatabase, Transaction, placeholders

# The ledger states a prune may delete: an open reservation ('reserved') still counts.
SETTLED_LEDGER_STATES = frozenset({"committed", "refunded"})


class SqlRetentionStore:
    """The `bot.ports.RetentionStore` port on SQLite or PostgreSQL."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def prune_jobs(self, finished_before: datetime, limit: int) -> int:
        before = to_sql_time(finished_before)

        async def prune(transaction: Transaction) -> int:
            # A job finishes after it was created, so `created_at < before` only narrows the
            # jobs_by_state range scan; finished_at is what decides (updated_at for rows
            # that lack it, which DELIVERED rows written by this bot never do).
            ids = [
                row[0]
                for row in await transaction.fetch_all(
                    "SELECT id FROM jobs WHERE state = ? AND created_at < ?"
                    " AND COALESCE(finished_at, updated_at) < ? ORDER BY created_at LIMIT ?",
                    (JobState.DELIVERED.value, before, before, limit),
                )
            ]
            if not ids:
                return 0
            marks = placeholders(len(ids))
            # jobs.parent_id references jobs(id): a kept reroll of a deleted video would
            # block the DELETE, so the reference goes first (it is only shown in /status).
            await transaction.execute(f"UPDATE jobs SET parent_id = NULL WHERE parent_id IN ({marks})", ids)
            return await transaction.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids)

        return await self._db.transaction(prune)

    async def prune_quota_ledger(self, state: str, created_before: datetime, limit: int) -> int:
        if state not in SETTLED_LEDGER_STATES:
            raise ValueError(f"only settled ledger rows may be pruned ({sorted(SETTLED_LEDGER_STATES)}), not {state!r}")
        return await self._delete_batch(
            "quota_ledger", "state = ? AND created_at < ?", (state, to_sql_time(created_before)), "created_at", limit
        )

    async def prune_moderation_log(self, before: datetime, limit: int) -> int:
        return await self._delete_batch("moderation_log", "at < ?", (to_sql_time(before),), "at", limit)

    async def prune_strikes(self, before: datetime, limit: int) -> int:
        return await self._delete_batch("strikes", "at < ?", (to_sql_time(before),), "at", limit)

    async def prune_mutes(self, ended_before: datetime, limit: int) -> int:
        return await self._delete_batch("mutes", "until < ?", (to_sql_time(ended_before),), "until", limit)

    async def _delete_batch(self, table: str, where: str, params: tuple[str, ...], oldest: str, limit: int) -> int:
        """Delete the oldest `limit` rows of `table` matching `where` (fixed SQL of this
        module, never input), in one unit of work."""
        row = self._db.dialect.row_id
        sql = f"DELETE FROM {table} WHERE {row} IN (SELECT {row} FROM {table} WHERE {where} ORDER BY {oldest} LIMIT ?)"
        return await self._db.transaction(lambda transaction: transaction.execute(sql, (*params, limit)))
