"""Nothing the long-running core keeps per user, group or job grows without bound.

The bounded map itself (`bot.cache`), then the gate, quota and moderation caches
driven by many distinct users and groups over the real SQLite stores.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Set
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cache import LruDict, LruSet
from bot.domain import ChatRef, GenerationRequest, Job, JobKind, Platform, Requester, UserRef
from bot.errors import Refused
from bot.gate import RATE_LIMITED_USERS_TRACKED, Gatekeeper, RateLimiter
from bot.moderation.rules import load_default_blocklist
from bot.moderation.service import CACHED_GROUP_BLOCKLISTS, CACHED_GROUP_SETTINGS, GroupSettings, ModerationService
from bot.ports import ChatBudget, Posted, Progress, ProgressStage, VideoDelivery
from bot.pricing import Pricing
from bot.progress import LANE_SWEEP_MIN, Notifiers, ProgressReporter
from bot.quota import CACHED_QUOTA_OVERRIDES, USER, QuotaPolicy, QuotaService, QuotaUnit, QuotaWindow
from storage import Database, SqlGovernanceStore, SqlJobStore, SqlQuotaStore, open_database


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def largest_map(owner: object) -> int:
    """The size of the largest mapping or set `owner` holds: what grows with users, groups or jobs."""
    return max(len(value) for value in vars(owner).values() if isinstance(value, Mapping | Set))


# ---------------------------------------------------------------------- the map


def test_lru_dict_keeps_the_most_recently_used_entries() -> None:
    cache: LruDict[str, int] = LruDict(3)
    for key, value in [("a", 1), ("b", 2), ("c", 3)]:
        cache[key] = value
    assert cache["a"] == 1  # reading "a" makes "b" the least recently used
    cache["d"] = 4
    assert dict(cache) == {"c": 3, "a": 1, "d": 4}
    assert "b" not in cache and cache.get("b") is None
    cache["c"] = 30  # writing counts as use too
    cache["e"] = 5
    assert list(cache) == ["d", "c", "e"] and len(cache) == 3
    del cache["c"]
    assert cache.pop("d") == 4 and list(cache) == ["e"]
    cache.clear()
    assert len(cache) == 0


def test_lru_dict_forgets_entries_idle_for_the_ttl() -> None:
    clock = FakeClock()
    cache: LruDict[str, int] = LruDict(100, ttl=10, clock=clock)
    cache["idle"] = 1
    cache["busy"] = 2
    clock.advance(6)
    assert cache["busy"] == 2  # used: its ten seconds start again
    clock.advance(4)
    assert "idle" not in cache and cache.get("busy") == 2
    assert len(cache) == 1
    clock.advance(10)
    assert len(cache) == 0 and list(cache) == []
    with pytest.raises(KeyError):
        cache["busy"]


def test_lru_dict_refuses_a_size_or_ttl_it_cannot_keep() -> None:
    with pytest.raises(ValueError, match="max_size"):
        LruDict(0)
    with pytest.raises(ValueError, match="ttl"):
        LruDict(5, ttl=0)


def test_lru_set_is_a_bounded_set() -> None:
    clock = FakeClock()
    members: LruSet[str] = LruSet(2, ttl=60, clock=clock)
    members.add("j1")
    members.add("j2")
    members.add("j1")
    members.add("j3")  # "j2" was used least recently
    assert set(members) == {"j1", "j3"} and "j2" not in members
    members.discard("j1")
    members.discard("never there")
    assert list(members) == ["j3"]
    clock.advance(60)
    assert len(members) == 0


# ---------------------------------------------------------------------- the core's maps


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "bot.sqlite3")
    try:
        yield database
    finally:
        await database.close()


def member(user: int, group: int) -> Requester:
    return Requester(
        user=UserRef(Platform.TELEGRAM, str(user), f"User {user}"), chat=ChatRef(Platform.TELEGRAM, f"-{group}")
    )


async def all_of(calls: Iterable[Awaitable[object]]) -> None:
    await asyncio.gather(*calls)


def test_a_hundred_thousand_users_through_the_gate_leave_its_memory_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 30.0, clock)
    # All of them within one window: only the hard cap can hold the map down.
    for user in range(100_000):
        limiter.check(f"telegram:{user}")
        clock.advance(0.0001)
        if user % 10_000 == 0:
            assert largest_map(limiter) <= RATE_LIMITED_USERS_TRACKED
    assert largest_map(limiter) <= RATE_LIMITED_USERS_TRACKED

    # The users still remembered are still limited …
    limiter.check("telegram:99999")
    with pytest.raises(Refused, match="Slow down"):
        limiter.check("telegram:99999")
    with pytest.raises(Refused) as silent:
        limiter.check("telegram:99999")
    assert silent.value.silent
    # … and once the window has passed, nobody needs remembering.
    clock.advance(30)
    limiter.check("telegram:1")
    assert largest_map(limiter) == 1


async def test_many_groups_and_users_leave_the_moderation_and_quota_caches_bounded(db: Database) -> None:
    governance = SqlGovernanceStore(db)
    moderation = ModerationService(
        governance, load_default_blocklist(), defaults=GroupSettings(), operators=frozenset()
    )
    gate = Gatekeeper(moderation, RateLimiter(6, 30.0))
    groups = CACHED_GROUP_SETTINGS + 500
    await all_of(gate.admit(member(user, group=user)) for user in range(groups))
    assert largest_map(moderation) <= CACHED_GROUP_SETTINGS

    blocklist_groups = CACHED_GROUP_BLOCKLISTS + 100
    await all_of(moderation.check_texts(member(g, group=g), ["a fox in the snow"]) for g in range(blocklist_groups))
    assert len(moderation._lists) <= CACHED_GROUP_BLOCKLISTS

    policy = QuotaPolicy(
        unit=QuotaUnit.VIDEOS,
        window=QuotaWindow.DAILY,
        timezone=ZoneInfo("UTC"),
        per_user=10,
        per_group=None,
        operators=frozenset(),
    )
    quotas = QuotaService(SqlQuotaStore(db), governance, Pricing.load(), policy)
    await quotas.set_limit(USER, "telegram:0", 3)
    users = CACHED_QUOTA_OVERRIDES + 500
    limits = await asyncio.gather(*(quotas.limit_for(USER, f"telegram:{user}") for user in range(users)))
    assert largest_map(quotas) <= CACHED_QUOTA_OVERRIDES
    # Forgotten entries are read again from the store, so nothing is lost.
    assert limits[0] == 3 and set(limits[1:]) == {10}
    assert await quotas.limit_for(USER, "telegram:0") == 3


class _ProgressSink:
    """A notifier that takes every progress at once (the reporter is what is measured)."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def upload_limit(self, job: Job) -> int:
        return 0

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return ChatBudget(min_gap=1.0)

    def budget_scope(self, job: Job) -> str:
        return job.chat.chat_id  # one budget per chat, as Telegram's

    async def progress(self, job: Job, progress: Progress) -> str | None:
        self.shown.append(job.id)
        return None

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        raise AssertionError("no delivery here")

    async def failed(self, job: Job, reason: str) -> Posted:
        raise AssertionError("no failure here")

    async def finish(self, job: Job, posted: Posted) -> None:
        raise AssertionError("nothing to finish here")

    async def alert_operator(self, text: str) -> None:
        raise AssertionError("no alert here")


