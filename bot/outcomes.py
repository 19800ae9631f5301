"""What a job's outcome means beyond its chat: the quota is settled, a PixVerse refusal is
a strike, and the job's image (if it never got uploaded) is no longer kept."""

from __future__ import annotations

from bot.domain import Job, JobState
from bot.moderation.service import ModerationService
from bot.ports import BlobStore
from bot.quota import QuotaService


class OutcomeSettler:
    def __init__(self, quotas: QuotaService, moderation: ModerationService, blobs: BlobStore) -> None:
        self._quotas = quotas
        self._moderation = moderation
        self._blobs = blobs

    async def settle(self, job: Job) -> None:
        """Commit or refund the job's quota; count PixVerse's own refusal as a strike; drop its image.

        Idempotent: only the first settlement of a job records the strike, so a delivery
        retried after a crash does not strike twice. Every outcome passes through here
        (completed, failed, moderated, cancelled, timed out in the queue), so an image its
        job failed before uploading is deleted here; an uploaded one already was.
        """
        first_time = await self._quotas.settle(job)
        if first_time and job.state is JobState.MODERATED:
            await self._moderation.record(
                job.user, job.chat.group_key, job.request.user_prompt, "PixVerse moderator", "pixverse"
            )
        for image in job.request.images:
            if image.blob_id:
                await self._blobs.delete(image.blob_id)
