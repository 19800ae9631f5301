"""Data retention: records past their time are deleted in the background, a small batch at a time.

What is kept, and for how long (README "Data kept and for how long"), with
RETENTION_DAYS = N (0 keeps everything for ever):
- delivered jobs (prompt, settings, who asked where): N days after they finished;
  jobs still queued, running or waiting for delivery are never deleted;
- the moderation log (refused prompt text, user names): N days;
- strikes: N days, and never while any group's strike window could still count them;
- mutes: N days after they ran out;
- the quota ledger: refunded rows N days; committed rows N days and never while they
  count toward the current quota window (so never with QUOTA_WINDOW=total).

A pass deletes each kind in batches of `batch_size` rows, one short unit of work
each, so commands arriving meanwhile wait for one batch at most.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain import utcnow
from bot.ports import RetentionStore
from bot.quota import QuotaPolicy, window_bounds

log = logging.getLogger(__name__)

# Rows per unit of work: a few milliseconds of SQLite time, so a command queued behind
# a batch hardly notices it, while a backlog of a million rows still takes few passes.
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long records are kept: `days` after they end; 0 keeps them for ever."""

    days: int = 0

    @property
    def keeps_forever(self) -> bool:
        return self.days == 0

    @property
    def period(self) -> str:
        """How long records are kept, in words ("90 days", "1 day", "for ever")."""
        if self.keeps_forever:
            return "for ever"
        return f"{self.days} day{'' if self.days == 1 else 's'}"

    def cutoff(self, now: datetime) -> datetime | None:
        """Records that ended before this may be deleted (None: nothing may)."""
        return None if self.keeps_forever else now - timedelta(days=self.days)

    def lookback_days(self, asked: int) -> int:
        """How many of `asked` days back the records still cover."""
        return asked if self.keeps_forever else min(asked, self.days)


@dataclass(frozen=True, slots=True)
class PruneCutoffs:
    """For each kind of record, the time before which it may be deleted."""

    jobs: datetime
    moderation_log: datetime
    strikes: datetime
    mutes: datetime
    refunded_quota: datetime
    # None: committed usage counts for ever (QUOTA_WINDOW=total), so it is never deleted.
    committed_quota: datetime | None


@dataclass(slots=True)
class PruneReport:
    """What one pass deleted, per kind of record, and in how many units of work."""

    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class Pruner:
    """Deletes what `policy` no longer keeps; `prune()` is one pass (bootstrap runs it periodically)."""

    def __init__(
        self,
        store: RetentionStore,
        policy: RetentionPolicy,
        *,
        quota_policy: QuotaPolicy,
        longest_strike_window: Callable[[], Awaitable[timedelta]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._store = store
        self._policy = policy
        self._quota_policy = quota_policy
        self._longest_strike_window = longest_strike_window
        self._batch_size = batch_size
        self._clock = clock

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    async def cutoffs(self) -> PruneCutoffs | None:
        """What may be deleted now (None when the policy keeps everything)."""
        now = self._clock()
        cutoff = self._policy.cutoff(now)
        if cutoff is None:
            return None
        window_start, _ = window_bounds(self._quota_policy.window, now, self._quota_policy.timezone)
        return PruneCutoffs(
            jobs=cutoff,
            moderation_log=cutoff,
            strikes=min(cutoff, now - await self._longest_strike_window()),
            mutes=cutoff,
            refunded_quota=cutoff,  # a refund never counts toward a quota
            committed_quota=None if window_start is None else min(cutoff, window_start),
        )

    async def prune(self) -> PruneReport:
        """One pass: every kind of record, in batches, until nothing due is left."""
        report = PruneReport()
        cutoffs = await self.cutoffs()
        if cutoffs is None:
            return report
        store = self._store
        refunded_before, committed_before = cutoffs.refunded_quota, cutoffs.committed_quota
        steps: list[tuple[str, Callable[[int], Awaitable[int]]]] = [
            ("jobs", lambda limit: store.prune_jobs(cutoffs.jobs, limit)),
            ("moderation log entries", lambda limit: store.prune_moderation_log(cutoffs.moderation_log, limit)),
            ("strikes", lambda limit: store.prune_strikes(cutoffs.strikes, limit)),
            ("mutes", lambda limit: store.prune_mutes(cutoffs.mutes, limit)),
            ("refunded quota entries", lambda limit: store.prune_quota_ledger("refunded", refunded_before, limit)),
        ]
        if committed_before is not None:
            steps.append(
                (
                    "committed quota entries",
                    lambda limit: store.prune_quota_ledger("committed", committed_before, limit),
                )
            )
        for name, step in steps:
            report.deleted[name] = await self._in_batches(step, report)
        if report.total:
            done = ", ".join(f"{count} {name}" for name, count in report.deleted.items() if count)
            log.info("retention: deleted %s (RETENTION_DAYS=%d)", done, self._policy.days)
        return report

    async def _in_batches(self, step: Callable[[int], Awaitable[int]], report: PruneReport) -> int:
        # Each batch is awaited before the next is queued, so the database thread serves
        # whatever arrived meanwhile first: a prune never holds it for longer than a batch.
        deleted = 0
        while True:
            count = await step(self._batch_size)
            report.batches += 1
            deleted += count
            if count < self._batch_size:
                return deleted
