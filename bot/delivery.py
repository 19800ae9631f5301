"""Handing a job's outcome to its chat, once.

A finished video is streamed to a temporary file (never held whole in memory),
checked against the platform's upload limit, and passed to the notifier; a video
too large for the chat goes out as a link. Failures reach the user with the reason.
The job becomes DELIVERED only after the notifier succeeded, so a crash or a chat
outage means a later retry, never a lost result. It becomes DELIVERED right after the
post itself, before the notifier marks the progress message final (`Notifier.finish`):
a process that dies between the post and the record has the video posted again by
whoever takes the job over, so nothing but the post may stand in between.

Deliveries are bounded: at most `DeliveryPolicy.max_concurrent` download-and-post
at once, and a failed one waits (doubling, capped) before the next try; the wait
is stored with the job, so a restart keeps it. After `max_attempts` failed tries
the user is told plainly that the video was made but could not be posted, with
its link, and the job is closed. Its quota stays committed: PixVerse charged the
credits, and the video exists at that link (README "How it works").
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from bot.catalogue import Catalogue, Feature, shipped_catalogue
from bot.domain import OUTCOME_STATES, Job, JobKind, JobState, MediaType, ResultAction, utcnow
from bot.kinds import kind_of
from bot.ports import DeliveryFailed, JobStore, Notifier, Posted, Upstream, VideoDelivery
from bot.progress import Notifiers, ProgressReporter
from bot.upstream import errors as ue

log = logging.getLogger(__name__)


def result_buttons(job: Job, catalogue: Catalogue) -> tuple[ResultAction, ...]:
    """The buttons a finished video gets: reroll always; remix where its kind takes a
    prompt to change; upscale, extend and lip-sync where the catalogue allows them for its
    model (an upscaled video is not upscaled again; a preview's upscale is its full version);
    modify where some model modifies videos; a picture can only be made again."""
    request = job.request
    kind = kind_of(request.kind)
    if request.makes is MediaType.PICTURE:
        return (ResultAction.REROLL,)  # an image template's picture: nothing to upscale or extend
    offered = {
        ResultAction.REROLL: True,
        ResultAction.REMIX: kind is not None and kind.remixable,
        ResultAction.UPSCALE: request.kind is not JobKind.UPSCALE and catalogue.can_upscale(request.model),
        ResultAction.EXTEND: catalogue.extend_model_for(request.model) is not None,
        ResultAction.MODIFY: bool(catalogue.having(Feature.MODIFY)),
        ResultAction.LIPSYNC: catalogue.can_lipsync(request.model),
    }
    return tuple(action for action, shown in offered.items() if shown)


def _short(text: str, limit: int = 60) -> str:
    """A quoted text cut to fit the settings line (the whole of it is in the job)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_settings(job: Job) -> str:
    r = job.request
    if r.kind is JobKind.EFFECT:
        return " · ".join(
            p
            for p in (
                f"effect {r.effect_name}",
                f"{r.duration}s" if r.makes is MediaType.VIDEO else "picture",
                f"seed {r.seed}",
            )
            if p
        )
    parts = [r.kind.value if r.kind in {JobKind.UPSCALE, JobKind.EXTEND, JobKind.MODIFY, JobKind.LIPSYNC} else None]
    if r.kind is JobKind.LIPSYNC:
        # Its length and quality are the lip-synced video's: what it speaks is what it adds.
        said = f"says “{_short(r.speech)}”" if r.speech else "your audio"
        return " · ".join(p for p in (*parts, said, f"voice {r.voice_name}" if r.voice_name else "") if p)
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
        if r.sound_effect:
            parts.append(f"sfx “{_short(r.sound_effect)}”")
        if r.auto_sound:
            parts.append("auto sound")
        if r.speech:
            parts.append(f"says “{_short(r.speech)}”" + (f" ({r.voice_name})" if r.voice_name else ""))
        if r.off_peak:
            parts.append("off-peak")
        if r.preview:
            parts.append("preview (⬆️ Upscale for the full video)")
        parts.append(f"seed {r.seed}")
    return " · ".join(p for p in parts if p)


# Under every video made by the built-in sandbox when it serves a chat (BOT_SANDBOX=true with `run`).
SYNTHETIC_NOTE = "(synthetic sandbox video, not made by PixVerse)"


def build_caption(job: Job, limit: int, *, synthetic: bool = False) -> str:
    """Prompt, then the settings line and the job id; the prompt is cut (at a word) to fit.

    `synthetic` adds a line saying the video came from the offline sandbox.
    """
    r = job.request
    tail = f"{describe_settings(job)}\njob {job.id}"
    if synthetic:
        tail = f"{tail}\n{SYNTHETIC_NOTE}"
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


# A group becomes a supergroup once; a chat that keeps "moving" within one delivery is a loop.
MAX_CHAT_MOVES = 2
# Caps the doubling's exponent: past it the wait is retry_max anyway, and 2**n stays a float.
_MAX_DOUBLINGS = 32


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How many outcomes are posted at once, and how a failed post is retried."""

    # Each delivery may hold a whole video (up to 2000 MB with a local Bot API server) on disk.
    max_concurrent: int = 4
    retry_initial: float = 30.0
    retry_max: float = 1800.0
    max_attempts: int = 10

    def backoff(self, failed_attempts: int) -> timedelta:
        """The wait after `failed_attempts` failed tries: `retry_initial`, doubling, at most `retry_max`."""
        doublings = min(max(failed_attempts - 1, 0), _MAX_DOUBLINGS)
        return timedelta(seconds=min(self.retry_max, self.retry_initial * 2**doublings))


def undeliverable_text(job: Job, tries: int, reason: str) -> str:
    """What the user reads when a made video could not be posted and the bot stops trying."""
    text = f"The video was made, but posting it here failed {tries} times ({reason}), so I stopped trying."
    if job.result_url:
        text += f" It may still be downloadable at {job.result_url}"
    return text


class Deliverer:
    def __init__(
        self,
        *,
        jobs: JobStore,
        upstream: Upstream,
        notifiers: Notifiers,
        progress: ProgressReporter,
        on_outcome: Callable[[Job], Awaitable[None]],
        policy: DeliveryPolicy | None = None,
        temp_dir: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
        synthetic: bool = False,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._jobs = jobs
        # Decides which buttons a video gets (its model's upscale and extend).
        self._catalogue = catalogue or shipped_catalogue()
        # Videos come from the offline sandbox, yet reach real chat members: captions say so.
        self._synthetic = synthetic
        self._on_outcome = on_outcome
        self._upstream = upstream
        self._notifiers = notifiers
        self._progress = progress
        self._policy = policy or DeliveryPolicy()
        self._temp_dir = temp_dir
        self._clock = clock
        self._slots = asyncio.Semaphore(self._policy.max_concurrent)
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def schedule(self, job: Job) -> None:
        """Deliver in the background (callers are scheduler/tracker loops that must not wait)."""
        # deliver() never raises, so no task is left holding an exception nobody reads.
        task = asyncio.create_task(self.deliver(job), name=f"deliver-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver_pending(self) -> None:
        """Retry every finished-but-undelivered job whose backoff is over (at start, and periodically).

        The jobs run side by side, bounded like every delivery; one job's failure is
        logged and retried on its own, never keeping the others from their turn.
        """
        now = self._clock()
        due = [
            job
            # Those this process is responsible for (see `bot.instances`): the others are
            # another live process's to post, and two posts of one video are one too many.
            for job in await self._jobs.claimable(OUTCOME_STATES, platforms=self._notifiers.platforms())
            if job.deliver_after is None or job.deliver_after <= now
        ]
        await asyncio.gather(*(self.deliver(job) for job in due))

    async def drain(self) -> None:
        """Wait for background deliveries (used at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def deliver(self, job: Job) -> bool:
        """Deliver one job's outcome; returns True when it is now DELIVERED.

        Never raises (cancellation aside): whatever goes wrong is logged, and the job
        stays undelivered for a later pass.
        """
        if job.id in self._busy:
            return False
        # The guard spans the wait for a slot, the post *and* the DELIVERED write: released
        # earlier, the retry loop could see the job still undelivered and post it a second time.
        self._busy.add(job.id)
        try:
            notifier = self._notifiers.for_job(job)
            if notifier is None:
                log.info("job %s waits: no %s adapter is running", job.id, job.chat.platform)
                # Left to a process that runs one (several processes on one database may
                # not all run every adapter); alone, this process claims it again later.
                await self._jobs.release(job.id)
                return False
            async with self._slots:
                return await self._deliver_once(job.id, notifier)
        except Exception:
            log.exception("delivering job %s failed; a later pass retries it", job.id)
            return False
        finally:
            self._busy.discard(job.id)

    async def _deliver_once(self, job_id: str, notifier: Notifier) -> bool:
        # Claimed, not just read: of several processes on one database only the job's owner
        # (or the one taking it over from an owner that is gone) posts it.
        current = await self._jobs.claim(job_id, OUTCOME_STATES)
        if current is None:
            return False
        await self._progress.close(job_id)
        # Read again once closed: a first progress post still under way (slowed by a 429)
        # has now stored its message id, and the outcome must mark that message final.
        current = await self._jobs.get(job_id) or current
        posted: Posted | None = None
        try:
            # Settle the quota (and count PixVerse refusals) before the user hears of it.
            await self._on_outcome(current)
            if current.state is JobState.COMPLETED:
                posted = await self._deliver_video(current, notifier)
            else:
                reason = current.failure or "The video could not be made."
                posted = await self._post(current, lambda job: notifier.failed(job, reason))
        except DeliveryFailed as exc:
            if exc.retry:
                return await self._failed_try(current, notifier, str(exc))
            log.warning("job %s cannot be delivered (%s); marking it delivered", job_id, exc)
        except ue.UpstreamError as exc:
            return await self._failed_try(current, notifier, f"fetching the video failed: {exc}")
        except Exception:
            log.exception("delivering job %s failed", job_id)
            return await self._failed_try(current, notifier, "an internal error")
        return await self._mark_delivered(job_id, notifier, posted)

    async def _deliver_video(self, job: Job, notifier: Notifier) -> Posted:
        caption = build_caption(job, notifier.caption_limit, synthetic=self._synthetic)
        buttons = result_buttons(job, self._catalogue)
        limit = notifier.upload_limit(job)
        delivery = VideoDelivery(caption=caption, buttons=buttons, link=job.result_url, media=job.request.makes)
        with tempfile.TemporaryDirectory(dir=self._temp_dir, prefix="pixverse-") as tmp:
            path = Path(tmp) / f"{job.id}.{delivery.extension}"
            try:
                size = await self._upstream.download(job.result_url or "", path, max_bytes=limit)
            except ue.TooLarge:
                pass  # too large for the chat: the link goes instead
            else:
                delivery = replace(delivery, file=path, size_bytes=size)
            return await self._post(job, lambda moved: notifier.deliver(moved, delivery))

    async def _post(self, job: Job, send: Callable[[Job], Awaitable[Posted]]) -> Posted:
        """Send to the job's chat; a chat that moved (DeliveryFailed.moved_to) is followed at once."""
        for _ in range(MAX_CHAT_MOVES):
            try:
                return await send(job)
            except DeliveryFailed as exc:
                if exc.moved_to is None or exc.moved_to == job.chat.chat_id:
                    raise
                job = await self._move_chat(job, exc.moved_to)
        return await send(job)

    async def _move_chat(self, job: Job, chat_id: str) -> Job:
        """Point the job at its chat's new id, so this post and every later one go there."""
        log.info("job %s: chat %s moved to %s; posting there", job.id, job.chat.chat_id, chat_id)
        # Message ids belong to the old chat: the new one has no message to reply to or edit.
        requester = replace(job.requester, chat=replace(job.chat, chat_id=chat_id), reply_to=None)
        moved = await self._jobs.update(job.id, requester=requester, status_message_id=None)
        return moved or job.evolve(requester=requester, status_message_id=None)

    async def _failed_try(self, job: Job, notifier: Notifier, reason: str) -> bool:
        """Count a failed try: wait longer before the next, or give up after the last."""
        tries = job.delivery_attempts + 1
        if tries < self._policy.max_attempts:
            wait = self._policy.backoff(tries)
            log.warning(
                "delivering job %s failed (try %d of %d), next try in %.0f s: %s",
                job.id,
                tries,
                self._policy.max_attempts,
                wait.total_seconds(),
                reason,
            )
            await self._jobs.update(job.id, delivery_attempts=tries, deliver_after=self._clock() + wait)
            return False
        log.error("giving up on delivering job %s after %d tries: %s", job.id, tries, reason)
        await self._jobs.update(job.id, delivery_attempts=tries, deliver_after=None)
        if job.state is JobState.COMPLETED:
            # A failed job's outcome *is* the failure message, which is what kept failing;
            # a made video gets one plain message with its link instead.
            latest = await self._jobs.get(job.id) or job  # the chat may have moved meanwhile
            try:
                posted = await self._post(
                    latest, lambda moved: notifier.failed(moved, undeliverable_text(moved, tries, reason))
                )
            except Exception:  # given up means given up: no further tries, whatever this raised
                log.exception("could not tell the requester of job %s either", job.id)
            else:
                return await self._mark_delivered(job.id, notifier, posted)
        return await self._mark_delivered(job.id, notifier, None)

    async def _mark_delivered(self, job_id: str, notifier: Notifier, posted: Posted | None) -> bool:
        """Record the job DELIVERED, then have the notifier finish what it `posted` (None: nothing was).

        The record comes first: a finish that fails, hangs on a rate limit or never runs
        (the process died) costs a stale progress message, never a second post.
        """
        self._progress.forget(job_id)
        delivered = await self._jobs.transition(job_id, OUTCOME_STATES, JobState.DELIVERED)
        if delivered is None:
            return False
        if posted is not None:
            try:
                # The job as stored now: a chat that moved during the post is where its progress message is.
                await notifier.finish(delivered, posted)
            except Exception:
                log.warning("job %s is delivered; its progress message was not marked final", job_id, exc_info=True)
        return True
