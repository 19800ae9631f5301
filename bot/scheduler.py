"""Sending queued jobs upstream: when there is capacity, fairly across users.

Every step is written before it is taken: a job moves QUEUED → SUBMITTING (with
the account) before the request is sent, and SUBMITTING → SUBMITTED (with the video
id) after. A crash in between leaves a SUBMITTING job, which `recover()` resolves by
looking its replyRef (the job id) up upstream — never by sending it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta

from bot.accounts import AccountPool
from bot.blobs import load_image
from bot.cache import LruSet
from bot.catalogue import Catalogue
from bot.domain import IN_FLIGHT_STATES, GenerationRequest, ImageRef, Job, JobState, utcnow
from bot.errors import BotError
from bot.periodic import PeriodicTask
from bot.ports import BlobStore, JobStore, Progress, ProgressStage, QueueUser, Upstream
from bot.progress import QUEUE_MOVE_FRACTION, TOP_OF_QUEUE, ProgressReporter
from bot.submission import UpstreamRequest, build_upstream_request, source_account
from bot.upstream import errors as ue
from bot.upstream.models import (
    CreateFramesRequest,
    CreateFusionRequest,
    CreateTransitionRequest,
    CreateVideoRequest,
    ExtendRequest,
    LipSyncRequest,
    ModifyRequest,
    UpscaleRequest,
    VideoCreated,
    account_email_of,
)

log = logging.getLogger(__name__)

# How far back to look for a lost submission: clocks differ, requests take time.
LOST_SUBMISSION_LOOKBACK = timedelta(minutes=10)

# What one scheduler pass reads at most, so that it costs the same at any queue length
# (and no step of it holds the event loop for long: each read builds at most this many jobs).
USERS_PER_PAGE = 32  # users read at a time, in fair order
JOBS_PER_READ = 4  # jobs of one user read at a time
# Jobs that could not go (an upscale waiting for its own account's slot) looked at per pass.
MAX_PASSED_OVER = 256
EXPIRE_PER_PASS = 256  # jobs timed out in the queue failed per pass (the next pass takes more)
OFF_PEAK_PER_PASS = 64  # off-peak jobs sent per pass (ditto)
REPORT_CHUNK = 64  # queued jobs read at a time to report their place (each read builds them all)
WAITING_PER_PASS = 256  # queued jobs told per pass that every account is paused
# Bands of queue places reported (see _PositionBands): the last starts at place 5·2^20.
POSITION_BANDS = 21
WAITING_NOTES_REMEMBERED = 10_000
# Creates one pass has in flight at once (`_Sending`). Free slots bound it first: a job is
# sent only with a slot taken for it. This bounds a pass over many free slots: each create in
# flight holds its job's pictures in memory while they upload (up to MAX_IMAGE_BYTES each)
# and a connection of the upstream client (httpx's pool of 100, shared with status reads
# and video downloads). At useapi.net's second-long create, 16 at once send about 16 jobs
# a second — more than accounts free slots (accounts × maxJobs over minutes of generation).
SENDING_AT_ONCE = 16


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
        may_send: Callable[[], Awaitable[bool]] | None = None,
        cancel_requested: Callable[[Job], Awaitable[object]] | None = None,
    ) -> None:
        # A job someone asked to cancel while it was being sent: called once it has moved on
        # (back to the queue, or running) to cancel it there (bot/cancellation.py).
        self._cancel_requested = cancel_requested
        self._catalogue = catalogue
        # Whether this process is the one that sends queued jobs now (several processes
        # on one database: see `bot.instances`); alone, it always is.
        self._may_send = may_send
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
        self._interval = interval
        # When the queue's upkeep last ran (`_upkeep_due`); None: the next pass runs it.
        self._upkept_at: float | None = None
        # A job leaves the queue within the queue timeout, so an id not looked at for
        # that long is of a job gone from it: it is forgotten then.
        self._told_waiting: LruSet[str] = LruSet(WAITING_NOTES_REMEMBERED, ttl=queue_timeout)
        self._bands = _PositionBands()
        # How far along the queue owners were told every account is paused (a job, and its place).
        self._waiting_after: Job | None = None
        self._waiting_told = 0
        self._submitting: set[str] = set()
        self._left_queue: set[str] = set()
        # Jobs queued since the last pass: in the fair order a newcomer may go ahead of
        # jobs queued earlier (a user's first job goes before others' second), moving them back.
        self._joined_queue = 0
        # How long a submission with an unknown outcome (answer lost, or the process died)
        # waits before it is looked up: the upstream lists a just-accepted video late.
        self._unknown_outcome_grace = timedelta(seconds=unknown_outcome_grace)

    def wake(self) -> None:
        """Something changed: do a pass now."""
        self._loop.wake()

    def job_queued(self) -> None:
        """A job joined the queue: send it if it can go, and retell the places it moved."""
        self._joined_queue += 1
        self.wake()

    async def run(self) -> None:
        await self._loop.run()

    async def recover(self) -> None:
        """Settle jobs left SUBMITTING: after a restart, or when a submission's answer was lost.

        Each is looked up upstream by its replyRef: found, it is running; not found, it
        goes back to the queue. A job is looked up only once it has been SUBMITTING for
        the grace period, at start-up too: the upstream lists a video it has just
        accepted late, and a lookup before then would miss it and send the job again —
        paying twice. Younger ones are left to a later pass (the upkeep calls this once an interval).
        Jobs this process is submitting right now are left alone, and so are those another
        live process is submitting (its own pass recovers them); a job whose process is
        gone (its lease ran out) is taken over and recovered here, just the same.
        """
        cutoff = utcnow() - self._unknown_outcome_grace
        for job in await self._jobs.claimable([JobState.SUBMITTING]):
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
                await self._moved_on(await self._jobs.transition(job.id, JobState.SUBMITTING, JobState.QUEUED))

    # ------------------------------------------------------------------ the pass

    def _upkeep_due(self) -> bool:
        """Whether this pass does the queue's upkeep — recovering lost submissions, failing
        jobs queued too long — which is due once an interval (and on the first pass), not
        on every wake: in a busy bot every arrival wakes the scheduler, and the upkeep's
        reads would be paid per arrival for what changes only with time."""
        now = time.monotonic()
        if self._upkept_at is not None and now - self._upkept_at < self._interval:
            return False
        self._upkept_at = now
        return True

    async def submit_ready(self) -> int:
        """Submit as many queued jobs as accounts can take; returns how many went out.

        A pass costs what it sends and reports, not the length of the queue: users are
        read in fair order a page at a time (`JobStore.queued_users`), each user's next
        jobs by an index, and only until the accounts are full.
        """
        upkeep = self._upkeep_due()
        if upkeep:
            await self.recover()
        if self._may_send is not None and not await self._may_send():
            return 0
        if not await self._jobs.queued_users(limit=1):
            return 0
        self._left_queue.clear()  # jobs submitted, failed or expired during this pass
        now = utcnow()
        if upkeep:
            await self._expire_stale(now)
        await self._accounts.refresh()
        sent = 0
        # Every slot taken (as last counted: a finished job re-reads capacity), no job that
        # takes one can go: an arrival's pass then reads none of them, only retells places.
        if self._accounts.has_room():
            # Only jobs that hold a slot count against the per-user cap (off-peak ones have their own, at accept).
            in_flight: dict[str, int] = defaultdict(
                int, await self._jobs.count_in_flight_by_user(IN_FLIGHT_STATES, off_peak=False)
            )
            sent += await self._submit_in_fair_order(in_flight, now)
        sent += await self._submit_off_peak(now)
        await self._report_positions()
        return sent

    async def _submit_in_fair_order(self, in_flight: dict[str, int], now: datetime) -> int:
        """Send jobs that take a slot, round-robin across users: everyone's first job, then
        everyone's second … (see `fair_users`), while any account has a free slot.

        Jobs are picked one at a time, in that order, and sent concurrently (`_Sending`):
        a picked job has its slot taken and counts towards its user's cap at once, before
        its create is answered; a create that fails gives both back. Each user's jobs are
        read a few at a time, and a job that cannot go now (an upscale waiting for its own
        account) does not hold back the user's others; at most `MAX_PASSED_OVER` such jobs
        (or users whose jobs all wait out a retry delay) are looked at in one pass.
        """
        turns: list[_Turn] = []
        sent = passed_over = 0

        async def send(job: Job, email: str) -> None:
            nonlocal sent
            if await self._submit(job, email):
                self._left_queue.add(job.id)
                sent += 1
            else:
                in_flight[job.user.key] -= 1  # it did not go: the user's turn is not used up

        async def take_turn(turn: _Turn, sending: _Sending) -> None:
            nonlocal passed_over
            await sending.wait_for_room()  # before a slot is taken for the job
            job = await turn.next(self._jobs, now)
            if job is None:
                # Their queued jobs wait out a retry delay (not_before): a read for nothing.
                passed_over += turn.visits == 1
                return
            email = await self._account_for(job)
            if email is None:
                passed_over += 1  # no room for this job now; a job behind it may fit elsewhere
                return
            in_flight[job.user.key] += 1  # counted while its create is in flight
            sending.start(send(job, email), job.id)

        def may_go(turn: _Turn) -> bool:
            return not turn.exhausted and in_flight[turn.user_key] < self._max_in_flight

        async def must_stop(sending: _Sending) -> bool:
            """No slot left anywhere, or enough looked at for one pass.

            A create in flight that fails gives its slot back, so while the accounts are
            full and creates are in flight, their answers are waited for before giving up.
            """
            while passed_over < MAX_PASSED_OVER and not self._accounts.has_room():
                if not await sending.settle_one():
                    return True
            return passed_over >= MAX_PASSED_OVER

        async with _Sending(self._accounts) as sending:
            async with contextlib.aclosing(self.fair_users(self._jobs, in_flight, self._max_in_flight)) as users:
                async for user_key in users:
                    if await must_stop(sending):
                        break
                    turn = _Turn(user_key)
                    await take_turn(turn, sending)
                    turns.append(turn)
                else:
                    await self._later_rounds(turns, may_go, take_turn, must_stop, sending)
        return sent

    @staticmethod
    async def _later_rounds(
        turns: list[_Turn],
        may_go: Callable[[_Turn], bool],
        take_turn: Callable[[_Turn, _Sending], Awaitable[None]],
        must_stop: Callable[[_Sending], Awaitable[bool]],
        sending: _Sending,
    ) -> None:
        """Everyone's second job, then everyone's third …, while they may go and there is room.

        A user at their cap only because of a create still in flight may go again if it
        fails: while nobody else may go, such answers are waited for.
        """
        while turns := [turn for turn in turns if not turn.exhausted]:
            ready = [turn for turn in turns if may_go(turn)]
            if not ready:
                if await sending.settle_one():
                    continue
                return
            for turn in ready:
                if await must_stop(sending):
                    return
                if may_go(turn):
                    await take_turn(turn, sending)

    @staticmethod
    async def fair_users(jobs: JobStore, in_flight: Mapping[str, int], cap: int) -> AsyncGenerator[str, None]:
        """Users with queued jobs in the order they are served, lazily (a page at a time).

        Users with fewer jobs already running go first, then the one served longest ago
        (never served: first), then the one whose job is oldest. One user's burst
        therefore delays another's single job by at most one slot. Users at `cap` are
        left out. Users with jobs running are few (no more than the accounts' slots):
        they are read by name and come after everyone else.
        """
        running = {user: count for user, count in in_flight.items() if count}
        after: QueueUser | None = None
        while True:
            page = await jobs.queued_users(after=after, limit=USERS_PER_PAGE)
            for user in page:
                if user.user_key not in running:
                    yield user.user_key
            if len(page) < USERS_PER_PAGE:
                break
            after = page[-1]
        busy = await jobs.queued_users_named(user for user, count in running.items() if count < cap)
        never = datetime.min.replace(tzinfo=UTC)
        for user in sorted(busy, key=lambda u: (running[u.user_key], u.last_served or never, u.oldest, u.user_key)):
            yield user.user_key

    async def _submit_off_peak(self, now: datetime) -> int:
        """Send queued off-peak jobs, oldest first: they take no slot (`takes_slot`), so they
        go whenever an account takes work, full or not, and no per-user cap holds them here.
        They are sent concurrently, as many at once as `_Sending` allows."""
        sent = 0
        if not self._accounts.takes_work():
            return sent

        async def send(job: Job, email: str) -> None:
            nonlocal sent
            if await self._submit(job, email):
                self._left_queue.add(job.id)
                sent += 1

        batch = await self._jobs.queued_off_peak(now=now, limit=OFF_PEAK_PER_PASS)
        async with _Sending(self._accounts) as sending:
            for job in batch:
                await sending.wait_for_room()
                email = await self._account_for(job)
                if email is not None:
                    sending.start(send(job, email), job.id)
        if len(batch) == OFF_PEAK_PER_PASS and sent:
            self.wake()  # more may be waiting: the next pass takes them
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
        if job.id in self._submitting:  # already being sent (picked twice in one pass): the first send decides
            self._release(job, email)
            return False
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
        if isinstance(request, LipSyncRequest):
            return await self._upstream.lipsync_video(request)
        if isinstance(request, ModifyRequest):
            return await self._upstream.modify_video(request)
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
            if done.cancel_requested_by:
                await self._moved_on(done)
                return
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
            # The request may have run: leave it SUBMITTING for recover() to look up
            # (its slot stays taken: it may be running).
            self._accounts.end_probe(email)
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
        await self._moved_on(
            await self._jobs.transition(job.id, JobState.SUBMITTING, JobState.QUEUED, not_before=not_before)
        )

    async def _moved_on(self, job: Job | None) -> None:
        """A job left SUBMITTING: if a cancel was asked meanwhile, it is done now, before any
        later pass could send the job again."""
        if job is not None and job.cancel_requested_by and self._cancel_requested is not None:
            await self._cancel_requested(job)

    async def _finish(self, job: Job, state: JobState, reason: str) -> None:
        self._left_queue.add(job.id)
        self._release(job, job.account)
        done = await self._jobs.transition(job.id, JobState.SUBMITTING, state, failure=reason)
        if done is not None:
            self._on_finished(done)

    async def _expire_stale(self, now: datetime) -> None:
        """Fail jobs queued longer than the queue timeout: the oldest, a batch per pass."""
        stale = await self._jobs.queued_slice(limit=EXPIRE_PER_PASS, created_before=now - self._queue_timeout)
        for job in stale:
            await self._fail_queued(job, "Timed out waiting in the queue; nothing was charged. Please try again later.")
        if len(stale) == EXPIRE_PER_PASS:
            self._upkept_at = None  # more are due: the next pass takes them
            self.wake()

    async def _fail_queued(self, job: Job, reason: str) -> None:
        """End a job that never left the queue (its reservation is refunded when it is delivered)."""
        self._left_queue.add(job.id)
        done = await self._jobs.transition(job.id, JobState.QUEUED, JobState.FAILED, failure=reason)
        if done is not None:
            self._on_finished(done)

    async def _report_positions(self) -> None:
        """Tell queued users their place, reading only the places that may have changed.

        Places are in the fair order, as /queue shows them (`JobStore.fair_place`). A place
        changes only when a job leaves the queue or joins it ahead (users take turns: a
        newcomer's first job goes before others' second), and the progress pipeline
        shows a move only near the front or once it is a fifth of the way
        (`bot.progress.worth_showing`). So the queue is cut in bands of doubling length
        (`_PositionBands`); a band is read and reported once enough jobs have left or
        joined since its last report to move its jobs by a fifth. A pass reads the front
        every time something moved, a band of n places every n/10 moves: the cost
        follows the moves, not the queue.
        """
        self._bands.moved(len(self._left_queue) + self._joined_queue)
        self._joined_queue = 0
        note = self._waiting_note()
        if note is not None:
            await self._tell_waiting(note)
            return
        self._waiting_after, self._waiting_told = None, 0
        for offset, size in self._bands.due():
            # Places in the fair order, the ones /queue shows (JobStore.fair_place).
            for start in range(offset, offset + size, REPORT_CHUNK):
                wanted = min(REPORT_CHUNK, offset + size - start)
                chunk = await self._jobs.fair_slice(offset=start, limit=wanted)
                for place, job in enumerate(chunk, start=start + 1):
                    await self._progress.report(job, Progress(ProgressStage.QUEUED, queue_position=place))
                if len(chunk) < wanted:
                    return  # the end of the queue: later bands are empty

    def _waiting_note(self) -> str | None:
        """Why no job can be sent now, for the people waiting; None when jobs can go."""
        if self._accounts.none_known():
            return (
                "The bot's PixVerse account(s) "
                + ", ".join(self._accounts.unknown_accounts())
                + " are not known to useapi.net. Your request stays in the queue; the operator has been told."
            )
        if self._accounts.all_paused():
            return (
                "The bot's PixVerse accounts are unavailable right now ("
                + ", ".join(self._accounts.pause_reasons())
                + "). Your request stays in the queue; the operator has been told."
            )
        return None

    async def _tell_waiting(self, note: str) -> None:
        """No account can take a job: tell each queued job's owner once, front first, some
        hundreds of jobs per pass (chats could take no more: Telegram allows about 30
        messages a second in all)."""
        # Jobs that left the queue moved the ones behind them forward.
        self._waiting_told = max(0, self._waiting_told - len(self._left_queue))
        for _ in range(WAITING_PER_PASS // REPORT_CHUNK):
            batch = await self._jobs.queued_slice(after=self._waiting_after, limit=REPORT_CHUNK)
            for place, job in enumerate(batch, start=self._waiting_told + 1):
                if job.id not in self._told_waiting:
                    self._told_waiting.add(job.id)
                    await self._progress.report(job, Progress(ProgressStage.WAITING, queue_position=place, note=note))
            self._waiting_told += len(batch)
            self._waiting_after = batch[-1] if batch else self._waiting_after
            if len(batch) < REPORT_CHUNK:
                return  # the back of the queue: jobs queued later are told by a later pass


class _Sending:
    """The creates one pass has in flight, each in a task of its own, at most `SENDING_AT_ONCE`.

    Leaving the block waits for every one to be answered. A send that raises (a create's
    own failures are settled inside it; this is the database or a bug) stops new ones
    from starting — `wait_for_room` raises it — while those in flight still finish; the block
    then raises the first such error and logs any other. When the pass itself is
    cancelled (shutdown), the sends in flight are cancelled and waited for: a job whose
    create was on its way stays SUBMITTING, as after a crash, for `recover` to settle.
    """

    def __init__(self, accounts: AccountPool) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._accounts = accounts
        self._held = contextlib.ExitStack()

    async def __aenter__(self) -> _Sending:
        self._held.enter_context(self._accounts.sending())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        try:
            await self._settle(kind, error)
        finally:
            self._held.close()

    async def _settle(self, kind: type[BaseException] | None, error: BaseException | None) -> None:
        if kind is not None and not issubclass(kind, Exception):
            await self._cancel_all()  # cancelled (or the process is exiting): stop, as a crash would
            return
        try:
            await self.settle_all()
        except BaseException:
            await self._cancel_all()
            raise
        if error is None and self._error is not None:
            raise self._error
        if error is not None and self._error is not None and self._error is not error:
            log.error("a send failed while the pass was failing", exc_info=self._error)

    async def wait_for_room(self) -> None:
        """Wait until fewer than `SENDING_AT_ONCE` are in flight; raises a send's error
        (then no more jobs are picked: the pass is failing)."""
        while len(self._tasks) >= SENDING_AT_ONCE:
            await self.settle_one()
        if self._error is not None:
            raise self._error

    def start(self, send: Coroutine[object, object, None], job_id: str) -> None:
        """Send in a task of its own (after `wait_for_room`)."""
        self._tasks.add(asyncio.create_task(send, name=f"send {job_id}"))

    async def settle_one(self) -> bool:
        """Wait for at least one send in flight to end; False when none was in flight."""
        if not self._tasks:
            return False
        done, self._tasks = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            self._note(task)
        return True

    async def settle_all(self) -> None:
        while await self.settle_one():
            pass

    def _note(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if self._error is None:
            self._error = error
        else:
            log.error("another send failed in the same pass", exc_info=error)

    async def _cancel_all(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            self._note(task)
        if self._error is not None:
            log.error("a send failed before the pass was stopped", exc_info=self._error)


class _Turn:
    """One user's place in a pass's round robin: their next jobs, read a few at a time."""

    def __init__(self, user_key: str) -> None:
        self.user_key = user_key
        self._read: list[Job] = []
        self._more = True  # the store may hold more of their jobs than were read
        self._last: Job | None = None
        self.visits = 0

    @property
    def exhausted(self) -> bool:
        return not self._read and not self._more

    async def next(self, jobs: JobStore, now: datetime) -> Job | None:
        """The user's next queued job that takes a slot and may go at `now`; None when there is none."""
        self.visits += 1
        if not self._read and self._more:
            self._read = await jobs.next_queued(
                self.user_key, now=now, after=self._last, limit=JOBS_PER_READ, off_peak=False
            )
            self._more = len(self._read) == JOBS_PER_READ
        if not self._read:
            return None
        self._last = self._read.pop(0)
        return self._last


class _PositionBands:
    """Which stretches of the queue to report positions for, after how many moves.

    Band 0 is the first `2 × TOP_OF_QUEUE` places, reported whenever a job left or
    joined; band b is the places from TOP_OF_QUEUE·2^b on, as many again, reported once
    a fifth of its first place has left or joined since (`QUEUE_MOVE_FRACTION`), which is when its jobs have
    moved far enough to be shown.
    """

    def __init__(self) -> None:
        self._since: list[int] = [0] * POSITION_BANDS

    def moved(self, count: int) -> None:
        """`count` jobs left or joined the queue: each may have moved the places behind it by one."""
        self._since = [since + count for since in self._since]

    def due(self) -> list[tuple[int, int]]:
        """(offset, size) of each band due a report, front first; marks them reported."""
        due = []
        for band in range(POSITION_BANDS):
            offset = 0 if band == 0 else TOP_OF_QUEUE << band
            size = 2 * TOP_OF_QUEUE if band == 0 else TOP_OF_QUEUE << band
            if self._since[band] >= max(1, offset // QUEUE_MOVE_FRACTION):
                due.append((offset, size))
                self._since[band] = 0
        return due
