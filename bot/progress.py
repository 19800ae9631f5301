"""Routing core events to the right chat platform: the one progress pipeline.

The core reports progress as often as it learns something (every scheduler pass,
every poll, every callback); chats take far less. Everything a job's progress
message shows goes through `ProgressReporter`, which decides three things:

- what is worth showing: newest wins per job (a report replaces the one still
  waiting), an unchanged or barely changed queue position is not re-sent, a
  job's message is updated within one stage at most every `interval` seconds;
- when it may go out: each budget scope has one budget, declared by its platform's
  notifier (`Notifier.chat_budget`: Telegram allows about one message a second
  per chat and twenty a minute in a group), shared by every job in that scope.
  The notifier names the scope (`Notifier.budget_scope`): the chat on Telegram,
  where every job's progress is a message in it; the job on Discord, where each
  job edits its requester's own interaction response. Within a scope a job's
  first answer ("Queued") goes before other jobs' updates;
- whether it may go out at all: nothing is shown for a job that has reached its
  outcome. Once a job has a progress message, it is read from the store right before
  each send, and `close()` waits for a send under way, so no "generating" ever lands
  on a finished job. Its first answer goes without that read: there is no message
  yet to protect, and a job closed meanwhile is dropped all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.domain import ChatRef, Job, Platform
from bot.ports import ChatBudget, JobStore, Notifier, Progress, ProgressStage

log = logging.getLogger(__name__)

# Near the front of the queue every step is news; further back, a move is shown once
# it is at least a fifth of the way (#40 → #32), so a long queue does not edit every
# waiting job's message on every scheduler pass.
TOP_OF_QUEUE = 5
QUEUE_MOVE_FRACTION = 5
# How many closed jobs are remembered to drop their late reports without a store read.
CLOSED_MEMORY = 4096
# Chat lanes kept before idle ones are first forgotten (then: twice those still busy).
LANE_SWEEP_MIN = 256

# Stages in the order a job goes through them: a report of an earlier stage than the
# one shown is stale (a snapshot read before the job moved on).
_STAGE_ORDER = {
    ProgressStage.QUEUED: 0,
    ProgressStage.WAITING: 0,
    ProgressStage.STARTED: 1,
    ProgressStage.OFF_PEAK: 2,
    ProgressStage.GENERATING: 3,
}


def worth_showing(shown: Progress | None, new: Progress) -> bool:
    """Whether `new` is news to someone whose progress message shows `shown`."""
    if shown is None:
        return True
    if _STAGE_ORDER[new.stage] < _STAGE_ORDER[shown.stage] or new == shown:
        return False
    if new.stage is ProgressStage.QUEUED and shown.stage is ProgressStage.QUEUED:
        return _moved_enough(shown.queue_position, new.queue_position)
    return True


def _moved_enough(before: int | None, now: int | None) -> bool:
    if before is None or now is None or now <= TOP_OF_QUEUE:
        return before != now
    return abs(before - now) >= max(1, before // QUEUE_MOVE_FRACTION)


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

    def platforms(self) -> list[Platform]:
        """The platforms whose adapter runs in this process."""
        return list(self._by_platform)

    def all(self) -> list[Notifier]:
        return list(self._by_platform.values())


# A budget scope: the platform and what its notifier names (a chat, or one job).
BudgetKey = tuple[Platform, str]


@dataclass(eq=False)
class _Lane:
    """One budget scope's budget and the jobs waiting to show progress in it, served in turn."""

    budget: ChatBudget
    # When recent sends ended (a send is counted once Telegram has answered it, so two
    # requests reach the platform at least `min_gap` apart however long each one took).
    sent_at: deque[float] = field(default_factory=deque)
    waiting: dict[str, None] = field(default_factory=dict)  # job ids, oldest first
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.sent_at = deque(maxlen=max(1, self.budget.per_window or 1))

    def wait_before_next(self, now: float) -> float:
        """Seconds until the budget allows one more message (0: now)."""
        if not self.sent_at:
            return 0.0
        wait = self.sent_at[-1] + self.budget.min_gap - now
        if self.budget.per_window and len(self.sent_at) >= self.budget.per_window:
            wait = max(wait, self.sent_at[0] + self.budget.window - now)
        return max(0.0, wait)

    def spend(self, now: float) -> None:
        self.sent_at.append(now)

    def forgettable(self, now: float) -> bool:
        """Idle, and nothing it remembers limits a send any more."""
        horizon = max(self.budget.min_gap, self.budget.window if self.budget.per_window else 0.0)
        return self.task is None and (not self.sent_at or now - self.sent_at[-1] >= horizon)


