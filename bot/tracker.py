"""Learning how running jobs end: webhooks when the upstream calls back, batched polling else.

Polling asks `GET videos?email=` once per account per interval: one listing covers
every running job on that account, so upstream traffic grows with accounts, not
with jobs. Only jobs the listing misses are fetched one by one (`GET videos/{id}`).

How often a job is looked at depends on how it will be heard of:
- submitted with a callback URL (webhooks on, see bot/webhooks.py): the callback
  is the upstream's own word and is applied as it comes (`apply`), so polling is
  only a slow safety net for a callback that got lost (`webhook_poll_interval`);
- off-peak (no callback, done within ~24 h): `off_peak_poll_interval`;
- every other job: `poll_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum

from bot.cache import LruDict
from bot.domain import RUNNING_STATES, Job, JobState, utcnow
from bot.periodic import PeriodicTask
from bot.ports import JobStore, Progress, ProgressStage, Upstream
from bot.progress import ProgressReporter
from bot.submission import gets_callback
from bot.upstream import errors as ue
from bot.upstream.models import Video, VideoStage

log = logging.getLogger(__name__)

# Jobs whose unexpected status was logged (a job's is logged again only when it changes).
UNEXPECTED_STATUSES_REMEMBERED = 10_000
# Pages of `GET videos` read per account per poll before falling back to single lookups.
LISTING_PAGE_SIZE = 50
MAX_LISTING_PAGES = 4
# Accounts whose listings are read at once in a poll. One after another, a pass costs a
# listing round trip per account (a few hundred ms over the internet): with 40 accounts it
# outlasts POLL_INTERVAL, and the jobs are followed late. More at once would only crowd the
# upstream client's connection pool, which sending and downloads share.
ACCOUNTS_POLLED_AT_ONCE = 8


class _Pace(Enum):
    """How often a running job is looked at (see the module docstring)."""

    POLL = "poll"  # every `poll_interval`: nothing else will tell
    SAFETY_NET = "safety net"  # every `webhook_poll_interval`: its callback will tell
    OFF_PEAK = "off-peak"  # every `off_peak_poll_interval`: done within hours


class Tracker:
    def __init__(
        self,
        *,
        jobs: JobStore,
        upstream: Upstream,
        progress: ProgressReporter,
        on_finished: Callable[[Job], object],
        on_slot_freed: Callable[[], None],
        poll_interval: float,
        off_peak_poll_interval: float,
        webhook_poll_interval: float,
        webhooks: bool,
        job_timeout: float,
        cancel_requested: Callable[[Job], Awaitable[object]] | None = None,
        off_peak_job_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        # Running jobs marked to be cancelled whose cancel could not be sent yet (bot/cancellation.py).
        self._cancel_requested = cancel_requested
        self._upstream = upstream
        self._progress = progress
        self._on_finished = on_finished
        self._on_slot_freed = on_slot_freed
        self._webhooks = webhooks
        self._timeout = timedelta(seconds=job_timeout)
        self._off_peak_timeout = timedelta(seconds=off_peak_job_timeout)
        self._clock = clock
        self._slow_intervals = {_Pace.OFF_PEAK: off_peak_poll_interval, _Pace.SAFETY_NET: webhook_poll_interval}
        # When the jobs of each slow pace were last looked at (absent: not yet in this process).
        self._slow_polled_at: dict[_Pace, float] = {}
        # Jobs a callback asked to look at on the next pass, whatever their pace (bounded:
        # a job that never runs, say its submission failed, is dropped in time).
        self._due_now: LruDict[str, None] = LruDict(UNEXPECTED_STATUSES_REMEMBERED)
        self._unexpected_logged: LruDict[str, str] = LruDict(UNEXPECTED_STATUSES_REMEMBERED)
        self._loop = PeriodicTask(self.poll_once, poll_interval, "tracking")

    def wake(self) -> None:
        """Something changed: do a pass now."""
        self._loop.wake()

    async def run(self) -> None:
        await self._loop.run()

    def poll_soon(self, job_id: str) -> None:
        """Look at this job on the next pass, even if it is polled slowly (a callback
        came for it that could not be applied as it was)."""
        self._due_now[job_id] = None
        self.wake()

    def has_webhook(self, job: Job) -> bool:
        """Whether the upstream was given a callback URL for this job.

        Derived, not stored: webhooks are on (BOT_PUBLIC_URL set) and the job's request
        gets a callback (`gets_callback`). A job submitted before BOT_PUBLIC_URL was set
        and tracked after a restart with it is looked at on the safety-net interval.
        """
        return self._webhooks and gets_callback(job.request)

    async def poll_once(self) -> None:
        # The running jobs this process looks after: those it sent or took over (another
        # process on the same database tracks its own; see `bot.instances`).
        running = await self._jobs.claimable(RUNNING_STATES)
        if self._cancel_requested is not None:
            for job in running:
                if job.cancel_requested_by:
                    await self._cancel_requested(job)
        now = self._clock()
        by_pace: dict[_Pace, list[Job]] = defaultdict(list)
        for job in running:
            by_pace[self._pace(job)].append(job)
        due = list(by_pace.pop(_Pace.POLL, []))
        for pace, jobs in by_pace.items():
            last = self._slow_polled_at.get(pace)
            if last is None or now - last >= self._slow_intervals[pace]:
                self._slow_polled_at[pace] = now
                due += jobs
            else:
                due += [job for job in jobs if job.id in self._due_now]
        by_account: dict[str | None, list[Job]] = defaultdict(list)
        for job in due:
            self._due_now.pop(job.id, None)
            by_account[job.account].append(job)
        await self._poll_accounts(by_account)
        await self._expire(running)

    async def _poll_accounts(self, by_account: dict[str | None, list[Job]]) -> None:
        """Poll each account's jobs, `ACCOUNTS_POLLED_AT_ONCE` accounts at a time.

        Every account's poll runs to its end (a job half-applied is not cut off); the first
        unexpected error is raised once they all have.
        """
        room = asyncio.Semaphore(ACCOUNTS_POLLED_AT_ONCE)

        async def poll(account: str | None, jobs: list[Job]) -> None:
            async with room:
                await self._poll_account(account, jobs)

        outcomes = await asyncio.gather(
            *(poll(account, jobs) for account, jobs in by_account.items()), return_exceptions=True
        )
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        for error in errors[1:]:
            log.error("polling an account failed too: %r", error)
        if errors:
            raise errors[0]

    def _pace(self, job: Job) -> _Pace:
        if job.request.off_peak:
            return _Pace.OFF_PEAK
        return _Pace.SAFETY_NET if self.has_webhook(job) else _Pace.POLL

    async def _poll_account(self, account: str | None, jobs: list[Job]) -> None:
        wanted = {job.video_id: job for job in jobs if job.video_id}
        found: dict[str, Video] = {}
        offset = 0
        try:
            for _ in range(MAX_LISTING_PAGES):
                page = await self._upstream.list_videos(email=account, limit=LISTING_PAGE_SIZE, offset=offset)
                for listed in page.data:
                    # An image template's result is listed under its image_id.
                    listed_id = listed.video_id or listed.image_id
                    if listed_id in wanted:
                        found[listed_id] = listed
                if len(found) == len(wanted) or not page.data or not page.next_offset or page.next_offset <= offset:
                    break
                offset = page.next_offset
        except ue.UpstreamError as exc:
            log.warning("listing videos of %s failed: %r", account, exc)
            return
        for video_id, job in wanted.items():
            video: Video | None = found.get(video_id)
            if video is None:
                # Older than the pages we read (or a listing gap): ask for it alone.
                try:
                    video = await self._upstream.get_video(video_id)
                except ue.UpstreamError as exc:
                    log.warning("looking up %s failed: %r", video_id, exc)
                    continue
            if video is not None:
                await self.apply(job, video)

    async def apply(self, job: Job, video: Video) -> None:
        """Move `job` according to what the upstream says about its video.

        The status table decides (`Video.stage`); a status it does not list is not
        guessed at: it is logged once and the job waits on, until its time-out.
        """
        stage = video.stage
        if stage is VideoStage.UNEXPECTED:
            self._log_unexpected(job, video)
            return
        if stage is VideoStage.WAITING_OFF_PEAK:
            await self._progress.report(job, Progress(ProgressStage.OFF_PEAK))
            return
        if stage is VideoStage.GENERATING:
            if job.state is JobState.SUBMITTED:
                job = await self._jobs.transition(job.id, JobState.SUBMITTED, JobState.GENERATING) or job
            await self._progress.report(job, Progress(ProgressStage.GENERATING, elapsed_seconds=self._elapsed(job)))
            return
        if stage is VideoStage.SUCCEEDED:
            done = await self._jobs.transition(
                job.id, RUNNING_STATES, JobState.COMPLETED, result_url=video.url, finished_at=utcnow()
            )
        elif stage is VideoStage.MODERATED:
            done = await self._jobs.transition(
                job.id,
                RUNNING_STATES,
                JobState.MODERATED,
                failure="PixVerse's moderator refused this video. Please try a different prompt or image.",
            )
        else:
            done = await self._jobs.transition(
                job.id,
                RUNNING_STATES,
                JobState.FAILED,
                failure=f"PixVerse could not make this video ({video.error}).",
            )
        self._unexpected_logged.pop(job.id, None)
        if done is not None:
            self._on_slot_freed()
            self._on_finished(done)

    def _log_unexpected(self, job: Job, video: Video) -> None:
        """Once per job and status: the job is polled every few seconds until its time-out."""
        status = video.describe_status()
        if self._unexpected_logged.get(job.id) == status:
            return
        self._unexpected_logged[job.id] = status
        log.warning(
            "job %s: video %s has a status the API docs do not list (%s); waiting on it until the job's time-out",
            job.id,
            video.video_id or job.video_id,
            status,
        )

    async def _expire(self, running: list[Job]) -> None:
        now = utcnow()
        for job in running:
            started = job.submitted_at or job.created_at
            limit = self._off_peak_timeout if job.request.off_peak else self._timeout
            if now - started > limit:
                hours = limit.total_seconds() / 3600
                done = await self._jobs.transition(
                    job.id,
                    RUNNING_STATES,
                    JobState.FAILED,
                    failure=f"PixVerse did not finish this video within {hours:g} h; it was given up.",
                )
                self._unexpected_logged.pop(job.id, None)
                if done is not None:
                    self._on_slot_freed()
                    self._on_finished(done)

    @staticmethod
    def _elapsed(job: Job) -> int:
        return int((utcnow() - (job.submitted_at or job.created_at)).total_seconds())
