"""Sending queued jobs upstream: when there is capacity, fairly across users.

Every step is written before it is taken: a job moves QUEUED → SUBMITTING (with
the account) before the request is sent, and SUBMITTING → SUBMITTED (with the video
id) after. A crash in between leaves a SUBMITTING job, which `recover()` resolves by
looking its replyRef (the job id) up upstream — never by sending it again.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.accounts import AccountPool
from bot.blobs import load_image
from bot.cache import LruDict, LruSet
from bot.catalogue import Catalogue
from bot.domain import IN_FLIGHT_STATES, GenerationRequest, ImageRef, Job, JobState, utcnow
from bot.errors import BotError
from bot.periodic import PeriodicTask
from bot.ports import BlobStore, JobStore, Progress, ProgressStage, Upstream
from bot.progress import ProgressReporter
from bot.submission import UpstreamRequest, build_upstream_request, source_account
from bot.upstream import errors as ue
from bot.upstream.models import (
    CreateFramesRequest,
    CreateFusionRequest,
    CreateTransitionRequest,
    CreateVideoRequest,
    ExtendRequest,
    UpscaleRequest,
    VideoCreated,
    account_email_of,
)

log = logging.getLogger(__name__)

# How far back to look for a lost submission: clocks differ, requests take time.
LOST_SUBMISSION_LOOKBACK = timedelta(minutes=10)

# Users whose last service is remembered for fairness. Every queued user is looked up
# each pass, which keeps them in; only users neither queued nor recently served fall
# out, and on their return they rank as "never served" — i.e. served longest ago,
# which is where they were anyway. So the bound only needs to exceed the queue's users.
FAIRNESS_USERS_REMEMBERED = 10_000
# Queued jobs whose owners were told the accounts are unavailable (told once per job).
WAITING_NOTES_REMEMBERED = 10_000


class Scheduler:
    def __init__(
        self,
        *,
        jobs: JobStore,
        blobs: BlobStore,
        upstream: Upstream,
        accounts: AccountPool,
        progress: ProgressReporter,
        on_finished: Callable[[Job], object],
        reply_url_for: Callable[[str], str | None],
        max_in_flight_per_user: int,
        busy_retry_initial: float,
        busy_retry_max: float,
        queue_timeout: float,
        interval: float,
        unknown_outcome_grace: float = 30.0,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._jobs = jobs
        self._blobs = blobs
        self._upstream = upstream
        self._accounts = accounts
        self._progress = progress
        self._on_finished = on_finished
        self._reply_url_for = reply_url_for
        self._max_in_flight = max_in_flight_per_user
        self._busy_initial = busy_retry_initial
        self._busy_max = busy_retry_max
        self._queue_timeout = timedelta(seconds=queue_timeout)
        self._loop = PeriodicTask(self.submit_ready, interval, "scheduler")
        # A job leaves the queue within the queue timeout, so an id not looked at for
        # that long is of a job gone from it: it is forgotten then.
        self._told_waiting: LruSet[str] = LruSet(WAITING_NOTES_REMEMBERED, ttl=queue_timeout)
        # When each user last had a job sent: round-robin serves the longest-unserved first.
        self._last_served: LruDict[str, float] = LruDict(FAIRNESS_USERS_REMEMBERED)
        self._submitting: set[str] = set()
        self._left_queue: set[str] = set()
        # How long a submission with an unknown outcome (answer lost, or the process died)
        # waits before it is looked up: the upstream lists a just-accepted video late.
        self._unknown_outcome_grace = timedelta(seconds=unknown_outcome_grace)
        self._served_counter = 0.0

    def wake(self) -> None:
        """Something changed: do a pass now."""
        self._loop.wake()

    async def run(self) -> None:
        await self._loop.run()

    async def recover(self) -> None:
        """Settle jobs left SUBMITTING: after a restart, or when a submission's answer was lost.

        Each is looked up upstream by its replyRef: found, it is running; not found, it
        goes back to the queue. A job is looked up only once it has been SUBMITTING for
        the grace period, at start-up too: the upstream lists a video it has just
        accepted late, and a lookup before then would miss it and send the job again —
        paying twice. Younger ones are left to a later pass (each pass calls this).
        Jobs this process is submitting right now are left alone.
        """
        cutoff = utcnow() - self._unknown_outcome_grace
        for job in await self._jobs.in_states([JobState.SUBMITTING]):
            if job.id in self._submitting or job.updated_at > cutoff:
                continue
            since = job.updated_at - LOST_SUBMISSION_LOOKBACK
            try:
                video_id = await self._upstream.find_submitted(
                    job.id, email=job.account, since=since, prompt=job.request.prompt or None, seed=job.request.seed
                )
            except ue.UpstreamError as exc:
                log.warning("cannot check job %s's submission yet: %r", job.id, exc)
                continue
            if video_id:
                await self._mark_submitted(job, video_id)
            else:
                await self._jobs.transition(job.id, JobState.SUBMITTING, JobState.QUEUED)

    # ------------------------------------------------------------------ the pass

    async def submit_ready(self) -> int:
        """Submit as many queued jobs as accounts can take; returns how many went out."""
        await self.recover()
        queued = await self._jobs.in_states([JobState.QUEUED])
        if not queued:
            return 0
        self._left_queue.clear()  # jobs submitted, failed or expired during this pass
        await self._expire_stale(queued)
        # Only jobs that hold a slot count against the per-user cap (off-peak ones have their own, at accept).
        in_flight: dict[str, int] = defaultdict(
            int, await self._jobs.count_in_flight_by_user(IN_FLIGHT_STATES, off_peak=False)
        )
        await self._accounts.refresh()
        sent = 0
        for job in self.fair_order(queued, in_flight, self._last_served, utcnow()):
            takes_slot = self.takes_slot(job)
            if takes_slot and in_flight[job.user.key] >= self._max_in_flight:
                continue
            email = await self._account_for(job)
            if email is None:
                continue  # no room for this job now; a job behind it may fit elsewhere
            if await self._submit(job, email):
                self._left_queue.add(job.id)
                in_flight[job.user.key] += takes_slot
                self._served_counter += 1
                self._last_served[job.user.key] = self._served_counter
                sent += 1
        await self._report_positions([job for job in queued if job.id not in self._left_queue])
        return sent

    @staticmethod
    def takes_slot(job: Job) -> bool:
        """Whether the job holds one of its account's slots while it runs.

        Off-peak jobs do not: useapi.net's scheduler does not track them nor count them
        towards an account's running jobs (post-pixverse-videos-create-v4.md). They are
        still sent to an account (the create names one), but take nothing from it.
        """
        return not job.request.off_peak

    def _release(self, job: Job, email: str | None) -> None:
        """Give back the slot `job` took on `email` when it was picked (none if it took none)."""
        if self.takes_slot(job):
            self._accounts.release(email or "")

    @staticmethod
    def fair_order(
        queued: list[Job], in_flight: dict[str, int], last_served: Mapping[str, float], now: datetime
    ) -> list[Job]:
        """Round-robin across users: everyone's first job, then everyone's second …

        Within a round, users with fewer jobs already running go first, then the one
        served longest ago (never served: first), then the one whose job is oldest.
        One user's burst therefore delays another's single job by at most one slot.
        """
        per_user: dict[str, list[Job]] = defaultdict(list)
        for job in sorted(queued, key=lambda j: (j.created_at, j.id)):
            if job.not_before is None or job.not_before <= now:
                per_user[job.user.key].append(job)
        users = sorted(
            per_user, key=lambda u: (in_flight.get(u, 0), last_served.get(u, 0.0), per_user[u][0].created_at)
        )
        ordered: list[Job] = []
        for round_index in range(max((len(v) for v in per_user.values()), default=0)):
            ordered.extend(per_user[u][round_index] for u in users if round_index < len(per_user[u]))
        return ordered

    async def _account_for(self, job: Job) -> str | None:
        """Take a slot for `job` on the account it must run on; None when there is none now.

        An upscale or extend runs on the account that made its source video (its id names
        it): it waits for a slot there, never takes one elsewhere. Any other job takes the
        account with the most room. A job whose account is no longer in use fails (refunded).
        An off-peak job takes no slot (see `takes_slot`), only an account that takes work now.
        """
        needs_slot = self.takes_slot(job)
        owner = source_account(job.request)
        if owner is None:
            return self._accounts.pick() if needs_slot else self._accounts.pick_without_slot()
        if not self._accounts.serves(owner):
            log.warning("job %s needs account %s, which is not in use any more", job.id, owner)
            await self._fail_queued(
                job,
                f"The video to {job.request.kind.value} was made on a PixVerse account this bot no longer uses,"
                f" and an {job.request.kind.value} can only run on the account that made the video."
                " Nothing was charged.",
            )
            return None
        return self._accounts.take(owner, needs_slot=needs_slot)

    async def _submit(self, job: Job, email: str) -> bool:
        self._submitting.add(job.id)
        try:
            return await self._submit_claimed(job, email)
        finally:
            self._submitting.discard(job.id)

    async def _submit_claimed(self, job: Job, email: str) -> bool:
        claimed = await self._jobs.transition(
            job.id, JobState.QUEUED, JobState.SUBMITTING, account=email, attempts=job.attempts + 1
        )
        if claimed is None:
            self._release(job, email)
            return False
        try:
            request = await self._with_uploaded_images(claimed, email)
            upstream_request = build_upstream_request(
                request,
                email=email,
                reply_ref=claimed.id,
                reply_url=self._reply_url_for(claimed.id),
                catalogue=self._catalogue,
            )
            created = await self._send(upstream_request)
        except Exception as exc:  # every outcome is decided in one place
            await self._handle_submit_error(claimed, email, exc)
            return False
        if self._accounts.accepted(email):
            await self._progress.alert_operator(f"PixVerse account {email} works again.")
        await self._mark_submitted(claimed, created.id)
        return True

    async def _send(self, request: UpstreamRequest) -> VideoCreated:
        if isinstance(request, UpscaleRequest):
            return await self._upstream.upscale_video(request)
        if isinstance(request, ExtendRequest):
            return await self._upstream.extend_video(request)
        if isinstance(request, CreateFramesRequest):
            return await self._upstream.create_frames(request)
        if isinstance(request, CreateTransitionRequest):
            return await self._upstream.create_transition(request)
        if isinstance(request, CreateFusionRequest):
            return await self._upstream.create_fusion(request)
        if isinstance(request, CreateVideoRequest):
            return await self._upstream.create_video(request)
        raise TypeError(f"no upstream call sends a {type(request).__name__}")

    async def _with_uploaded_images(self, job: Job, email: str) -> GenerationRequest:
        """The request with every picture uploaded: each one not uploaded yet goes up now."""
        request = job.request
        if all(image.path for image in request.images):
            return request
        uploaded: list[ImageRef] = []
        for image in request.images:
            if image.path:
                uploaded.append(image)
                continue
            data, content_type = await load_image(self._blobs, image.blob_id)
            sent = await self._upstream.upload_file(data, content_type, email=email)
            uploaded.append(ImageRef(image.blob_id, sent.reference_path))
        request = request.with_images(tuple(uploaded))
        # Persist the paths so a retry (or a restart) does not upload again; the
        # upstream keeps the pictures from now on (rerolls reuse the paths).
        await self._jobs.update(job.id, request=request)
        for image in request.images:
            if image.blob_id:
                await self._blobs.delete(image.blob_id)
        return request

    async def _mark_submitted(self, job: Job, video_id: str) -> None:
        account = account_email_of(video_id) or job.account
        done = await self._jobs.transition(
            job.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id=video_id, account=account, submitted_at=utcnow()
        )
        if done is not None:
            self._told_waiting.discard(job.id)
            await self._progress.report(done, Progress(ProgressStage.STARTED, elapsed_seconds=0))

    async def _handle_submit_error(self, job: Job, email: str, exc: Exception) -> None:
        if isinstance(exc, ue.Busy):
            # Not an error for the user, nor the job's fault: the account is full. The
            # account's backoff keeps every job off it (this pass included) until one
            # probe is due; the job itself may go to another account at once.
            backoff = self._accounts.mark_busy(email)
            log.info("account %s is busy (429); next probe in %.0f s", email, backoff)
            await self._requeue(job)
        elif isinstance(exc, ue.InsufficientCredits | ue.AccountNeedsAttention | ue.Unauthorized):
            reason = "out of credits" if isinstance(exc, ue.InsufficientCredits) else "needs attention"
            if isinstance(exc, ue.Unauthorized):
                reason = "rejected the useapi.net token"
            if self._accounts.pause(email, reason):
                await self._progress.alert_operator(
                    f"PixVerse account {email} {reason} ({exc.detail or exc.status}); "
                    "jobs are held for other accounts until it works again."
                )
            await self._requeue(job)
        elif isinstance(exc, ue.OutcomeUnknown):
            # The request may have run: leave it SUBMITTING for recover() to look up.
            log.warning("job %s: submission outcome unknown (%r); will look it up", job.id, exc)
        elif isinstance(exc, ue.Moderated):
            await self._finish(job, JobState.MODERATED, str(exc))
        elif isinstance(exc, ue.BadRequest | ue.RequestInvalid | ue.NotFound | BotError):
            await self._finish(job, JobState.FAILED, str(exc))
        elif isinstance(exc, ue.UpstreamError):
            # Nothing ran (connection refused, 5xx the client proved harmless): try later.
            log.warning("job %s: upstream error while submitting: %r", job.id, exc)
            await self._requeue(job, delay=self._backoff(job.attempts))
        else:
            log.exception("job %s: unexpected error while submitting", job.id, exc_info=exc)
            await self._finish(job, JobState.FAILED, "Something went wrong on our side while starting the video.")

    def _backoff(self, attempts: int) -> float:
        # Exponential with jitter: the upstream asks for 10–30 s between retries.
        base = min(self._busy_max, self._busy_initial * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.75, 1.25)

    async def _requeue(self, job: Job, delay: float = 0.0) -> None:
        self._release(job, job.account)
        not_before = utcnow() + timedelta(seconds=delay) if delay else None
        await self._jobs.transition(job.id, JobState.SUBMITTING, JobState.QUEUED, not_before=not_before)

    async def _finish(self, job: Job, state: JobState, reason: str) -> None:
        self._left_queue.add(job.id)
        self._release(job, job.account)
        done = await self._jobs.transition(job.id, JobState.SUBMITTING, state, failure=reason)
        if done is not None:
            self._on_finished(done)

    async def _expire_stale(self, queued: list[Job]) -> None:
        limit = utcnow() - self._queue_timeout
        for job in queued:
            if job.created_at < limit:
                await self._fail_queued(
                    job, "Timed out waiting in the queue; nothing was charged. Please try again later."
                )

    async def _fail_queued(self, job: Job, reason: str) -> None:
        """End a job that never left the queue (its reservation is refunded when it is delivered)."""
        self._left_queue.add(job.id)
        done = await self._jobs.transition(job.id, JobState.QUEUED, JobState.FAILED, failure=reason)
        if done is not None:
            self._on_finished(done)

    async def _report_positions(self, still_queued: list[Job]) -> None:
        """Tell queued users their place; a pass reads the queue only once.

        Every queued job is reported on every pass: the progress pipeline shows a place
        only when it changed meaningfully, within the chat's budget, newest first.
        """
        waiting_note = None
        if self._accounts.none_known():
            waiting_note = (
                "The bot's PixVerse account(s) "
                + ", ".join(self._accounts.unknown_accounts())
                + " are not known to useapi.net. Your request stays in the queue; the operator has been told."
            )
        elif self._accounts.all_paused():
            waiting_note = (
                "The bot's PixVerse accounts are unavailable right now ("
                + ", ".join(self._accounts.pause_reasons())
                + "). Your request stays in the queue; the operator has been told."
            )
        for position, job in enumerate(still_queued, start=1):
            if waiting_note and job.id not in self._told_waiting:
                self._told_waiting.add(job.id)
                await self._progress.report(
                    job, Progress(ProgressStage.WAITING, queue_position=position, note=waiting_note)
                )
            elif not waiting_note:
                await self._progress.report(job, Progress(ProgressStage.QUEUED, queue_position=position))
