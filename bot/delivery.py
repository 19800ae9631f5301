"""Handing a job's outcome to its chat, once.

A finished video is streamed to a temporary file (never held whole in memory),
checked against the platform's upload limit, and passed to the notifier; a video
too large for the chat goes out as a link. Failures reach the user with the reason.
The job becomes DELIVERED only after the notifier succeeded, so a crash or a chat
outage means a later retry, never a lost result.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.domain import OUTCOME_STATES, Job, JobKind, JobState, ResultAction
from bot.ports import DeliveryFailed, JobStore, Notifier, Upstream, VideoDelivery
from bot.progress import Notifiers, ProgressReporter
from bot.upstream import errors as ue

log = logging.getLogger(__name__)


def result_buttons(job: Job) -> tuple[ResultAction, ...]:
    """The buttons a finished video gets; an upscaled video is not upscaled again."""
    if job.request.kind is JobKind.UPSCALE:
        return (ResultAction.REROLL, ResultAction.EXTEND)
    return (ResultAction.REROLL, ResultAction.REMIX, ResultAction.UPSCALE, ResultAction.EXTEND)


def describe_settings(job: Job) -> str:
    r = job.request
    parts = [r.kind.value if r.kind in {JobKind.UPSCALE, JobKind.EXTEND} else None]
    if r.kind is not JobKind.UPSCALE:
        parts += [r.model, f"{r.duration}s", r.quality]
        if r.kind is JobKind.CREATE:
            parts += [r.aspect_ratio, r.style]
        if r.character:
            parts.append(f"character {r.character}")
        if r.motion is not None:
            parts.append(f"motion {r.motion}")
        if r.audio:
            parts.append("audio")
        if r.off_peak:
            parts.append("off-peak")
        parts.append(f"seed {r.seed}")
    return " · ".join(p for p in parts if p)


def build_caption(job: Job, limit: int) -> str:
    """Prompt, then the settings line and the job id; the prompt is cut (at a word) to fit."""
    r = job.request
    tail = f"{describe_settings(job)}\njob {job.id}"
    if r.negative_prompt:
        tail = f"avoid: {r.negative_prompt}\n{tail}"
    prompt = r.user_prompt.strip()
    room = limit - len(tail) - 1
    if room <= 0:
        return tail[:limit]
    if len(prompt) > room:
        cut = prompt[: max(0, room - 1)]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        prompt = cut.rstrip(" ,.;:") + "…"
    return f"{prompt}\n{tail}" if prompt else tail


class Deliverer:
    def __init__(
        self,
        *,
        jobs: JobStore,
        upstream: Upstream,
        notifiers: Notifiers,
        progress: ProgressReporter,
        on_outcome: Callable[[Job], Awaitable[None]],
        temp_dir: Path | None = None,
    ) -> None:
        self._jobs = jobs
        self._on_outcome = on_outcome
        self._upstream = upstream
        self._notifiers = notifiers
        self._progress = progress
        self._temp_dir = temp_dir
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def schedule(self, job: Job) -> None:
        """Deliver in the background (callers are scheduler/tracker loops that must not wait)."""
        task = asyncio.create_task(self.deliver(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver_pending(self) -> None:
        """Retry every finished-but-undelivered job (at start, and periodically)."""
        for job in await self._jobs.in_states(OUTCOME_STATES):
            await self.deliver(job)

    async def drain(self) -> None:
        """Wait for background deliveries (used at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def deliver(self, job: Job) -> bool:
        """Deliver one job's outcome; returns True when it is now DELIVERED."""
        if job.id in self._busy:
            return False
        notifier = self._notifiers.for_job(job)
        if notifier is None:
            log.info("job %s waits: no %s adapter is running", job.id, job.chat.platform)
            return False
        # The guard spans the post *and* the DELIVERED write: released earlier, the
        # retry loop could see the job still undelivered and post it a second time.
        self._busy.add(job.id)
        try:
            return await self._deliver_once(job.id, notifier)
        finally:
            self._busy.discard(job.id)

    async def _deliver_once(self, job_id: str, notifier: Notifier) -> bool:
        current = await self._jobs.get(job_id)
        if current is None or current.state not in OUTCOME_STATES:
            return False
        await self._progress.close(job_id)
        # Read again once closed: a first progress post still under way (slowed by a 429)
        # has now stored its message id, and the outcome must mark that message final.
        current = await self._jobs.get(job_id) or current
        try:
            # Settle the quota (and count PixVerse refusals) before the user hears of it.
            await self._on_outcome(current)
            if current.state is JobState.COMPLETED:
                await self._deliver_video(current, notifier)
            else:
                await notifier.failed(current, current.failure or "The video could not be made.")
        except DeliveryFailed as exc:
            if exc.retry:
                log.warning("delivering job %s failed, will retry: %s", job_id, exc)
                return False
            log.warning("job %s cannot be delivered (%s); marking it delivered", job_id, exc)
        except ue.UpstreamError as exc:
            log.warning("fetching job %s's video failed, will retry: %r", job_id, exc)
            return False
        except Exception:
            log.exception("delivering job %s failed, will retry", job_id)
            return False
        self._progress.forget(job_id)
        return await self._jobs.transition(job_id, OUTCOME_STATES, JobState.DELIVERED) is not None

    async def _deliver_video(self, job: Job, notifier: Notifier) -> None:
        caption = build_caption(job, notifier.caption_limit)
        buttons = result_buttons(job)
        limit = notifier.upload_limit(job)
        with tempfile.TemporaryDirectory(dir=self._temp_dir, prefix="pixverse-") as tmp:
            path = Path(tmp) / f"{job.id}.mp4"
            try:
                size = await self._upstream.download(job.result_url or "", path, max_bytes=limit)
            except ue.TooLarge:
                await notifier.deliver(job, VideoDelivery(caption=caption, buttons=buttons, link=job.result_url))
                return
            await notifier.deliver(
                job, VideoDelivery(caption=caption, buttons=buttons, file=path, link=job.result_url, size_bytes=size)
            )
