"""The storage contract on both backends (SQLite and PostgreSQL, `database_url`): the quota
race across connections and processes, the ledger, governance records, retention, and
migrations started by two processes at once, /cancel's compare-and-sets and /queue's
place queries. (tests/test_storage.py runs the job and blob store tests on both backends
too.)"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bot import ports
from bot.domain import ChatRef, ImageRef, Job, JobKind, JobState, Requester, UserRef
from storage import (
    SqlBlobStore,
    SqlDatabase,
    SqlGovernanceStore,
    SqlJobAdmission,
    SqlJobStore,
    SqlQuotaStore,
    SqlRetentionStore,
    open_storage,
)
from storage.governance import record_reservation
from storage.jobs import _columns
from tests.postgres_server import PostgresServer
from tests.test_storage import ALICE, BOB, START, FakeClock, make_job

# How long the racing processes may take to start and finish, at most.
PROCESS_DEADLINE_SECONDS = 60


def one_unit_for(user_key: str, limit: int = 1) -> ports.QuotaReservation:
    charge = ports.QuotaCharge("user", user_key, limit, since=None)
    return ports.QuotaReservation(user_key, None, 1, (charge,), credits=10, user_name="Alice", at=START)


async def test_the_last_unit_goes_to_exactly_one_of_many_connections(database_url: str) -> None:
    # Several databases opened on the same URL: separate SQLite connections (threads), or
    # separate PostgreSQL pools; each admits several jobs at once.
    databases = [await open_storage(database_url) for _ in range(4)]
    try:
        jobs = [make_job(ALICE) for _ in range(24)]
        outcomes = await asyncio.gather(
            *(
                SqlJobAdmission(databases[n % len(databases)]).admit(job, one_unit_for(ALICE.key, limit=3))
                for n, job in enumerate(jobs)
            )
        )
        admitted = [job for job, outcome in zip(jobs, outcomes, strict=True) if outcome is None]
        assert len(admitted) == 3
        assert all(isinstance(outcome, ports.QuotaCharge) for outcome in outcomes if outcome is not None)
        usage = await SqlQuotaStore(databases[0]).usage("user", ALICE.key, None)
        assert usage == ports.QuotaUsage(committed=0, reserved=3)
        stored = [await SqlJobStore(databases[1]).get(job.id) for job in jobs]
        assert sorted(job.id for job in stored if job is not None) == sorted(job.id for job in admitted)
    finally:
        for database in databases:
            await database.close()


# A process that opens the database, says it is ready, waits for the go file, then
# tries to admit one job for the same user against a quota of one.
_RACER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from storage import SqlJobAdmission, open_storage
    from tests.test_storage import ALICE, make_job
    from tests.test_storage_contract import one_unit_for

    async def race(url, go, deadline):
        async with await open_storage(url) as db:
            print("ready", flush=True)
            while not go.exists():
                if time.monotonic() > deadline:
                    raise SystemExit("no go")
                await asyncio.sleep(0.005)
            outcome = await SqlJobAdmission(db).admit(make_job(ALICE), one_unit_for(ALICE.key))
            print("admitted" if outcome is None else "refused", flush=True)

    asyncio.run(race(sys.argv[1], Path(sys.argv[2]), time.monotonic() + float(sys.argv[3])))
    """
)


async def test_the_last_unit_goes_to_exactly_one_of_many_processes(
    database_url: str, store_db: SqlDatabase, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, database_url, str(go), str(PROCESS_DEADLINE_SECONDS)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        for _ in range(6)
    ]
    try:
        for racer in racers:  # every one has opened the database (and migrated) before the start
            assert racer.stdout is not None
            assert await asyncio.to_thread(racer.stdout.readline) == "ready\n"
        go.touch()
        answers = [
            (await asyncio.to_thread(racer.communicate, timeout=PROCESS_DEADLINE_SECONDS))[0].strip()
            for racer in racers
        ]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert sorted(answers) == ["admitted"] + ["refused"] * 5
    assert await SqlQuotaStore(store_db).usage("user", ALICE.key, None) == ports.QuotaUsage(reserved=1)