async def test_progress_lanes_of_many_chats_are_forgotten_once_idle(db: Database) -> None:
    jobs, sink, clock = SqlJobStore(db), _ProgressSink(), FakeClock()
    notifiers = Notifiers()
    notifiers.register(Platform.TELEGRAM, sink)
    reporter = ProgressReporter(notifiers, jobs, interval=1.0, clock=clock)
    chats = 5 * LANE_SWEEP_MIN
    for chat in range(chats):
        job = Job(id=f"j{chat}", requester=member(chat, chat), request=GenerationRequest(kind=JobKind.CREATE))
        await jobs.add(job)
        await reporter.report(job, Progress(ProgressStage.QUEUED, queue_position=1))
        if chat % 100 == 99:  # a hundred chats at a time, then their lanes' budgets no longer bind
            await reporter.idle()
            clock.advance(1.0)
    await reporter.idle()
    assert sorted(sink.shown) == sorted(f"j{chat}" for chat in range(chats))
    assert len(reporter._lanes) <= 2 * LANE_SWEEP_MIN


async def test_a_jobs_first_answer_goes_without_a_store_read_and_later_ones_with_one(db: Database) -> None:
    """The first answer needs no read (there is no message yet for a stale report to
    overwrite), which saves a database round trip per command; once a job has a progress
    message, each send reads the job first, so a report read before the job finished
    never edits its message."""
    jobs, sink, clock = SqlJobStore(db), _ProgressSink(), FakeClock()
    notifiers = Notifiers()
    notifiers.register(Platform.TELEGRAM, sink)
    read: list[str] = []
    real_get = jobs.get

    async def noted_get(job_id: str) -> Job | None:
        read.append(job_id)
        return await real_get(job_id)

    jobs.get = noted_get  # type: ignore[method-assign]
    reporter = ProgressReporter(notifiers, jobs, interval=1.0, clock=clock)
    job = Job(id="first", requester=member(1, 1), request=GenerationRequest(kind=JobKind.CREATE))
    await jobs.add(job)

    await reporter.report(job, Progress(ProgressStage.QUEUED, queue_position=1))
    await reporter.idle()
    assert sink.shown == ["first"] and read == []

    clock.advance(1.0)
    await reporter.report(job, Progress(ProgressStage.STARTED))
    await reporter.idle()
    assert sink.shown == ["first", "first"] and read == ["first"]