class ProgressReporter:
    """Passes progress on to the job's chat within its budget, without making the core wait.

    `report` only records the newest progress of a job; one background task per budget
    scope sends, one message at a time, so a slow or rate-limited chat never stalls the
    scheduler or the tracker, and a job's edits stay in order.
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
        self._pending: dict[str, tuple[Job, Progress]] = {}
        # What each job's message shows, and since when.
        self._shown: dict[str, tuple[float, Progress]] = {}
        # The send under way for a job: close() waits for it.
        self._sending: dict[str, asyncio.Future[None]] = {}
        self._closed: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._lanes: dict[BudgetKey, _Lane] = {}
        self._sweep_at = LANE_SWEEP_MIN  # lanes that make `_lane` forget the idle ones
        self._stopping = False

    async def report(self, job: Job, progress: Progress) -> None:
        """Show `progress` in the job's chat when its budget allows (a newer report replaces it)."""
        if self._stopping or job.is_finished or job.id in self._closed:
            return
        notifier = self._notifiers.for_job(job)
        if notifier is None:
            return
        waiting = self._pending.get(job.id)
        if waiting is not None and _STAGE_ORDER[progress.stage] < _STAGE_ORDER[waiting[1].stage]:
            return  # a late report of an earlier stage never replaces a later one still to be sent
        shown = self._shown.get(job.id)
        if waiting is None and not worth_showing(shown[1] if shown else None, progress):
            return
        self._pending[job.id] = (job, progress)
        key = (job.chat.platform, notifier.budget_scope(job))
        lane = self._lane(key, job.chat, notifier)
        lane.waiting[job.id] = None
        lane.wake.set()
        if lane.task is None:
            lane.task = asyncio.create_task(self._serve(lane), name=f"progress-{key[0]}-{key[1]}")

    async def close(self, job_id: str) -> None:
        """The job's outcome is about to be posted: drop progress not yet sent, wait for the
        send under way (so it cannot land after the result, and the status message it may
        have created is in the store), and never show progress for this job again."""
        self._closed[job_id] = None
        if len(self._closed) > CLOSED_MEMORY:
            del self._closed[next(iter(self._closed))]  # the store's state guards it from now on
        self._pending.pop(job_id, None)
        sending = self._sending.get(job_id)
        if sending is not None:
            await asyncio.shield(sending)

    def forget(self, job_id: str) -> None:
        """The job is delivered: drop what was kept to pace its progress (it stays closed)."""
        self._pending.pop(job_id, None)
        self._shown.pop(job_id, None)

    async def idle(self) -> None:
        """Wait until every progress reported so far has been sent or dropped (tests use it)."""
        while busy := [lane.task for lane in self._lanes.values() if lane.task is not None]:
            await asyncio.gather(*busy, return_exceptions=True)

    async def drain(self) -> None:
        """Stop: let the sends under way finish and drop the progress still waiting (at shutdown)."""
        self._stopping = True
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.wake.set()
        await asyncio.gather(*(lane.task for lane in lanes if lane.task is not None), return_exceptions=True)

    async def alert_operator(self, text: str) -> None:
        log.error("operator alert: %s", text)
        for notifier in self._notifiers.all():
            try:
                await notifier.alert_operator(text)
            except Exception:
                log.exception("could not alert the operator")

    # ------------------------------------------------------------------ sending

    def _lane(self, key: BudgetKey, chat: ChatRef, notifier: Notifier) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            # Forget idle lanes only once their number has doubled since the last sweep:
            # sweeping at every new chat made a burst from many chats quadratic.
            if len(self._lanes) >= self._sweep_at:
                now = self._clock()
                for idle in [k for k, other in self._lanes.items() if other.forgettable(now)]:
                    del self._lanes[idle]
                self._sweep_at = max(LANE_SWEEP_MIN, 2 * len(self._lanes))
            lane = self._lanes[key] = _Lane(notifier.chat_budget(chat))
        return lane

    async def _serve(self, lane: _Lane) -> None:
        """Send the scope's waiting progress, first answers first, then oldest job first,
        as fast as its budget allows."""
        try:
            while lane.waiting and not self._stopping:
                now = self._clock()
                due = self._next_due(lane, now)
                if due is None:
                    continue  # every waiting job was closed meanwhile
                job_id, not_before = due
                wait = max(lane.wait_before_next(now), not_before - now)
                if wait > 0:
                    # A new report may be due sooner (another job, or a new stage).
                    lane.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), timeout=wait)
                    continue
                del lane.waiting[job_id]
                pending = self._pending.pop(job_id, None)
                if pending is not None and await self._send(*pending):
                    lane.spend(self._clock())
        except Exception:  # a background task: say so here, nobody awaits it
            log.exception("progress sending stopped")
        finally:
            lane.task = None

    def _next_due(self, lane: _Lane, now: float) -> tuple[str, float] | None:
        """A waiting job's first answer (its requester is waiting for one), else the first
        waiting job whose message may change now, else the one that may soonest."""
        best: tuple[str, float] | None = None
        for job_id in list(lane.waiting):
            pending = self._pending.get(job_id)
            if pending is None:
                del lane.waiting[job_id]  # closed meanwhile
                continue
            shown = self._shown.get(job_id)
            if shown is None:
                return job_id, now
            # Within a stage a message changes at most every `interval`; a new stage is news now.
            due = max(now, shown[0] + self._interval) if shown[1].stage is pending[1].stage else now
            if best is None or due < best[1]:  # strictly: of jobs due as soon, the oldest
                best = (job_id, due)
        return best

    async def _send(self, reported: Job, progress: Progress) -> bool:
        """Show `progress` unless the job has reached its outcome; True when a request was made."""
        job_id = reported.id
        shown = self._shown.get(job_id)
        if shown is None and reported.status_message_id is None:
            # The job's first answer: it has no message yet that a stale report could put
            # "generating" back on, and its outcome cannot have been posted here (close()
            # would have dropped this report), so the snapshot is as good as a read.
            job: Job | None = reported
        else:
            # The job as it is now, not as the reporter saw it: a snapshot read before a
            # webhook completed the job must not put "generating" back on its message.
            job = await self._jobs.get(job_id)
        if job is None or job.is_finished or job_id in self._closed or self._stopping:
            return False
        if not worth_showing(shown[1] if shown else None, progress):
            return False
        notifier = self._notifiers.for_job(job)
        if notifier is None:
            return False
        done = asyncio.get_running_loop().create_future()
        self._sending[job_id] = done
        try:
            message_id = await notifier.progress(job, progress)
            self._shown[job_id] = (self._clock(), progress)
            if message_id and message_id != job.status_message_id:
                await self._jobs.update(job_id, status_message_id=message_id)
        except Exception:  # a chat hiccup must never break the job's own life
            log.exception("progress update for job %s failed", job_id)
        finally:
            del self._sending[job_id]
            done.set_result(None)
        return True