async def test_two_processes_opening_a_new_database_migrate_it_once(database_url: str) -> None:
    opener = "import asyncio, sys; from storage import open_storage\n" + (
        "async def main():\n    async with await open_storage(sys.argv[1]) as db: print(await db.schema_version())\n"
        "asyncio.run(main())"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", opener, database_url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(process.communicate(), PROCESS_DEADLINE_SECONDS) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], results
    versions = {out.strip() for out, _ in results}
    async with await open_storage(database_url) as db:
        rows = await db.fetch_all("SELECT version FROM schema_migrations")
        assert versions == {str(await db.schema_version()).encode()}
        assert len(rows) == await db.schema_version()  # each applied once


async def test_the_ledger(store_db: SqlDatabase) -> None:
    quotas, admission = SqlQuotaStore(store_db), SqlJobAdmission(store_db)
    first, second, third = (make_job(ALICE) for _ in range(3))
    for job in (first, second, third):
        assert await admission.admit(job, one_unit_for(ALICE.key, limit=5)) is None
    assert await quotas.settle(first.id, commit=True) is True
    assert await quotas.settle(first.id, commit=False) is False  # settled once only
    assert await quotas.settle(second.id, commit=False) is True
    assert await quotas.usage("user", ALICE.key, None) == ports.QuotaUsage(committed=1, reserved=1)
    assert await quotas.usage("user", ALICE.key, START + timedelta(seconds=1)) == ports.QuotaUsage()

    # A reset starts the count again: the reservation made before it no longer counts.
    await quotas.reset("user", ALICE.key, START + timedelta(seconds=1))
    await quotas.reset("user", ALICE.key, START + timedelta(seconds=2))
    assert await quotas.reset_at("user", ALICE.key) == START + timedelta(seconds=2)
    assert await quotas.usage("user", ALICE.key, None) == ports.QuotaUsage()
    # With a limit of one, one more fits after the reset, and then no more.
    charges = one_unit_for(ALICE.key, limit=1).charges
    later = ports.QuotaReservation(ALICE.key, None, 1, charges, at=START + timedelta(seconds=3))
    assert await admission.admit(make_job(ALICE), later) is None
    assert await admission.admit(make_job(ALICE), later) == charges[0]

    assert await quotas.get_override("user", BOB.key) == (False, None)
    await quotas.set_override("user", BOB.key, 7)
    await quotas.set_override("user", BOB.key, None)
    assert await quotas.get_override("user", BOB.key) == (True, None)

    # A reservation whose job was never written is refunded at start.
    orphan = ports.QuotaReservation(BOB.key, None, 1, ())
    await store_db.transaction(lambda transaction: record_reservation(transaction, "no-such-job", orphan))
    assert await quotas.release_orphans() == 1
    assert await quotas.usage("user", BOB.key, None) == ports.QuotaUsage()


async def test_governance_records(store_db: SqlDatabase) -> None:
    governance = SqlGovernanceStore(store_db)
    group = "telegram:-100"
    assert await governance.group_settings(group) is None
    await governance.save_group_settings(group, {"filter_mode": "strict", "strike_limit": 2})
    await governance.save_group_settings(group, {"filter_mode": "off"})
    assert await governance.group_settings(group) == {"filter_mode": "off"}
    assert await governance.all_group_settings() == {group: {"filter_mode": "off"}}

    assert await governance.add_filter(group, "spam", "admin") is True
    assert await governance.add_filter(group, "spam", "admin") is False
    assert await governance.add_filter(group, "eggs", "admin") is True
    assert sorted(await governance.filters(group)) == ["eggs", "spam"]
    assert await governance.remove_filter(group, "spam") is True
    assert await governance.filters(group) == ["eggs"]

    for seconds in (0, 10, 20):
        await governance.add_strike(ALICE.key, group, START + timedelta(seconds=seconds), "bad words")
    assert await governance.count_strikes(ALICE.key, group, START + timedelta(seconds=5)) == 2
    await governance.set_mute(ALICE.key, group, START + timedelta(hours=1))
    assert await governance.access(ALICE.key, [group, "*"], group) == (False, START + timedelta(hours=1))
    assert await governance.remove_mutes(ALICE.key, group, START) is True
    assert await governance.count_strikes(ALICE.key, group, START - timedelta(days=1)) == 0
    assert await governance.access(ALICE.key, [group, "*"], group) == (False, None)

    await governance.set_ban(BOB.key, "*", "admin", START)
    assert (await governance.access(BOB.key, [group, "*"], group))[0] is True
    assert await governance.remove_ban(BOB.key, "*") is True
    assert await governance.remove_ban(BOB.key, "*") is False

    entry = ports.ModerationLogEntry(START, group, BOB.key, "Bobby", "a prompt", "spam", "blocklist", "strike")
    await governance.log_moderation(entry)
    await governance.log_moderation(dataclasses.replace(entry, at=START + timedelta(seconds=1)))
    assert [e.at for e in await governance.moderation_log(group, 10)] == [START + timedelta(seconds=1), START]
    assert await governance.known_name(BOB.key) == "Bobby"

    assert await SqlJobAdmission(store_db).admit(make_job(ALICE), one_unit_for(ALICE.key, limit=9)) is None
    stats = await governance.usage_stats(None, START - timedelta(days=1))
    assert [(s.subject, s.name, s.jobs, s.failures, s.credits) for s in stats] == [(ALICE.key, "Alice", 1, 0, 0)]


async def test_retention_prunes_in_batches(store_db: SqlDatabase) -> None:
    jobs, retention = SqlJobStore(store_db), SqlRetentionStore(store_db)
    old = [make_job(ALICE, created_at=START - timedelta(days=40), state=JobState.DELIVERED) for _ in range(3)]
    old = [job.evolve(finished_at=START - timedelta(days=40)) for job in old]
    for job in old:
        await jobs.add(job)
    reroll = make_job(ALICE, parent_id=old[0].id)
    await jobs.add(reroll)
    cutoff = START - timedelta(days=30)
    assert await retention.prune_jobs(cutoff, limit=2) == 2
    assert await retention.prune_jobs(cutoff, limit=2) == 1
    assert await retention.prune_jobs(cutoff, limit=2) == 0
    kept = await jobs.get(reroll.id)
    assert kept is not None and kept.parent_id is None

    governance = SqlGovernanceStore(store_db)
    for days in (40, 35, 1):
        await governance.add_strike(BOB.key, "g", START - timedelta(days=days), "x")
    assert await retention.prune_strikes(cutoff, limit=1) == 1
    assert await retention.prune_strikes(cutoff, limit=5) == 1
    assert await governance.count_strikes(BOB.key, "g", START - timedelta(days=100)) == 1
    with pytest.raises(ValueError, match="settled"):
        await retention.prune_quota_ledger("reserved", cutoff, 10)


async def test_a_swept_picture_is_one_no_job_still_has_to_upload_of_several(store_db: SqlDatabase) -> None:
    # A job with several pictures names them in request.more_images (a JSON array): the
    # dialects read it differently (json_each / jsonb_array_elements).
    jobs, blobs = SqlJobStore(store_db), SqlBlobStore(store_db)
    job = make_job(ALICE)
    refs = (ImageRef("first", None), ImageRef("second", None), ImageRef("third", None))
    job = job.evolve(request=job.request.with_changes(kind=JobKind.FUSION).with_images(refs))
    pictures = [ports.NewImage(name.encode(), "image/png") for name in ("first", "second", "third")]
    reservation = ports.QuotaReservation(ALICE.key, None, 1, ())
    assert await SqlJobAdmission(store_db).admit(job, reservation, pictures[0], more_images=pictures[1:]) is None
    assert await blobs.delete_unreferenced() == 0
    # The second picture is uploaded (the request names its upstream path): it may go.
    uploaded = (refs[0], ImageRef("second", "upload/second.png"), refs[2])
    await jobs.update(job.id, request=job.request.with_images(uploaded))
    assert await blobs.delete_unreferenced() == 1
    assert [await blobs.get(name) is not None for name in ("first", "second", "third")] == [True, False, True]


# --- /cancel and /queue (bot/cancellation.py) on both backends


async def test_a_queued_job_is_cancelled_or_claimed_by_the_scheduler_never_both(database_url: str) -> None:
    # The canceller and the scheduler on two connections (two SQLite connections, two
    # PostgreSQL pools), each job raced by both at once, the claim first for every other job.
    canceller_db, scheduler_db = await open_storage(database_url), await open_storage(database_url)
    try:
        canceller, scheduler = SqlJobStore(canceller_db), SqlJobStore(scheduler_db)
        quotas = SqlQuotaStore(canceller_db)
        charge = ports.QuotaCharge("user", ALICE.key, 100, since=None)
        reservation = ports.QuotaReservation(ALICE.key, None, 2, (charge,), credits=10, user_name="Alice", at=START)
        jobs = [make_job(ALICE, created_at=START + timedelta(seconds=n)) for n in range(16)]
        for job in jobs:
            assert await SqlJobAdmission(scheduler_db).admit(job, reservation) is None
        assert await quotas.usage("user", ALICE.key, None) == ports.QuotaUsage(reserved=32)

        async def cancel(job: Job) -> Job | None:
            # As JobControl cancels a queued job; its outcome then refunds the reservation.
            done = await canceller.transition(job.id, JobState.QUEUED, JobState.CANCELLED, failure="Cancelled by Alice")
            if done is not None:
                assert await quotas.settle(job.id, commit=False) is True
            return done

        async def claim(job: Job) -> Job | None:
            return await scheduler.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account="a@b.c", attempts=1)

        async def race(n: int, job: Job) -> tuple[Job | None, Job | None]:
            if n % 2:
                claimed, cancelled = await asyncio.gather(claim(job), cancel(job))
            else:
                cancelled, claimed = await asyncio.gather(cancel(job), claim(job))
            return cancelled, claimed

        results = await asyncio.gather(*(race(n, job) for n, job in enumerate(jobs)))
        for job, (cancelled, claimed) in zip(jobs, results, strict=True):
            assert (cancelled is None) != (claimed is None), job.id  # exactly one won
            winner = cancelled or claimed
            assert winner is not None and await canceller.get(job.id) == winner
        claimed_count = sum(claimed is not None for _, claimed in results)
        # Refunded exactly: two units for each cancelled job, none for a claimed one.
        assert await quotas.usage("user", ALICE.key, None) == ports.QuotaUsage(reserved=2 * claimed_count)
        for job, (cancelled, _) in zip(jobs, results, strict=True):
            assert await quotas.settle(job.id, commit=False) is (cancelled is None)  # refunded once only
        assert await quotas.usage("user", ALICE.key, None) == ports.QuotaUsage()
        assert await canceller.queued_total() == 0
        assert [await canceller.queued_rank(job) for job in jobs] == [0] * len(jobs)
    finally:
        await canceller_db.close()
        await scheduler_db.close()


