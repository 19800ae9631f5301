"""What a job's outcome means beyond its chat: the quota is settled, a PixVerse refusal is a strike."""

from __future__ import annotations

from bot.domain import Job, JobState
from bot.moderation.service import ModerationService
from bot.quota import QuotaService


class OutcomeSettler:
    def __init__(self, quotas: QuotaService, moderation: ModerationService) -> None:
        self._quotas = quotas
        self._moderation = moderation

    async def settle(self, job: Job) -> None:
        """Commit or refund the job's quota; count PixVerse's own refusal as a strike.

        Idempotent: only the first settlement of a job records the strike, so a delivery
        retried after a crash does not strike twice.
        """
        first_time = await self._quotas.settle(job)
        if first_time and job.state is JobState.MODERATED:
            await self._moderation.record(
                job.user, job.chat.group_key, job.request.user_prompt, "PixVerse moderator", "pixverse"
            )
