"""Routing core events to the right chat platform, throttled.

The core emits progress as often as it learns something; chats must not be edited
that often (Telegram allows about one edit a second per chat), so progress for a
job is passed on at most every `interval` seconds — except stage changes, which
always go through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.domain import Job, Platform
from bot.ports import JobStore, Notifier, Progress

log = logging.getLogger(__name__)


class Notifiers:
    """The notifier of each enabled platform; adapters register theirs at start."""

    def __init__(self) -> None:
        self._by_platform: dict[Platform, Notifier] = {}

    def register(self, platform: Platform, notifier: Notifier) -> None:
        self._by_platform[platform] = notifier

    def unregister(self, platform: Platform) -> None:
        """The adapter stopped: its jobs' deliveries wait until it is back."""
        self._by_platform.pop(platform, None)

    def for_job(self, job: Job) -> Notifier | None:
        return self._by_platform.get(job.chat.platform)

    def all(self) -> list[Notifier]:
        return list(self._by_platform.values())


class ProgressReporter:
    """Passes progress on to the job's chat, throttled, without making the core wait for the chat.

    Sends run in the background, one at a time per job and newest-wins, so a slow or
    rate-limited chat never stalls the scheduler or the tracker, and edits stay in order.
    """

    def __init__(
        self,
        notifiers: Notifiers,
        jobs: JobStore,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifiers = notifiers
        self._jobs = jobs
        self._interval = interval
        self._clock = clock
        self._last: dict[str, tuple[float, Progress]] = {}
        self._pending: dict[str, tuple[Job, Progress]] = {}
        self._message_ids: dict[str, str] = {}
        self._closed: set[str] = set()
        self._senders: dict[str, asyncio.Task[None]] = {}

    async def report(self, job: Job, progress: Progress) -> None:
        if job.id in self._closed:
            return
        now = self._clock()
        last = self._last.get(job.id)
        if last is not None:
            last_at, last_progress = last
            if last_progress == progress:
                return
            if last_progress.stage == progress.stage and now - last_at < self._interval:
                return
        if self._notifiers.for_job(job) is None:
            return
        self._last[job.id] = (now, progress)
        self._pending[job.id] = (job, progress)
        if job.id not in self._senders:
            self._senders[job.id] = asyncio.create_task(self._send(job.id), name=f"progress-{job.id}")

    async def _send(self, job_id: str) -> None:
        try:
            while (pending := self._pending.pop(job_id, None)) is not None:
                job, progress = pending
                notifier = self._notifiers.for_job(job)
                if notifier is None or job_id in self._closed:
                    continue  # its outcome is being (or was) posted: no stale "generating" after it
                # The message an earlier send created, even if `job` was read before it existed.
                known = self._message_ids.get(job_id, job.status_message_id)
                try:
                    message_id = await notifier.progress(job.evolve(status_message_id=known), progress)
                except Exception:  # a chat hiccup must never break the job's own life
                    log.exception("progress update for job %s failed", job_id)
                    continue
                if message_id and message_id != known:
                    self._message_ids[job_id] = message_id
                    await self._jobs.update(job_id, status_message_id=message_id)
        finally:
            self._senders.pop(job_id, None)

    async def close(self, job_id: str) -> None:
        """The job's outcome is about to be posted: drop progress not yet sent, wait for the
        edit under way (so it cannot land after the result), and send no more."""
        self._closed.add(job_id)
        self._pending.pop(job_id, None)
        sender = self._senders.get(job_id)
        if sender is not None and sender is not asyncio.current_task():
            await asyncio.gather(sender, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the sends under way (at shutdown, and in tests)."""
        while self._senders:
            await asyncio.gather(*list(self._senders.values()), return_exceptions=True)

    def forget(self, job_id: str) -> None:
        """The job is delivered: nothing about it needs remembering."""
        for memory in (self._last, self._message_ids, self._pending):
            memory.pop(job_id, None)
        self._closed.discard(job_id)

    async def alert_operator(self, text: str) -> None:
        log.error("operator alert: %s", text)
        for notifier in self._notifiers.all():
            try:
                await notifier.alert_operator(text)
            except Exception:
                log.exception("could not alert the operator")