async def test_a_cancel_asked_while_a_job_is_sent_rides_on_its_next_move(store_db: SqlDatabase) -> None:
    jobs = SqlJobStore(store_db)
    job = make_job(ALICE)
    await jobs.add(job)
    assert await jobs.request_cancel(job.id, "Alice") is None  # queued: cancelled outright, not marked
    assert await jobs.request_cancel("no-such-job", "Alice") is None
    await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, attempts=1)
    marked = await jobs.request_cancel(job.id, "Alice")
    assert marked is not None and (marked.state, marked.cancel_requested_by) == (JobState.SUBMITTING, "Alice")
    assert await jobs.get(job.id) == marked
    # Back in the queue (the upstream never got it): the move returns the mark, to act on.
    back = await jobs.transition(job.id, JobState.SUBMITTING, JobState.QUEUED)
    assert back is not None and back.cancel_requested_by == "Alice"

    sent = make_job(BOB)
    await jobs.add(sent)
    await jobs.transition(sent.id, JobState.QUEUED, JobState.SUBMITTING, attempts=1)
    assert await jobs.request_cancel(sent.id, "Bob") is not None
    running = await jobs.transition(sent.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="v-1")
    assert running is not None and running.cancel_requested_by == "Bob"
    assert await jobs.request_cancel(sent.id, "Bob again") is None  # no longer being sent
    await jobs.clear_cancel_request(sent.id)
    cleared = await jobs.get(sent.id)
    assert cleared is not None and cleared.cancel_requested_by is None and cleared.state is JobState.SUBMITTED


