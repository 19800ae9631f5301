"""Control over one's own jobs: what is waiting and when it may be ready (/queue), and
stopping a job (/cancel, and the ✖️ button under its progress message).

A queued job is cancelled at once (QUEUED → CANCELLED, compare-and-set): it never
reached PixVerse, so its quota reservation is refunded and its stored pictures deleted
when the outcome is settled like any other (`bot.outcomes`).

A running job is cancelled upstream with `DELETE scheduler/{video_id}`: useapi.net stops
tracking it (no more callbacks, its slot is free). Only that answer (204) makes the job
CANCELLED and refunds it. The docs promise no more than "tracking" stops: PixVerse may
still finish the video and take the bot's credits for it, and the user is told so. A job
useapi.net no longer tracks (404: it has just finished; off-peak jobs are never tracked)
cannot be cancelled, and the user is told why; it ends and is counted as usual.

A job being sent (SUBMITTING) is neither: the scheduler's request may or may not have
reached PixVerse. It is marked (`JobStore.request_cancel`); the scheduler's next move of
it returns the mark, and `settle_requested` then cancels it where it landed — back in the
queue (refunded at once) or running (cancelled upstream). Never lost, never paid twice.
The mark is stored, so a restart honours it (the scheduler's recovery moves such a job on,
and the tracker retries a running marked job whose cancel could not be sent yet).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bot.accounts import AccountPool
from bot.domain import RUNNING_STATES, Job, JobState, Requester, utcnow
from bot.errors import InvalidInput, JobNotFound, NotYourJobToCancel
from bot.ports import JobStore, Upstream
from bot.texts import state_word
from bot.upstream import errors as ue

log = logging.getLogger(__name__)

# How many of the newest finished videos the time estimate takes the median of.
RECENT_RUNS = 20
# How many unfinished jobs /queue lists (the rest are counted).
QUEUE_LISTED = 15
# How often cancel looks again at a job that moved on while it looked (queued → being sent
# → running are all the moves there are).
CANCEL_LOOKS = 3


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the wait is estimated from: the median time of recent videos and the slots.

    A job with `ahead` jobs before it starts now when a slot is free for it; else once
    `ahead - free + 1` more jobs have started, `slots` of them per median time.
    """

    typical_run: float | None  # median seconds from sent to finished; None: none finished recently
    runs_measured: int
    slots: int  # slots of the accounts in use (useapi.net maxJobs)
    free: int  # of them free now

    def starts_in(self, ahead: int) -> float | None:
        if ahead < self.free:
            return 0.0
        if self.typical_run is None or self.slots <= 0:
            return None
        return math.ceil((ahead - self.free + 1) / self.slots) * self.typical_run


@dataclass(frozen=True, slots=True)
class QueueEntry:
    job: Job
    place: int | None  # place in the order jobs are sent (1: next); None once it was sent
    ahead: int  # jobs sent before it (0 once it was sent)
    ready_in: float | None  # seconds until its video is expected; None: no estimate


@dataclass(frozen=True, slots=True)
class QueueView:
    """One user's (or one group's) unfinished jobs, as /queue shows them."""

    entries: tuple[QueueEntry, ...]
    more: bool  # more unfinished jobs than listed
    group: bool  # the group's jobs (an admin asked in a group), not the asker's own
    queued_total: int  # every queued job, everyone's
    estimate: Estimate


def job_reference(text: str | None, command: str = "cancel") -> str:
    """The job id in what was typed: the id /jobs and captions show (`abc123`, or `job abc123`)."""
    words = (text or "").split()
    if words and words[0].lower() == "job":
        words = words[1:]
    if len(words) != 1:
        example = f"e.g. /{command} abc123 — /queue lists your waiting jobs"
        raise InvalidInput("job", f"is missing; {example}" if not words else f"give one job id; {example}")
    return words[0]


