"""The storage contract on both backends (SQLite and PostgreSQL, `database_url`): the quota
race across connections and processes, the ledger, governance records, retention, and
migrations started by two processes at once. (tests/test_storage.py runs the job and
blob store tests on both backends too.)"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bot import ports
from bot.domain import ImageRef, JobKind, JobState
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
from tests.test_storage import ALICE, BOB, START, make_job

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