async def test_a_cancel_mark_is_never_lost_to_a_concurrent_move(database_url: str) -> None:
    # The mark (one connection) races the scheduler's move out of SUBMITTING (another):
    # either the mark lands first and the move returns it, or the mark is refused.
    marker_db, scheduler_db = await open_storage(database_url), await open_storage(database_url)
    try:
        marker, scheduler = SqlJobStore(marker_db), SqlJobStore(scheduler_db)
        jobs = [make_job(ALICE, created_at=START + timedelta(seconds=n)) for n in range(16)]
        for job in jobs:
            await scheduler.add(job)
            await scheduler.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, attempts=1)

        async def race(n: int, job: Job) -> tuple[Job | None, Job | None]:
            mark = marker.request_cancel(job.id, "Alice")
            move = scheduler.transition(job.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id=f"v-{n}")
            if n % 2:
                moved, marked = await asyncio.gather(move, mark)
            else:
                marked, moved = await asyncio.gather(mark, move)
            return marked, moved

        for marked, moved in await asyncio.gather(*(race(n, job) for n, job in enumerate(jobs))):
            assert moved is not None and moved.state is JobState.SUBMITTED
            assert (marked is not None) == (moved.cancel_requested_by == "Alice")
    finally:
        await marker_db.close()
        await scheduler_db.close()