class _CountedStore:
    """A real store whose every (async) call is counted by name: what a command costs the database."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await real(*args, **kwargs)

        return counted


def _governed(db: Database) -> tuple[_CountedStore, ModerationService, Gatekeeper, _CountedStore, QuotaService]:
    governance = _CountedStore(SqlGovernanceStore(db))
    moderation = ModerationService(
        governance,  # type: ignore[arg-type]
        load_default_blocklist(),
        defaults=GroupSettings(),
        operators=frozenset(),
    )
    gate = Gatekeeper(moderation, RateLimiter(6, 30.0))
    quota_store = _CountedStore(SqlQuotaStore(db))
    policy = QuotaPolicy(QuotaUnit.VIDEOS, QuotaWindow.DAILY, ZoneInfo("UTC"), 10, None, frozenset())
    quotas = QuotaService(quota_store, SqlGovernanceStore(db), Pricing.load(), policy)  # type: ignore[arg-type]
    return governance, moderation, gate, quota_store, quotas


async def test_commands_of_new_users_read_neither_bans_mutes_nor_quota_overrides(db: Database) -> None:
    """Bans, mutes and overrides are few and seldom change: held whole, the gate and the
    quota answer every newcomer from memory; a ban or override set here counts at once."""
    governance, moderation, gate, quota_store, quotas = _governed(db)
    await quotas.set_limit(USER, "telegram:7", 3)
    users = 50
    for user in range(users):
        await gate.admit(member(user, group=1))
        await quotas.limit_for(USER, f"telegram:{user}")
    assert governance.calls["access"] == 0 and governance.calls["access_lists"] == 1
    assert quota_store.calls["get_override"] == 0 and quota_store.calls["overrides"] == 1
    assert await quotas.limit_for(USER, "telegram:7") == 3

    await moderation.ban("telegram:3", "*", by="telegram:0")
    with pytest.raises(Refused, match="not allowed"):
        await gate.admit(member(3, group=1))
    await gate.admit(member(4, group=1))
    assert await moderation.unban("telegram:3", "*")
    await gate.admit(member(3, group=1))
    await quotas.set_limit(USER, "telegram:8", None)
    assert await quotas.limit_for(USER, "telegram:8") is None
    assert governance.calls["access"] == 0 and quota_store.calls["get_override"] == 0


async def test_past_the_held_bound_each_command_reads_its_own_ban_and_override(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot with more bans (or overrides) than memory holds whole still enforces each one, a read per command."""
    monkeypatch.setattr("bot.moderation.service.HELD_ACCESS_ENTRIES", 2)
    monkeypatch.setattr("bot.quota.CACHED_QUOTA_OVERRIDES", 2)
    governance, moderation, gate, quota_store, quotas = _governed(db)
    for user in range(3):
        await moderation.ban(f"telegram:{user}", "*", by="telegram:99")
        await quotas.set_limit(USER, f"telegram:{user}", user)
    for user in range(3):
        with pytest.raises(Refused, match="not allowed"):
            await gate.admit(member(user, group=1))
        assert await quotas.limit_for(USER, f"telegram:{user}") == user
    await gate.admit(member(5, group=1))
    assert await quotas.limit_for(USER, "telegram:5") == 10
    assert governance.calls["access"] == 4 and quota_store.calls["get_override"] == 4
    assert largest_map(quotas) <= 2
