"""Admitting a job: `SqlJobAdmission` implements the core's `JobAdmission` port.

The quota reservation, the job's pictures and the job are written by one unit of work,
so they exist together or not at all — also when the caller is cancelled while the unit
is under way (SQLite still runs a queued unit; PostgreSQL rolls back an unfinished one).
The checks and the writes cannot interleave with another admission's, across
connections and processes too: SQLite units run in IMMEDIATE transactions (one writer
at a time); on PostgreSQL the unit first takes a transaction lock on every subject it
counts (the user, the group, the image store), so two admissions for the same user
check one after the other and never both take the last unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain import Job
from bot.ports import ImageStoreFull, NewImage, OffPeakLimitReached, QuotaCharge, QuotaReservation
from storage.blobs import insert_blob, stored_bytes
from storage.governance import quota_refusal, record_reservation
from storage.jobs import count_unfinished_off_peak, insert_job
from storage.sql import SqlDatabase, Transaction

# The lock key of the image store, which every admission with pictures counts.
_IMAGE_STORE_LOCK = "image-store"


class SqlJobAdmission:
    """The `bot.ports.JobAdmission` port on SQLite or PostgreSQL."""

    def __init__(self, db: SqlDatabase) -> None:
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

        # Everything the checks below count, as lock keys: the user's off-peak jobs are
        # counted under their quota subject's key too.
        counted = [f"quota:{charge.scope}:{charge.subject}" for charge in reservation.charges]
        counted.append(f"quota:user:{job.user.key}")
        if pictures:
            counted.append(_IMAGE_STORE_LOCK)

        async def admit(transaction: Transaction) -> QuotaCharge | ImageStoreFull | OffPeakLimitReached | None:
            await transaction.lock(counted)
            # Quota first: a user over quota hears that, not a (temporary) full store.
            refused = await quota_refusal(transaction, reservation)
            if refused is not None:
                return refused
            if (
                job.request.off_peak
                and off_peak_limit is not None
                and await count_unfinished_off_peak(transaction, job.user.key) >= off_peak_limit
            ):
                return OffPeakLimitReached(off_peak_limit)
            if pictures and image_store_limit is not None:
                stored = await stored_bytes(transaction)
                if stored + sum(len(picture.data) for _, picture in pictures) > image_store_limit:
                    return ImageStoreFull(stored_bytes=stored, limit=image_store_limit)
            await record_reservation(transaction, job.id, reservation)
            for blob_id, picture in pictures:
                await insert_blob(transaction, blob_id, picture)
            await insert_job(transaction, job)
            return None

        return await self._db.transaction(admit)