CAROL = UserRef(ALICE.platform, "99", "Carol")
DAVE = UserRef(BOB.platform, "8", "Dave")


def ids(listed: list[Job]) -> list[str]:
    return [job.id for job in listed]


def job_in(user: UserRef, chat: ChatRef, seconds: float) -> Job:
    job = make_job(user, created_at=START + timedelta(seconds=seconds))
    return job.evolve(requester=Requester(user=user, chat=chat))


async def test_queue_places_are_the_fair_order_on_both_backends(store_db: SqlDatabase) -> None:
    """fair_place, fair_ahead and fair_slice against the fair order worked out by hand from its
    definition: round r holds each user's r-th queued job, the users never served first (by
    their oldest job, then key), then those served longest ago. Sums over queue_users' indexes
    (migration 0011) must tell the same places as a walk along the whole order would."""
    clock = FakeClock()
    jobs = SqlJobStore(store_db, clock=clock)
    rng = random.Random(14)
    users = [UserRef(ALICE.platform, f"u{number}", f"User {number}") for number in range(7)]
    served_at: dict[str, float] = {}
    for user in rng.sample(users, 3):  # served once each, one after the other
        sent = make_job(user, created_at=START - timedelta(hours=1))
        await jobs.add(sent)
        await jobs.transition(sent.id, JobState.QUEUED, JobState.SUBMITTING)
        served_at[user.key] = clock.advance(rng.randrange(1, 60)).timestamp()
        await jobs.transition(sent.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id=f"v-{user.user_id}")
    queued: dict[str, list[Job]] = {}
    for number in range(30):
        user = rng.choice(users[:-1])  # the last user has nothing queued
        job = make_job(user, created_at=START + timedelta(seconds=rng.randrange(600), microseconds=number))
        await jobs.add(job)
        queued.setdefault(user.key, []).append(job)
    for listed in queued.values():
        listed.sort(key=lambda job: (job.created_at, job.id))
    order = sorted(queued, key=lambda key: (key in served_at, served_at.get(key, 0), queued[key][0].created_at, key))
    fair = [queued[key][round_] for round_ in range(30) for key in order if round_ < len(queued[key])]

    assert [await jobs.fair_place(job) for job in fair] == list(range(1, len(fair) + 1))
    for key in order:
        ahead = [(fair.index(job) - rank) for rank, job in enumerate(queued[key])]
        assert [await jobs.fair_ahead(key, rank) for rank in range(1, len(queued[key]) + 1)] == ahead
    assert await jobs.fair_ahead(users[-1].key, 1) == 0  # nothing queued
    assert await jobs.fair_ahead(order[0], 0) == 0
    for offset, limit in ((0, 5), (3, 9), (11, 64), (len(fair) - 2, 5), (len(fair), 3)):
        assert ids(await jobs.fair_slice(offset=offset, limit=limit)) == ids(fair[offset : offset + limit])


