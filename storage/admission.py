"""Admitting a job in SQLite: `SqliteJobAdmission` implements the core's `JobAdmission` port.

The quota reservation, the job's pictures and the job are written by one unit of work,
so they exist together or not at all — also when the caller is cancelled while the unit
is queued (it still runs), and across processes (units run in IMMEDIATE transactions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bot.domain import Job
from bot.ports import ImageStoreFull, NewImage, OffPeakLimitReached, QuotaCharge, QuotaReservation
from storage.blobs import insert_blob, stored_bytes
from storage.database import Database
from storage.governance import quota_refusal, record_reservation
from storage.jobs import count_unfinished_off_peak, insert_job


class SqliteJobAdmission:
    """The `bot.ports.JobAdmission` port on SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def admit(
        self,
        job: Job,
        reservation: QuotaReservation,
        image: NewImage | None = None,
        *,
        more_images: Sequence[NewImage] = (),
        image_store_limit: int | None = None,
        off_peak_limit: int | None = None,
    ) -> QuotaCharge | ImageStoreFull | OffPeakLimitReached | None:
        """Check the quota, the off-peak cap and the image store's room, then write
        reservation, pictures and job.

        Returns None when admitted, else what refused it (and nothing is written).
        """
        given = ([image] if image is not None else []) + list(more_images)
        blob_ids = [ref.blob_id for ref in job.request.images]
        if given and (len(given) != len(blob_ids) or None in blob_ids):
            raise ValueError(f"job {job.id} brings {len(given)} pictures but its request names blobs {blob_ids}")
        pictures = [(blob_id or "", picture) for blob_id, picture in zip(blob_ids, given, strict=False)]

        def admit(connection: sqlite3.Connection) -> QuotaCharge | ImageStoreFull | OffPeakLimitReached | None:
            # Quota first: a user over quota hears that, not a (temporary) full store.
            refused = quota_refusal(connection, reservation)
            if refused is not None:
                return refused
            if (
                job.request.off_peak
                and off_peak_limit is not None
                and count_unfinished_off_peak(connection, job.user.key) >= off_peak_limit
            ):
                return OffPeakLimitReached(off_peak_limit)
            if pictures and image_store_limit is not None:
                stored = stored_bytes(connection)
                if stored + sum(len(picture.data) for _, picture in pictures) > image_store_limit:
                    return ImageStoreFull(stored_bytes=stored, limit=image_store_limit)
            record_reservation(connection, job.id, reservation)
            for blob_id, picture in pictures:
                insert_blob(connection, blob_id, picture)
            insert_job(connection, job)
            return None

        return await self._db.run(admit)
