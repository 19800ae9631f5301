"""The running bot processes and their leases (`bot.instances`), in SQL on either backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain import utcnow
from storage.sql import SqlDatabase, Transaction, to_sql_time

# The ids of the processes alive at a time (bound as the one parameter): those whose lease
# has not run out. A job owned by any other id is free to be taken over.
LIVE_INSTANCES_SQL = "SELECT id FROM instances WHERE lease_until > ?"


class SqlInstanceRegistry:
    """The `bot.ports.InstanceRegistry` port: one `instances` row per running process."""

    def __init__(self, db: SqlDatabase, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def register(self, instance_id: str, *, lease: float, alone: bool) -> None:
        now = self._clock()

        async def register(transaction: Transaction) -> None:
            if alone:
                await transaction.execute("DELETE FROM instances WHERE id <> ?", (instance_id,))
            else:
                # Rows of processes long dead are of no use to anyone (a lease a day old).
                await transaction.execute(
                    "DELETE FROM instances WHERE lease_until < ?", (to_sql_time(now - timedelta(days=1)),)
                )
            await self._upsert(transaction, instance_id, now, lease)

        await self._db.transaction(register)

    async def renew(self, instance_id: str, *, lease: float) -> None:
        now = self._clock()
        await self._db.transaction(lambda transaction: self._upsert(transaction, instance_id, now, lease))

    async def retire(self, instance_id: str) -> None:
        await self._db.write("DELETE FROM instances WHERE id = ?", (instance_id,))

    async def live(self) -> list[str]:
        """The ids of the processes whose lease has not run out."""
        rows = await self._db.fetch_all(LIVE_INSTANCES_SQL + " ORDER BY id", (to_sql_time(self._clock()),))
        return [row["id"] for row in rows]

    @staticmethod
    async def _upsert(transaction: Transaction, instance_id: str, now: datetime, lease: float) -> None:
        await transaction.execute(
            "INSERT INTO instances (id, started_at, lease_until) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
            (instance_id, to_sql_time(now), to_sql_time(now + timedelta(seconds=lease))),
        )