async def test_queue_places_and_the_estimate_read_the_same_on_both_backends(store_db: SqlDatabase) -> None:
    clock = FakeClock()
    jobs = SqlJobStore(store_db, clock=clock)
    group_chat = ChatRef(ALICE.platform, "-100", is_private=False)  # a Telegram group: the chat is the group
    guild_channel = ChatRef(BOB.platform, "channel-9", group_id="guild-1")  # a Discord server's channel
    private = ChatRef(BOB.platform, "dm-7", is_private=True)

    async def run(user: UserRef, seconds_taken: float, finished: float, *, off_peak: bool = False) -> None:
        """A video made: sent `seconds_taken` before it finished, at START + `finished`."""
        job = make_job(user, created_at=START - timedelta(hours=1))
        job = job.evolve(request=job.request.with_changes(off_peak=off_peak))
        await jobs.add(job)
        await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING)
        done_at = START + timedelta(seconds=finished)
        await jobs.transition(
            job.id, JobState.SUBMITTING, JobState.SUBMITTED, submitted_at=done_at - timedelta(seconds=seconds_taken)
        )
        await jobs.transition(job.id, JobState.SUBMITTED, JobState.COMPLETED, finished_at=done_at)

    # Dave's history: what the estimate is made of (he has nothing queued).
    await run(DAVE, 30, finished=100)
    await run(DAVE, 90, finished=200)
    await run(DAVE, 500, finished=300, off_peak=True)  # waited for its hours: left out
    await run(DAVE, 60, finished=400)
    failed = make_job(DAVE)
    await jobs.add(failed)
    await jobs.transition(failed.id, JobState.QUEUED, JobState.FAILED, finished_at=START + timedelta(seconds=500))
    delivered = await jobs.in_states([JobState.COMPLETED])
    await jobs.transition(delivered[-1].id, JobState.COMPLETED, JobState.DELIVERED)  # still a video made
    assert await jobs.recent_run_seconds(10) == [60.0, 90.0, 30.0]
    assert await jobs.recent_run_seconds(2) == [60.0, 90.0]

    # Carol was served once (sent a job, still running): she comes after those never served.
    carol_running = job_in(CAROL, guild_channel, -10)
    await jobs.add(carol_running)
    await jobs.transition(carol_running.id, JobState.QUEUED, JobState.SUBMITTING)
    clock.advance(10)
    await jobs.transition(carol_running.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="v-carol")
    alice = [job_in(ALICE, group_chat, seconds) for seconds in (0, 1, 2)]
    bob = [job_in(BOB, private, 0.5), job_in(BOB, guild_channel, 1.5)]
    carol_queued = job_in(CAROL, guild_channel, 3)
    alice_cancelled = job_in(ALICE, group_chat, 0.2)
    for job in (*alice, *bob, carol_queued, alice_cancelled):
        await jobs.add(job)
    await jobs.transition(alice_cancelled.id, JobState.QUEUED, JobState.CANCELLED)

    assert ids(await jobs.unfinished(user_key=ALICE.key, limit=10)) == ids(alice)
    assert ids(await jobs.unfinished(user_key=ALICE.key, limit=2)) == ids(alice[:2])
    assert ids(await jobs.unfinished(user_key=BOB.key, limit=10)) == ids(bob)
    assert ids(await jobs.unfinished(group_key="telegram:-100", limit=10)) == ids(alice)
    assert ids(await jobs.unfinished(group_key="discord:guild-1", limit=10)) == ids(
        [carol_running, bob[1], carol_queued]
    )
    assert await jobs.unfinished(group_key="discord:dm-7", limit=10) == []  # a private chat is no group's
    with pytest.raises(ValueError, match="a user or a group"):
        await jobs.unfinished(user_key=ALICE.key, group_key="telegram:-100", limit=10)

    assert [await jobs.queued_rank(job) for job in (*alice, *bob, carol_queued)] == [1, 2, 3, 1, 2, 1]
    assert await jobs.queued_rank(carol_running) == await jobs.queued_rank(alice_cancelled) == 0
    # The fair order: Alice (never served, oldest), Bob (never served), Carol (served).
    # Before Alice's 2nd job go one each of Bob's and Carol's; before Bob's 1st, Alice's 1st.
    assert [await jobs.fair_ahead(ALICE.key, rank) for rank in (1, 2, 3)] == [0, 2, 3]
    assert [await jobs.fair_ahead(BOB.key, rank) for rank in (1, 2)] == [1, 3]
    assert await jobs.fair_ahead(CAROL.key, 1) == 2
    assert await jobs.queued_total() == 6


# Migration 0008 undone, as a database an older bot left: its columns and indexes gone.
_BEFORE_0008 = (
    "DROP INDEX jobs_unfinished_by_user",
    "DROP INDEX jobs_unfinished_by_group",
    "DROP INDEX jobs_completed_by_finish",
    "ALTER TABLE jobs DROP COLUMN group_key",
    "ALTER TABLE jobs DROP COLUMN cancel_requested_by",
    "DELETE FROM schema_migrations WHERE version = 8",
)


