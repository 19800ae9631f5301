"""Images in the database (a BLOB in SQLite, a bytea in PostgreSQL): `SqlBlobStore`
implements the core's `BlobStore` port.

An image is written only by `storage.admission`, in the same unit of work as the job
that names it (`request.image_blob_id`), and is kept only while that job still has to
upload it.
"""

from __future__ import annotations

from bot.domain import JobState, utcnow
from bot.ports import NewImage
from storage.database import to_sql_time
from storage.sql import SqlDatabase, Transaction, placeholders

# The states in which a job may still have to upload its image (it does so while SUBMITTING).
_AWAITING_UPLOAD = (JobState.QUEUED.value, JobState.SUBMITTING.value)
# length() of a BLOB column is read from the record header in SQLite, and from the
# value's header in PostgreSQL: the images are not loaded.
_STORED_BYTES = "SELECT COALESCE(SUM(length(data)), 0) FROM blobs"


async def insert_blob(transaction: Transaction, blob_id: str, image: NewImage) -> None:
    """Store `image` under `blob_id` in the caller's unit of work."""
    await transaction.execute(
        "INSERT INTO blobs (id, content_type, data, created_at) VALUES (?, ?, ?, ?)",
        (blob_id, image.content_type, bytes(image.data), to_sql_time(utcnow())),
    )


async def stored_bytes(transaction: Transaction) -> int:
    """How many bytes the stored images take, read in the caller's unit of work."""
    row = await transaction.fetch_one(_STORED_BYTES)
    assert row is not None  # an aggregate always answers one row
    return int(row[0])


class SqlBlobStore:
    """The `bot.ports.BlobStore` port on SQLite or PostgreSQL, for small objects (uploaded images)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, blob_id: str) -> tuple[bytes, str] | None:
        """The blob's bytes and content type, or None if there is no such blob."""
        row = await self._db.fetch_one("SELECT data, content_type FROM blobs WHERE id = ?", (blob_id,))
        return None if row is None else (bytes(row["data"]), str(row["content_type"]))

    async def delete(self, blob_id: str) -> bool:
        """Remove a blob; True if it existed."""
        rows = await self._db.write("DELETE FROM blobs WHERE id = ? RETURNING id", (blob_id,))
        return bool(rows)

    async def total_bytes(self) -> int:
        """How many bytes the stored images take."""
        row = await self._db.fetch_one(_STORED_BYTES)
        assert row is not None  # an aggregate always answers one row
        return int(row[0])

    async def delete_unreferenced(self) -> int:
        """Remove every blob that no job still waiting to upload it names; returns how many."""
        # One statement, so it cannot fall between an image and the job that names it:
        # both are written by one unit of work.
        rows = await self._db.write(
            "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM jobs"
            f" WHERE state IN ({placeholders(len(_AWAITING_UPLOAD))})"
            f" AND {self._db.dialect.request_names_blob}) RETURNING id",
            _AWAITING_UPLOAD,
        )
        return len(rows)
