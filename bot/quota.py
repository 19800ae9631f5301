"""Per-user quotas and group pools: reserve on accept, commit on success, refund otherwise.

The unit is the operator's choice: videos (each job counts 1) or PixVerse credits
(estimated from the prices in the model catalogue). Usage is counted per window — daily, weekly,
monthly or total — whose boundaries fall at midnight in the configured time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.cache import SharedCache, SharedSnapshot
from bot.domain import Job, JobState, UserRef, utcnow
from bot.errors import BotError
from bot.ports import Coordinator, GovernanceStore, QuotaCharge, QuotaReservation, QuotaStore, UsageStats
from bot.pricing import Pricing

USER, GROUP = "user", "group"

# Quota overrides held in memory: all of them, while there are no more than this. Past it,
# a subject's override (or lack of one) is remembered for this many users and groups, and
# those past that are simply read from the store again on their next request: one small query.
CACHED_QUOTA_OVERRIDES = 10_000
# What another process announces when it changed an override (`bot.ports.Coordinator`).
OVERRIDES_TOPIC = "quota-overrides"


class QuotaUnit(StrEnum):
    VIDEOS = "videos"
    CREDITS = "credits"

    def of(self, amount: int) -> str:
        """The amount with the unit in the right number: `1 video`, `3 credits`."""
        return f"{amount} {self.value.removesuffix('s') if amount == 1 else self.value}"


class QuotaWindow(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TOTAL = "total"


def window_bounds(window: QuotaWindow, now: datetime, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """(start, end) of the window containing `now`; (None, None) for a total quota."""
    if window is QuotaWindow.TOTAL:
        return None, None
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window is QuotaWindow.DAILY:
        start = midnight
        end = _local_midnight(start + timedelta(days=1), tz)
    elif window is QuotaWindow.WEEKLY:
        start = _local_midnight(midnight - timedelta(days=midnight.weekday()), tz)
        end = _local_midnight(start + timedelta(days=7), tz)
    else:
        start = midnight.replace(day=1)
        next_month = (start + timedelta(days=32)).replace(day=1)
        end = _local_midnight(next_month, tz)
    return start, end


def _local_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    # Re-anchor to midnight after adding days, so a DST change does not shift the boundary.
    return datetime(moment.year, moment.month, moment.day, tzinfo=tz)


class QuotaExceeded(BotError):
    """The request does not fit the user's (or the group's) quota."""


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    unit: QuotaUnit
    window: QuotaWindow
    limit: int | None  # None: unlimited
    used: int
    reserved: int
    resets_at: datetime | None

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used - self.reserved)


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    unit: QuotaUnit
    window: QuotaWindow
    timezone: ZoneInfo
    per_user: int | None  # None: unlimited
    per_group: int | None  # None: no group pool
    operators: frozenset[str]  # user keys with no limit


class QuotaService:
    def __init__(
        self,
        store: QuotaStore,
        stats: GovernanceStore,
        pricing: Pricing,
        policy: QuotaPolicy,
        clock: Callable[[], datetime] = utcnow,
        coordinator: Coordinator | None = None,
    ) -> None:
        self._clock = clock
        # Overrides are few (an admin sets each): all of them are held, so a user never seen
        # before needs no read to learn they have none. Only past CACHED_QUOTA_OVERRIDES of
        # them (None) is each subject's looked up, and the last used kept.
        self._all_overrides: SharedSnapshot[dict[tuple[str, str], int | None] | None] = SharedSnapshot()
        self._overrides: SharedCache[tuple[str, str], tuple[bool, int | None]] = SharedCache(CACHED_QUOTA_OVERRIDES)
        # Other processes on the same database change overrides too: they say so.
        self._coordinator = coordinator
        if coordinator is not None:
            coordinator.subscribe(OVERRIDES_TOPIC, self._all_overrides.forget)
            coordinator.subscribe(OVERRIDES_TOPIC, self._overrides.forget)
        self._store = store
        self._stats = stats
        self._pricing = pricing
        self._policy = policy

    @property
    def policy(self) -> QuotaPolicy:
        return self._policy

    def cost(self, job: Job) -> int:
        return 1 if self._policy.unit is QuotaUnit.VIDEOS else self._pricing.credits(job.request)

    def price_in_unit(self, credits: int) -> str:
        """What a job costing `credits` takes from a quota, in the operator's unit ("1 video", "40 credits")."""
        return self._policy.unit.of(1 if self._policy.unit is QuotaUnit.VIDEOS else credits)

    async def limit_for(self, scope: str, subject: str) -> int | None:
        # Overrides change only by admin commands (of this process, or of another that
        # announces it): cache them.
        every = await self._all_overrides.get_or_load(lambda: self._store.overrides(CACHED_QUOTA_OVERRIDES))
        if every is not None:
            has_override, limit = (scope, subject) in every, every.get((scope, subject))
        else:
            has_override, limit = await self._overrides.get_or_load(
                (scope, subject), lambda: self._store.get_override(scope, subject)
            )
        if has_override:
            return limit
        if scope == USER:
            return None if subject in self._policy.operators else self._policy.per_user
        return self._policy.per_group

    async def reservation(self, job: Job) -> QuotaReservation:
        """What the job takes from the user's quota (and the group pool), and the limits it must fit.

        Recorded atomically with the job by `JobAdmission.admit`; `exceeded` words a refusal.
        """
        now = self._clock()
        start, _ = window_bounds(self._policy.window, now, self._policy.timezone)
        charges = []
        user_limit = await self.limit_for(USER, job.user.key)
        if user_limit is not None:
            charges.append(QuotaCharge(USER, job.user.key, user_limit, start))
        group = job.chat.group_key
        group_limit = await self.limit_for(GROUP, group) if group else None
        if group and group_limit is not None and job.user.key not in self._policy.operators:
            charges.append(QuotaCharge(GROUP, group, group_limit, start))
        return QuotaReservation(
            user_key=job.user.key,
            group_key=group,
            amount=self.cost(job),
            charges=tuple(charges),
            credits=self._pricing.credits(job.request),
            user_name=job.user.display_name,
            at=now,
        )

    def exceeded(self, charge: QuotaCharge, reservation: QuotaReservation) -> QuotaExceeded:
        """The refusal for a reservation that would exceed `charge`: which limit, and when it resets."""
        _, resets_at = window_bounds(self._policy.window, reservation.at or self._clock(), self._policy.timezone)
        return QuotaExceeded(self._refusal(charge, reservation.amount, resets_at))

    async def settle(self, job: Job) -> bool:
        """Commit when the job made a video; refund on failure, moderation, cancel or time-out.

        Returns True the first time only (settling is idempotent).
        """
        succeeded = (job.outcome or job.state) is JobState.COMPLETED
        return await self._store.settle(job.id, commit=succeeded)

    async def release_orphans(self) -> int:
        return await self._store.release_orphans()

    async def status(self, user: UserRef, group_key: str | None = None) -> tuple[QuotaStatus, QuotaStatus | None]:
        """The user's quota, and the group pool's when there is one."""
        mine = await self._status(USER, user.key)
        pool = (
            await self._status(GROUP, group_key)
            if group_key and await self.limit_for(GROUP, group_key) is not None
            else None
        )
        return mine, pool

    async def _status(self, scope: str, subject: str) -> QuotaStatus:
        start, end = window_bounds(self._policy.window, self._clock(), self._policy.timezone)
        usage = await self._store.usage(scope, subject, start)
        return QuotaStatus(
            unit=self._policy.unit,
            window=self._policy.window,
            limit=await self.limit_for(scope, subject),
            used=usage.committed,
            reserved=usage.reserved,
            resets_at=end,
        )

    async def set_limit(self, scope: str, subject: str, limit: int | None) -> None:
        await self._store.set_override(scope, subject, limit)
        self._all_overrides.forget()
        self._overrides.put((scope, subject), (True, limit))
        if self._coordinator is not None:
            await self._coordinator.announce(OVERRIDES_TOPIC)

    async def reset(self, scope: str, subject: str) -> None:
        await self._store.reset(scope, subject, self._clock())

    async def usage_stats(self, group_key: str | None, since: datetime) -> list[UsageStats]:
        return await self._stats.usage_stats(group_key, since)

    def _refusal(self, charge: QuotaCharge, amount: int, resets_at: datetime | None) -> str:
        unit = self._policy.unit
        whose = "Your" if charge.scope == USER else "This group's shared"
        when = (
            f" It resets {resets_at.astimezone(self._policy.timezone):%Y-%m-%d %H:%M %Z}."
            if resets_at
            else " It does not reset; ask an admin for more."
        )
        return (
            f"{whose} {self._policy.window.value} quota of {unit.of(charge.limit)} does not have room for this "
            f"request ({unit.of(amount)}).{when} /quota shows what is left."
        )