async def test_migration_0008_fills_in_each_older_jobs_group(database_url: str) -> None:
    telegram_group = job_in(ALICE, ChatRef(ALICE.platform, "-100"), 0)
    discord_channel = job_in(BOB, ChatRef(BOB.platform, "channel-9", thread_id="t-1", group_id="guild-1"), 1)
    private = job_in(CAROL, ChatRef(CAROL.platform, "dm-99", is_private=True), 2)
    older = (telegram_group, discord_channel, private)
    async with await open_storage(database_url) as db:
        for statement in _BEFORE_0008:
            await db.write(statement)
        for job in older:  # written as the older bot's store wrote them
            columns = _columns({field.name: getattr(job, field.name) for field in dataclasses.fields(Job)})
            del columns["group_key"], columns["cancel_requested_by"]
            await db.write(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                list(columns.values()),
            )
    async with await open_storage(database_url) as db:  # migrates again: 0008 only
        jobs = SqlJobStore(db)
        for job in older:
            row = await db.fetch_one("SELECT group_key FROM jobs WHERE id = ?", (job.id,))
            assert row is not None and row["group_key"] == job.chat.group_key, job.chat
            stored = await jobs.get(job.id)
            assert stored is not None and stored.cancel_requested_by is None
        assert [telegram_group.chat.group_key, discord_channel.chat.group_key] == ["telegram:-100", "discord:guild-1"]
        assert ids(await jobs.unfinished(group_key="discord:guild-1", limit=5)) == [discord_channel.id]
        assert ids(await jobs.unfinished(user_key=CAROL.key, limit=5)) == [private.id]


class RecordingReads:
    """A database that notes the queries a store reads with (and then runs them)."""

    def __init__(self, db: SqlDatabase) -> None:
        self.dialect = db.dialect
        self.read: list[tuple[str, Sequence[Any]]] = []
        self._db = db

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.read.append((sql, params))
        return await self._db.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.read.append((sql, params))
        return await self._db.fetch_all(sql, params)


async def test_postgresql_serves_the_job_control_reads_by_their_indexes(postgres_server: PostgresServer) -> None:
    # SQLite's plans are checked in tests/test_storage.py; here PostgreSQL's, on a history of
    # finished jobs: each read uses the partial index migration 0008 made for it, which it
    # can only when its condition matches the index's.
    async with await open_storage(postgres_server.database()) as db:
        jobs = SqlJobStore(db)
        template = make_job(DAVE)
        await jobs.add(template)
        columns = list(_columns({field.name: getattr(template, field.name) for field in dataclasses.fields(Job)}))
        # 5,000 videos made and 2,000 jobs queued, of 500 other users, all in one group.
        for prefix, state, count in (("h", "delivered", 5000), ("q", "queued", 2000)):
            made = {"id": f"'{prefix}' || n", "user_key": "'u' || (n % 500)", "state": f"'{state}'"}
            copied = ", ".join(made.get(name, name) for name in columns)
            await db.write(
                f"INSERT INTO jobs ({', '.join(columns)}) SELECT {copied} FROM jobs, generate_series(1, ?) AS n"
                " WHERE id = ?",
                (count, template.id),
            )
        await db.write("UPDATE jobs SET outcome = 'completed' WHERE state = 'delivered'")
        job = make_job(ALICE, created_at=START + timedelta(days=1))  # the others queued before her
        await jobs.add(job)
        await db.write("ANALYZE jobs")
        recording = RecordingReads(db)
        reads = SqlJobStore(cast(SqlDatabase, recording))
        await reads.unfinished(user_key=ALICE.key, limit=15)
        await reads.unfinished(group_key="telegram:chat-1", limit=15)
        await reads.queued_rank(job)
        await reads.recent_run_seconds(20)
        # The indexes each read may use: a user's queued jobs are among their unfinished ones.
        expected = [
            {"jobs_unfinished_by_user"},
            {"jobs_unfinished_by_group"},
            {"jobs_queued_by_user", "jobs_unfinished_by_user"},
            {"jobs_completed_by_finish"},
        ]
        assert len(recording.read) == len(expected)

        for (sql, params), indexes in zip(recording.read, expected, strict=True):

            async def explain(transaction: Any, sql: str = sql, params: Sequence[Any] = params) -> str:
                await transaction.execute("SET LOCAL enable_seqscan = off")
                return "\n".join(row[0] for row in await transaction.fetch_all(f"EXPLAIN {sql}", params))

            plan = await db.transaction(explain)
            # Read by one of them (an index scan, or a bitmap scan of it); queued_rank's EXISTS
            # looks its job up by its key.
            scans = set(re.findall(r"Index (?:Only )?Scan(?: Backward)? (?:using|on) (\w+)", plan)) - {"jobs_pkey"}
            assert "Seq Scan" not in plan and scans and scans <= indexes, (sql, plan)
