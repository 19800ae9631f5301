"""Binary objects in SQLite: `SqliteBlobStore` implements the core's `BlobStore` port."""

from __future__ import annotations

import secrets

from bot.domain import utcnow
from storage.database import Database, to_sql_time


class SqliteBlobStore:
    """The `bot.ports.BlobStore` port on SQLite, for small objects (uploaded images)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, data: bytes, content_type: str) -> str:
        """Store `data`; returns its new random id."""
        blob_id = secrets.token_urlsafe(16)
        await self._db.write(
            "INSERT INTO blobs (id, content_type, data, created_at) VALUES (?, ?, ?, ?)",
            (blob_id, content_type, bytes(data), to_sql_time(utcnow())),
        )
        return blob_id

    async def get(self, blob_id: str) -> tuple[bytes, str] | None:
        """The blob's bytes and content type, or None if there is no such blob."""
        row = await self._db.fetch_one("SELECT data, content_type FROM blobs WHERE id = ?", (blob_id,))
        return None if row is None else (bytes(row["data"]), str(row["content_type"]))

    async def delete(self, blob_id: str) -> bool:
        """Remove a blob; True if it existed."""
        rows = await self._db.write("DELETE FROM blobs WHERE id = ? RETURNING id", (blob_id,))
        return bool(rows)