class JobControl:
    """/queue and /cancel: the core's answers (adapters render them)."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        upstream: Upstream,
        accounts: AccountPool,
        on_finished: Callable[[Job], object],
        on_slot_freed: Callable[[], None],
        poll_soon: Callable[[str], None],
    ) -> None:
        self._jobs = jobs
        self._upstream = upstream
        self._accounts = accounts
        self._on_finished = on_finished
        self._on_slot_freed = on_slot_freed
        self._poll_soon = poll_soon
        # Jobs whose upstream cancel is under way: the scheduler and the tracker may both
        # find a marked job that moved on, and one DELETE is enough.
        self._cancelling: set[str] = set()

    # ------------------------------------------------------------------ /queue

    async def queue(self, requester: Requester) -> QueueView:
        """The requester's queued and running jobs with their place and estimate; in a group,
        an admin of it gets the group's. Costs a read of the listed jobs and, per queued one,
        a sum over the users with queued jobs — never a walk along the queue."""
        group = requester.chat.group_key if requester.is_group_admin else None
        if group is not None:
            listed = await self._jobs.unfinished(group_key=group, limit=QUEUE_LISTED + 1)
        else:
            listed = await self._jobs.unfinished(user_key=requester.user.key, limit=QUEUE_LISTED + 1)
        estimate = await self.estimate()
        entries = [await self._entry(job, estimate) for job in listed[:QUEUE_LISTED]]
        return QueueView(
            entries=tuple(entries),
            more=len(listed) > QUEUE_LISTED,
            group=group is not None,
            queued_total=await self._jobs.queued_total(),
            estimate=estimate,
        )

    async def estimate(self) -> Estimate:
        runs = await self._jobs.recent_run_seconds(RECENT_RUNS)
        await self._accounts.refresh()
        usable = [slot for slot in self._accounts.accounts if slot.paused_reason is None]
        return Estimate(
            typical_run=statistics.median(runs) if runs else None,
            runs_measured=len(runs),
            slots=sum(slot.max_jobs for slot in usable),
            free=sum(slot.available for slot in usable),
        )

    async def _entry(self, job: Job, estimate: Estimate) -> QueueEntry:
        if job.state is not JobState.QUEUED:
            ready_in = None
            if job.state in RUNNING_STATES and not job.request.off_peak and estimate.typical_run is not None:
                elapsed = (utcnow() - (job.submitted_at or job.created_at)).total_seconds()
                ready_in = max(0.0, estimate.typical_run - elapsed)
            return QueueEntry(job, place=None, ahead=0, ready_in=ready_in)
        ahead = max(await self._jobs.fair_place(job) - 1, 0)
        starts_in = estimate.starts_in(ahead)
        ready_in = None
        if starts_in is not None and estimate.typical_run is not None and not job.request.off_peak:
            ready_in = starts_in + estimate.typical_run
        return QueueEntry(job, place=ahead + 1, ahead=ahead, ready_in=ready_in)

    # ------------------------------------------------------------------ /cancel

    async def cancel(self, requester: Requester, reference: str) -> str:
        """Cancel a job of the requester's (or, for an admin of its group, of the group's);
        returns what happened, in words for the chat. Refuses unknown jobs and others' jobs."""
        job_id = job_reference(reference)
        job = await self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        group_admin = requester.is_group_admin and requester.chat.group_key is not None
        if job.user.key != requester.user.key and not (group_admin and requester.chat.group_key == job.chat.group_key):
            raise NotYourJobToCancel(job_id)
        who = requester.user.display_name or requester.user.key
        for _ in range(CANCEL_LOOKS):
            if job.is_finished:
                return f"Job {job.id} is already {state_word(job)}; there is nothing to cancel."
            if job.state is JobState.QUEUED:
                if await self._cancel_queued(job, who):
                    return f"Job {job.id} is cancelled. It had not started, so nothing was charged."
            elif job.state is JobState.SUBMITTING:
                if await self._jobs.request_cancel(job.id, who) is not None:
                    return (
                        f"Job {job.id} is being sent to PixVerse right now. It will be cancelled as soon as"
                        " PixVerse answers, and your quota refunded then."
                    )
            else:
                return await self._cancel_running(job, who)
            # It moved on while we looked (the scheduler took it, or sent it): look again.
            job = await self._jobs.get(job.id) or job
        return f"Job {job.id} is changing state right now; please try /cancel {job.id} again in a moment."

    async def settle_requested(self, job: Job) -> None:
        """A job marked while it was being sent has moved on: cancel it where it is now.

        The scheduler calls this when it moves a marked job (back to the queue, or to running);
        the tracker for a running marked job whose cancel could not be sent yet."""
        who = job.cancel_requested_by or "request"
        if job.state is JobState.QUEUED:
            await self._cancel_queued(job, who)
        elif job.state in RUNNING_STATES:
            await self._cancel_running(job, who, forget_if_impossible=True)

    async def _cancel_queued(self, job: Job, who: str) -> bool:
        done = await self._jobs.transition(
            job.id,
            JobState.QUEUED,
            JobState.CANCELLED,
            failure=f"Cancelled by {who} before it started; nothing was charged.",
        )
        if done is None:
            return False
        log.info("job %s cancelled in the queue by %s", job.id, who)
        self._on_finished(done)
        return True

    async def _cancel_running(self, job: Job, who: str, *, forget_if_impossible: bool = False) -> str:
        if job.request.off_peak or not job.video_id:
            # Off-peak jobs are not tracked by useapi.net's scheduler (post-pixverse-videos-create-v4.md).
            if forget_if_impossible:
                await self._jobs.clear_cancel_request(job.id)
            return (
                f"Job {job.id} is an off-peak video PixVerse already holds, and useapi.net cannot cancel those."
                " It arrives within about a day and is counted as usual."
            )
        if job.id in self._cancelling:
            return f"Job {job.id} is being cancelled right now."
        self._cancelling.add(job.id)
        try:
            await self._upstream.delete_scheduled(job.video_id)
        except ue.NotFound:
            # useapi.net no longer runs it: it has just finished (its outcome is on its way).
            if forget_if_impossible:
                await self._jobs.clear_cancel_request(job.id)
            self._poll_soon(job.id)
            return (
                f"Job {job.id} can no longer be cancelled: PixVerse has already finished it (or is finishing it)."
                " It is delivered and counted as usual."
            )
        except ue.UpstreamError as exc:
            log.warning("cancelling job %s upstream failed: %r", job.id, exc)
            return f"Could not reach useapi.net to cancel job {job.id} ({exc}); it is still running. Try again soon."
        else:
            done = await self._jobs.transition(
                job.id,
                RUNNING_STATES,
                JobState.CANCELLED,
                failure=(
                    f"Cancelled by {who} while PixVerse was making it; your quota is refunded."
                    " (PixVerse may still finish it and charge the bot's account for it.)"
                ),
            )
        finally:
            self._cancelling.discard(job.id)
        if done is None:
            return f"Job {job.id} had just finished; it is delivered and counted as usual."
        log.info("job %s cancelled upstream by %s", job.id, who)
        self._on_slot_freed()
        self._on_finished(done)
        return (
            f"Job {job.id} is cancelled and your quota refunded. PixVerse had already started it, so it may"
            " still finish the video and charge the bot's PixVerse credits for it."
        )
