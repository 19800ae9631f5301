"""Chat-platform updates already handled (`bot.ports.UpdateLog`), in SQL on either backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain import utcnow
from storage.sql import SqlDatabase, to_sql_time

# How long an update id is remembered: Telegram gives up redelivering an update long before.
REMEMBERED_FOR = timedelta(days=1)
# Every so many updates, those older than REMEMBERED_FOR are deleted (in the same process).
PRUNE_EVERY = 1000


class SqlUpdateLog:
    """One `handled_updates` row per update taken (kept a day)."""

    def __init__(self, db: SqlDatabase, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self._since_prune = 0

    async def first_time(self, platform: str, update_id: int) -> bool:
        now = self._clock()
        rows = await self._db.write(
            "INSERT INTO handled_updates (platform, update_id, handled_at) VALUES (?, ?, ?)"
            " ON CONFLICT (platform, update_id) DO NOTHING RETURNING update_id",
            (platform, update_id, to_sql_time(now)),
        )
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            await self._db.write(
                "DELETE FROM handled_updates WHERE handled_at < ?", (to_sql_time(now - REMEMBERED_FOR),)
            )
        return bool(rows)
