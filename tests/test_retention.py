"""Data retention: what RETENTION_DAYS deletes, what it never touches, and how it stays out of the way.

Real SQLite storage, the real pruner (the one bootstrap runs), a fake clock; the
user-visible parts through the real Telegram adapter against the fake Bot API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain import ChatRef, GenerationRequest, Job, JobKind, JobState, Platform, Requester, UserRef, new_job_id
from bot.moderation.rules import Blocklist
from bot.moderation.service import GroupSettings, ModerationService
from bot.ports import ModerationLogEntry
from bot.pricing import Pricing
from bot.quota import USER, QuotaExceeded, QuotaPolicy, QuotaService, QuotaUnit, QuotaWindow
from bot.retention import Pruner, RetentionPolicy
from storage import (
    Database,
    SqlGovernanceStore,
    SqlJobAdmission,
    SqlJobStore,
    SqlQuotaStore,
    SqlRetentionStore,
    open_database,
)
from storage.database import to_sql_time
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    CAROL,
    GROUP,
    fake_fixture,
    job_id_of,
    running_bot,
    telegram_settings,
    wait_text_reply,
    wait_videos,
)
from tests.harness import RecordingNotifier, admit_job, eventually, fast_settings, running_core

NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
GROUP_KEY = "telegram:-100"


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def requester(user_id: str = "u1") -> Requester:
    return Requester(user=UserRef(Platform.CONSOLE, user_id, f"User {user_id}"), chat=ChatRef(Platform.CONSOLE, "c1"))


def make_job(
    state: JobState,
    *,
    created: datetime,
    finished: datetime | None = None,
    outcome: JobState | None = None,
    parent_id: str | None = None,
) -> Job:
    return Job(
        id=new_job_id(),
        requester=requester(),
        request=GenerationRequest(kind=JobKind.CREATE, user_prompt="a fox", prompt="a fox"),
        state=state,
        outcome=outcome or (JobState.COMPLETED if state is JobState.DELIVERED else None),
        parent_id=parent_id,
        created_at=created,
        updated_at=finished or created,
        finished_at=finished,
    )


@dataclass
class World:
    """The stores and services the pruner works with, on one database and one fake clock."""

    db: Database
    clock: FakeClock
    jobs: SqlJobStore
    governance: SqlGovernanceStore
    moderation: ModerationService
    quotas: QuotaService
    pruner: Pruner


def build(
    db: Database, *, days: int, window: QuotaWindow = QuotaWindow.DAILY, batch_size: int = 500, clock=None
) -> World:
    clock = clock or FakeClock()
    governance = SqlGovernanceStore(db)
    moderation = ModerationService(
        governance,
        Blocklist.from_lines([], allow_regex=False, source="global"),
        defaults=GroupSettings(strike_window_hours=24),
        operators=frozenset(),
        clock=clock,
    )
    policy = QuotaPolicy(
        unit=QuotaUnit.VIDEOS,
        window=window,
        timezone=ZoneInfo("UTC"),
        per_user=None,
        per_group=None,
        operators=frozenset(),
    )
    quotas = QuotaService(SqlQuotaStore(db), governance, Pricing.load(), policy, clock=clock)
    pruner = Pruner(
        SqlRetentionStore(db),
        RetentionPolicy(days),
        quota_policy=policy,
        longest_strike_window=moderation.longest_strike_window,
        batch_size=batch_size,
        clock=clock,
    )
    return World(db, clock, SqlJobStore(db), governance, moderation, quotas, pruner)


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    async with await open_database(tmp_path / "retention.sqlite3") as database:
        yield database


async def job_ids(db: Database) -> set[str]:
    return {row["id"] for row in await db.fetch_all("SELECT id FROM jobs")}


async def count(db: Database, table: str) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


def log_entry(at: datetime, text: str = "a blocked prompt") -> ModerationLogEntry:
    return ModerationLogEntry(at, GROUP_KEY, "console:u1", "User u1", text, "blocked", "blocklist", "rejected")


# ---------------------------------------------------------------- what goes, what stays


async def test_old_delivered_jobs_go_while_recent_and_unfinished_ones_stay(db) -> None:
    world = build(db, days=90)
    old = make_job(JobState.DELIVERED, created=NOW - 95 * DAY, finished=NOW - 91 * DAY)
    old_failure = make_job(
        JobState.DELIVERED, created=NOW - 300 * DAY, finished=NOW - 300 * DAY, outcome=JobState.FAILED
    )
    # Asked long ago but finished recently (an off-peak job that waited): counted from its end.
    recent = make_job(JobState.DELIVERED, created=NOW - 100 * DAY, finished=NOW - 89 * DAY)
    queued = make_job(JobState.QUEUED, created=NOW - 300 * DAY)
    running = make_job(JobState.GENERATING, created=NOW - 300 * DAY)
    undelivered = make_job(JobState.COMPLETED, created=NOW - 300 * DAY, finished=NOW - 299 * DAY)
    for job in (old, old_failure, recent, queued, running, undelivered):
        await world.jobs.add(job)

    report = await world.pruner.prune()

    assert await job_ids(db) == {recent.id, queued.id, running.id, undelivered.id}
    assert report.deleted["jobs"] == 2


async def test_a_kept_job_made_from_a_deleted_one_keeps_going_without_the_reference(db) -> None:
    # One job per batch, so a parent and its old child are deleted in different units of work.
    world = build(db, days=30, batch_size=1)
    grandparent = make_job(JobState.DELIVERED, created=NOW - 60 * DAY, finished=NOW - 60 * DAY)
    parent = make_job(JobState.DELIVERED, created=NOW - 50 * DAY, finished=NOW - 50 * DAY, parent_id=grandparent.id)
    reroll = make_job(JobState.DELIVERED, created=NOW - 2 * DAY, finished=NOW - 2 * DAY, parent_id=parent.id)
    upscale = make_job(JobState.GENERATING, created=NOW - DAY, parent_id=reroll.id)
    for job in (grandparent, parent, reroll, upscale):
        await world.jobs.add(job)

    await world.pruner.prune()

    assert await job_ids(db) == {reroll.id, upscale.id}
    kept = await world.jobs.get(reroll.id)
    assert kept is not None and kept.parent_id is None and kept.state is JobState.DELIVERED
    still_running = await world.jobs.get(upscale.id)
    assert still_running is not None and still_running.parent_id == reroll.id


async def test_the_moderation_log_strikes_and_ended_mutes_are_deleted_after_the_retention(db) -> None:
    world = build(db, days=90)
    governance = world.governance
    await governance.log_moderation(log_entry(NOW - 91 * DAY, "an old refused prompt"))
    await governance.log_moderation(log_entry(NOW - 10 * DAY, "a recent refused prompt"))
    await governance.add_strike("console:u1", GROUP_KEY, NOW - 91 * DAY, "blocked")
    await governance.add_strike("console:u1", GROUP_KEY, NOW - DAY, "blocked")
    await governance.set_mute("console:old", GROUP_KEY, NOW - 91 * DAY)
    await governance.set_mute("console:recent", GROUP_KEY, NOW - 10 * DAY)
    await governance.set_mute("console:muted", GROUP_KEY, NOW + timedelta(hours=1))

    await world.pruner.prune()

    assert [entry.text for entry in await governance.moderation_log(None, 10)] == ["a recent refused prompt"]
    assert await governance.count_strikes("console:u1", GROUP_KEY, NOW - 365 * DAY) == 1
    mutes = await db.fetch_all("SELECT user_key FROM mutes ORDER BY user_key")
    assert [row["user_key"] for row in mutes] == ["console:muted", "console:recent"]


async def test_strikes_a_group_still_counts_are_kept_past_the_retention(db) -> None:
    world = build(db, days=20)
    # One group counts strikes over 25 days: younger strikes may still mute someone.
    await world.moderation.update_settings(GROUP_KEY, strike_window_hours=25 * 24)
    await world.governance.add_strike("console:u1", GROUP_KEY, NOW - 22 * DAY, "blocked")
    await world.governance.add_strike("console:u1", GROUP_KEY, NOW - 26 * DAY, "blocked")

    await world.pruner.prune()

    assert await world.governance.count_strikes("console:u1", GROUP_KEY, NOW - 365 * DAY) == 1
    assert await world.governance.count_strikes("console:u1", GROUP_KEY, NOW - 25 * DAY) == 1


# ---------------------------------------------------------------- the quota ledger

# (when, how the job ended, kept?) — None as the ending leaves the reservation open.
LEDGER_CASES = {
    # Daily window, 7 days kept: today's and this week's usage stay, older counted rows go.
    QuotaWindow.DAILY: [
        (NOW - 8 * DAY, JobState.COMPLETED, False),
        (NOW - 3 * DAY, JobState.COMPLETED, True),
        (NOW.replace(hour=0, minute=1), JobState.COMPLETED, True),
        (NOW - 8 * DAY, JobState.FAILED, False),
        (NOW - 30 * DAY, None, True),
    ],
    # Monthly window, 7 days kept: everything of this month still counts, so it stays.
    QuotaWindow.MONTHLY: [
        (datetime(2026, 3, 1, 0, 1, tzinfo=UTC), JobState.COMPLETED, True),
        (datetime(2026, 3, 2, tzinfo=UTC), JobState.COMPLETED, True),
        (datetime(2026, 2, 27, tzinfo=UTC), JobState.COMPLETED, False),
        (datetime(2026, 3, 2, tzinfo=UTC), JobState.FAILED, False),  # a refund never counts
        (datetime(2026, 1, 2, tzinfo=UTC), None, True),
    ],
    # Total: counted usage is the quota itself and is never deleted; refunds are.
    QuotaWindow.TOTAL: [
        (NOW - 400 * DAY, JobState.COMPLETED, True),
        (NOW - 8 * DAY, JobState.COMPLETED, True),
        (NOW - 400 * DAY, JobState.FAILED, False),
        (NOW - 400 * DAY, None, True),
    ],
}


@pytest.mark.parametrize("window", list(LEDGER_CASES))
async def test_ledger_entries_that_count_toward_the_current_window_are_never_deleted(db, window) -> None:
    world = build(db, days=7, window=window)
    kept, deleted = set(), set()
    for at, ending, expect_kept in LEDGER_CASES[window]:
        world.clock.now = at
        job = make_job(JobState.QUEUED, created=at)
        await admit_job(world.quotas, SqlJobAdmission(world.db), job)
        if ending is not None:
            await world.quotas.settle(job.evolve(state=ending))
        (kept if expect_kept else deleted).add(job.id)
    world.clock.now = NOW
    user = requester().user
    before, _ = await world.quotas.status(user)
    # The user is at their limit: a prune must not hand any of it back.
    await world.quotas.set_limit(USER, user.key, before.used + before.reserved)
    with pytest.raises(QuotaExceeded):
        await admit_job(world.quotas, SqlJobAdmission(world.db), make_job(JobState.QUEUED, created=NOW))

    await world.pruner.prune()

    rows = await db.fetch_all("SELECT job_id FROM quota_ledger")
    assert {row["job_id"] for row in rows} == kept
    after, _ = await world.quotas.status(user)
    assert (after.used, after.reserved) == (before.used, before.reserved)
    with pytest.raises(QuotaExceeded):
        await admit_job(world.quotas, SqlJobAdmission(world.db), make_job(JobState.QUEUED, created=NOW))


# ---------------------------------------------------------------- staying out of the way


async def test_a_large_prune_runs_in_small_units_and_commands_are_served_in_between(db) -> None:
    world = build(db, days=30, batch_size=500)
    old = to_sql_time(NOW - 40 * DAY)
    await db.run(
        lambda connection: connection.executemany(
            "INSERT INTO moderation_log (at, group_key, user_key, user_name, text, rule, source, action)"
            " VALUES (?, ?, 'console:u1', 'User u1', 'old', 'blocked', 'blocklist', 'rejected')",
            [(old, GROUP_KEY)] * 5000,
        )
    )

    pruning = asyncio.create_task(world.pruner.prune())
    # Commands keep coming while the prune runs: each is served after at most one batch,
    # so one lands while old rows are still there.
    seen_mid_prune = None
    while not pruning.done():
        await world.governance.log_moderation(log_entry(NOW, "written during the prune"))
        left = await count(db, "moderation_log WHERE text = 'old'")
        if 0 < left < 5000:
            seen_mid_prune = left
            break
    report = await pruning

    assert seen_mid_prune is not None, "no command was served while the prune was under way"
    assert report.deleted["moderation log entries"] == 5000
    assert report.batches >= 5000 // 500
    assert await count(db, "moderation_log WHERE text = 'old'") == 0
    assert await count(db, "moderation_log WHERE text = 'written during the prune'") >= 1


async def test_retention_days_0_keeps_everything(db) -> None:
    world = build(db, days=0, window=QuotaWindow.DAILY)
    ancient = NOW - 3000 * DAY
    await world.jobs.add(make_job(JobState.DELIVERED, created=ancient, finished=ancient))
    await world.governance.log_moderation(log_entry(ancient))
    await world.governance.add_strike("console:u1", GROUP_KEY, ancient, "blocked")
    await world.governance.set_mute("console:u1", GROUP_KEY, ancient)
    world.clock.now = ancient
    job = make_job(JobState.QUEUED, created=ancient)
    await admit_job(world.quotas, SqlJobAdmission(world.db), job)
    await world.quotas.settle(job.evolve(state=JobState.FAILED))
    world.clock.now = NOW

    report = await world.pruner.prune()

    assert (report.total, report.batches) == (0, 0)
    # The two jobs (the delivered one and the one whose quota was refunded) and one of each of the rest.
    for table, kept in (("jobs", 2), ("moderation_log", 1), ("strikes", 1), ("mutes", 1), ("quota_ledger", 1)):
        assert await count(db, table) == kept, table


async def test_the_running_bot_prunes_at_start_and_keeps_what_is_recent(tmp_path, sandbox) -> None:
    settings = fast_settings(tmp_path, sandbox, retention_days=30)
    now = datetime.now(UTC)
    old = make_job(JobState.DELIVERED, created=now - 40 * DAY, finished=now - 40 * DAY)
    recent = make_job(JobState.DELIVERED, created=now - 20 * DAY, finished=now - 20 * DAY)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        await core.jobs.add(old)
        await core.jobs.add(recent)
        await core.start_loops()

        async def old_one_gone() -> bool:
            return await core.jobs.get(old.id) is None

        await eventually(old_one_gone, what="the background pass deleting the old job")
        assert await core.jobs.get(recent.id) is not None


# ---------------------------------------------------------------- what users see (Telegram)


async def test_stats_says_how_far_back_it_sees_and_a_deleted_videos_buttons_say_why(tmp_path, sandbox, fake) -> None:
    fake.set_chat_member(GROUP, CAROL, "administrator")
    async with running_bot(telegram_settings(tmp_path, sandbox, fake, retention_days=30)) as bot:
        await fake.user_sends_text(GROUP, ALICE, "/create_single a fox in the snow")
        [video] = await wait_videos(fake, GROUP)
        job_id = job_id_of(video)
        await bot.delivered(job_id)

        async def ask(text: str, expect: str) -> str:
            sent = await fake.user_sends_text(GROUP, CAROL, text)
            return (await wait_text_reply(fake, GROUP, sent, expect))["text"]

        stats = await ask("/stats 7", "Last 7 days")
        assert "• Alice: 1 jobs" in stats
        assert stats.endswith("Stats reach back 30 days at most: older records are deleted.")

        # The job and its ledger row age past the retention; /stats no longer reaches them
        # even before they are deleted, and says why it stops at 30 days.
        db = bot.core.jobs._db  # type: ignore[attr-defined]
        long_ago = to_sql_time(datetime.now(UTC) - 31 * DAY)
        await db.write("UPDATE jobs SET created_at = ?, finished_at = ? WHERE id = ?", (long_ago, long_ago, job_id))
        await db.write("UPDATE quota_ledger SET created_at = ? WHERE job_id = ?", (long_ago, job_id))
        assert await ask("/stats 365", "365") == (
            "No jobs in the last 30 days.\n"
            "You asked for 365 days, but only the last 30 days are kept: older records are deleted."
        )

        report = await bot.core.pruner.prune()
        assert report.deleted["jobs"] == 1 and report.deleted["committed quota entries"] == 1

        query = await fake.user_presses_button(GROUP, ALICE, video, f"px:reroll:{job_id}")
        await fake.wait_for(lambda: query["id"] in fake.callback_answers, what="the answer to the press")
        answer = fake.callback_answers[query["id"]]
        assert answer["show_alert"] is True
        assert (
            answer["text"]
            == "⚠️ This video is older than 30 days, so the bot no longer keeps it: its buttons no longer work."
        )
        assert len(await wait_videos(fake, GROUP)) == 1  # nothing new was made
    assert fake.spec_violations == []
