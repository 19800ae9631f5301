"""`pixverse-bot migrate-db`: a SQLite deployment's state moves to PostgreSQL, and the bot
runs on it with the same jobs, quotas, settings and pictures."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.quota import QuotaExceeded
from storage import SqlBlobStore, SqlDatabase, SqlGovernanceStore, SqlJobStore, SqlQuotaStore, open_storage
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core
from tests.postgres_server import PostgresServer
from tests.test_storage import BOB, START, admit_animate, make_job

GROUP = "console:g1"
GROUP_OF_ALICE = "console:c1"  # her chat's (tests.harness.requester)


async def migrate_db(source: Path, target: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "migrate-db",
        "--from",
        str(source),
        "--to",
        target,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parent.parent,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def state(db: SqlDatabase, user_key: str, job_ids: list[str], blob_id: str) -> dict[str, object]:
    """What an operator would check after the move, read through the stores."""
    jobs, governance = SqlJobStore(db), SqlGovernanceStore(db)
    found = [await jobs.get(job_id) for job_id in job_ids]
    return {
        "jobs": found,
        "places": [await jobs.fair_place(job) for job in found if job is not None],
        # Read by the group_key column (migration 0008), not by the requester's JSON.
        "group's unfinished": [job.id for job in await jobs.unfinished(group_key=GROUP_OF_ALICE, limit=10)],
        "usage": await SqlQuotaStore(db).usage("user", user_key, None),
        "override": await SqlQuotaStore(db).get_override("user", user_key),
        "settings": await governance.all_group_settings(),
        "filters": await governance.filters(GROUP),
        "strikes": await governance.count_strikes(user_key, GROUP, START - timedelta(days=1)),
        "picture": await SqlBlobStore(db).get(blob_id),
        "secret": await db.get_meta("webhook_secret"),
        # Read by the off_peak column (migration 0009), not by the request's JSON.
        "off-peak": [job.id for job in await jobs.queued_off_peak(now=START + timedelta(days=1), limit=10)],
        "queue length": await jobs.queued_total(),
    }


async def test_a_sqlite_deployment_moves_to_postgresql_and_the_bot_runs_on_it(
    tmp_path: Path, sandbox: object, postgres_server: PostgresServer
) -> None:
    settings = fast_settings(tmp_path, sandbox, quota_per_user="3")
    alice = requester("alice")
    command = parse_command(CreateSingle, prompt="a fox")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        # Two jobs queued (in flight: their quota units reserved), nothing sent yet.
        queued = [await core.service.create_single(alice, command) for _ in range(2)]
        db = core.jobs._db  # type: ignore[attr-defined]
        picture = await admit_animate(db, b"\x89PNG picture", state=JobState.FAILED)
        governance = SqlGovernanceStore(db)
        await governance.save_group_settings(GROUP, {"filter_mode": "strict"})
        await governance.add_filter(GROUP, "spam", "admin")
        await governance.add_strike(alice.user.key, GROUP, START, "spam")
        await SqlQuotaStore(db).set_override("user", "someone-else", 9)
        # Being sent when the bot stopped, with a cancel asked for meanwhile (/cancel).
        being_sent = await admit_animate(db, b"\x89PNG", state=JobState.SUBMITTING, user=alice.user)
        assert await SqlJobStore(db).request_cancel(being_sent.id, "Alice") is not None
        # Queued for off-peak hours, by someone else.
        off_peak = make_job(BOB)
        off_peak = off_peak.evolve(request=off_peak.request.with_changes(off_peak=True))
        await SqlJobStore(db).add(off_peak)
        job_ids = [job.id for job in queued] + [picture.id, being_sent.id, off_peak.id]
        before = await state(db, alice.user.key, job_ids, picture.request.image_blob_id or "")
    assert before["usage"].reserved == 2  # type: ignore[attr-defined]
    assert before["group's unfinished"] == [job.id for job in queued]
    assert before["off-peak"] == [off_peak.id]
    assert before["queue length"] == 3

    url = postgres_server.database()
    code, out = await migrate_db(Path(settings.bot_database), url)
    assert code == 0, out
    assert "jobs: 5 rows" in out and "quota_ledger: 4 rows" in out
    async with await open_storage(url) as copied:
        assert await state(copied, alice.user.key, job_ids, picture.request.image_blob_id or "") == before

    # A second copy into the same database is refused, and writes nothing.
    code, out = await migrate_db(Path(settings.bot_database), url)
    assert code == 1 and "empty database only" in out, out

    # The bot on PostgreSQL: the queued jobs are made and delivered, the quota carried over.
    on_postgres = settings.model_copy(update={"bot_database": url})
    async with running_core(on_postgres, RecordingNotifier()) as core:
        await core.service.create_single(alice, command)  # the third of three
        with pytest.raises(QuotaExceeded):
            await core.service.create_single(alice, command)

        async def all_delivered() -> bool:
            copied_jobs = [await core.jobs.get(job_id) for job_id in job_ids[:2]]
            return all(job is not None and job.state is JobState.DELIVERED for job in copied_jobs)

        await eventually(all_delivered, timeout=30, what="the copied jobs delivered on PostgreSQL")

        async def cancelled_as_asked() -> bool:
            job = await core.jobs.get(being_sent.id)
            return job is not None and job.outcome is JobState.CANCELLED and job.cancel_requested_by == "Alice"

        # Its cancel, asked before the move, is honoured on PostgreSQL (found not sent: cancelled).
        await eventually(cancelled_as_asked, timeout=30, what="the marked job cancelled on PostgreSQL")


async def test_migrate_db_refuses_a_target_that_is_not_postgresql(tmp_path: Path) -> None:
    code, out = await migrate_db(tmp_path / "bot.sqlite3", str(tmp_path / "other.sqlite3"))
    assert code == 1 and "--to must be a postgresql:// URL" in out
