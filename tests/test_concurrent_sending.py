"""A scheduler pass sends the jobs it picks concurrently, against a sandbox whose creates are slow.

useapi.net answers a create in a second or more; one sender sending one job at a time
would start a burst at about a job per round trip, however many slots are free.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core

CREATE_DELAY = 0.5  # seconds each create takes to be answered


def create(prompt: str):
    return parse_command(CreateSingle, prompt=prompt)


def creates(sandbox) -> int:
    return sandbox.count("POST", "/v2/pixverse/videos/create")


async def states(core, jobs) -> list[JobState]:
    return [(await core.jobs.get(job.id)).state for job in jobs]


async def all_settled(core, jobs) -> bool:
    return all(state is JobState.DELIVERED for state in await states(core, jobs))


def videos_per_job(sandbox) -> Counter:
    return Counter(video.reply_ref for video in sandbox.videos.values())


async def test_a_burst_from_many_users_is_sent_in_about_one_create_round_trip_not_one_per_job(tmp_path):
    config = SandboxConfig(
        generation_seconds=30, create_delay=CREATE_DELAY, accounts=[SandboxAccount("big@sandbox.local", max_jobs=10)]
    )
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i}"), create(f"fox {i}")) for i in range(10)]
            started = time.monotonic()
            sent = await core.scheduler.submit_ready()
            elapsed = time.monotonic() - started
            assert await states(core, jobs) == [JobState.SUBMITTED] * 10
    assert sent == 10
    # One at a time this takes 10 × 0.5 s = 5 s at the least; together, about one create.
    assert elapsed < 10 * CREATE_DELAY / 2, f"10 creates of {CREATE_DELAY} s took {elapsed:.2f} s"
    assert sandbox.slot_demand_peak["big@sandbox.local"] <= 10


async def test_no_account_is_sent_more_jobs_than_its_free_slots_while_creates_are_in_flight(tmp_path):
    accounts = [SandboxAccount("a@sandbox.local", max_jobs=3), SandboxAccount("b@sandbox.local", max_jobs=2)]
    config = SandboxConfig(generation_seconds=0.5, create_delay=0.2, accounts=accounts)
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=5)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i % 6}"), create(f"fox {i}")) for i in range(12)]
            assert await core.scheduler.submit_ready() == 5  # the free slots, no more
            assert creates(sandbox) == 5  # and no create refused with a 429
            assert Counter(await states(core, jobs))[JobState.SUBMITTED] == 5
            await core.start_loops()
            await eventually(lambda: all_settled(core, jobs), timeout=30)
    # Running jobs plus creates being answered, per account, never above its maxJobs.
    assert sandbox.slot_demand_peak == {"a@sandbox.local": 3, "b@sandbox.local": 2}
    assert creates(sandbox) == 12  # each job sent once: no 429 on the way
    assert set(videos_per_job(sandbox).values()) == {1}


async def test_the_per_user_cap_counts_jobs_whose_create_is_still_on_its_way(tmp_path):
    config = SandboxConfig(
        generation_seconds=30, create_delay=CREATE_DELAY, accounts=[SandboxAccount("big@sandbox.local", max_jobs=20)]
    )
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            greedy = [await core.service.create_single(requester("greedy"), create(f"fox {i}")) for i in range(6)]
            others = [await core.service.create_single(requester(f"user{i}"), create(f"owl {i}")) for i in range(3)]
            assert await core.scheduler.submit_ready() == 5
            assert await states(core, greedy) == [JobState.SUBMITTED] * 2 + [JobState.QUEUED] * 4
            assert await states(core, others) == [JobState.SUBMITTED] * 3
    assert creates(sandbox) == 5


async def test_a_429_on_one_create_loses_and_doubles_nothing_and_the_others_still_go(tmp_path):
    # "tight" reports 3 free slots, but PixVerse runs one job at a time on it: of the creates
    # sent to it together, one goes and the others come back 429.
    tight = SandboxAccount("tight@sandbox.local", max_jobs=3, concurrency_limit=1)
    roomy = SandboxAccount("roomy@sandbox.local", max_jobs=3)
    config = SandboxConfig(generation_seconds=0.5, create_delay=0.2, accounts=[tight, roomy])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=5, busy_retry_initial=0.5)
        async with running_core(settings, notifier, start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i}"), create(f"fox {i}")) for i in range(6)]
            sent = await core.scheduler.submit_ready()
            after_pass = [await core.jobs.get(job.id) for job in jobs]
            # Every job either went (once) or is back in the queue, free to go at once.
            assert all(
                job.state is JobState.SUBMITTED or (job.state is JobState.QUEUED and job.not_before is None)
                for job in after_pass
            )
            went = [job for job in after_pass if job.state is JobState.SUBMITTED]
            assert len(went) == sent == 4  # roomy's three, and one on tight
            assert Counter(job.account for job in went) == {"roomy@sandbox.local": 3, "tight@sandbox.local": 1}
            assert core.accounts.pick() is None  # tight is backing off; roomy is full
            await core.start_loops()
            await eventually(lambda: all_settled(core, jobs), timeout=30)
            done = [await core.jobs.get(job.id) for job in jobs]
    assert all(job.outcome is JobState.COMPLETED for job in done)
    assert set(videos_per_job(sandbox).values()) == {1}  # no job ran twice
    assert notifier.failures == []


async def test_a_pass_cancelled_while_creates_are_on_their_way_leaves_them_for_recover(tmp_path):
    config = SandboxConfig(
        generation_seconds=30, create_delay=1.0, accounts=[SandboxAccount("big@sandbox.local", max_jobs=10)]
    )
    async with running_sandbox(config) as sandbox:
        # The lookup waits longer than a create takes to land upstream (as 30 s does for a real one).
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2, unknown_outcome_grace=2.5)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i}"), create(f"fox {i}")) for i in range(4)]
            sending = asyncio.create_task(core.scheduler.submit_ready())
            await eventually(lambda: sandbox.creates_in_flight.get("big@sandbox.local") == 4)
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            # No send outlives its pass, and each job is left as a crash would leave it.
            assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("send ")]
            assert await states(core, jobs) == [JobState.SUBMITTING] * 4

            async def recovered() -> list[JobState] | None:
                await core.scheduler.recover()
                now = await states(core, jobs)
                return None if JobState.SUBMITTING in now else now

            settled = await eventually(recovered, timeout=10)
    # Looked up by replyRef: running if the create got through before the cancel, else
    # back in the queue; never sent again.
    made = videos_per_job(sandbox)
    for job, state in zip(jobs, settled, strict=True):
        assert state is (JobState.SUBMITTED if made[job.id] else JobState.QUEUED)
    assert creates(sandbox) == 4
    assert set(made.values()) <= {1}


async def test_a_send_that_raises_is_reported_by_the_pass_and_the_others_still_finish(tmp_path, monkeypatch):
    config = SandboxConfig(
        generation_seconds=30, create_delay=0.2, accounts=[SandboxAccount("big@sandbox.local", max_jobs=10)]
    )
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2, unknown_outcome_grace=0.5)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i}"), create(f"fox {i}")) for i in range(4)]
            broken = jobs[1].id
            transition = core.jobs.transition

            async def database_fails_once(job_id, from_state, to_state, **changes):
                # The database fails to record one job's video id (its create went through).
                if job_id == broken and to_state is JobState.SUBMITTED:
                    raise OSError("disk I/O error")
                return await transition(job_id, from_state, to_state, **changes)

            monkeypatch.setattr(core.jobs, "transition", database_fails_once)
            with pytest.raises(OSError, match="disk I/O error"):
                await core.scheduler.submit_ready()
            monkeypatch.undo()
            after = await states(core, jobs)
            assert after == [JobState.SUBMITTED, JobState.SUBMITTING, JobState.SUBMITTED, JobState.SUBMITTED]

            async def recovered() -> bool:
                await core.scheduler.recover()
                return await states(core, jobs) == [JobState.SUBMITTED] * 4

            await eventually(recovered, timeout=10)  # looked up by its replyRef, as after a crash
    assert creates(sandbox) == 4
    assert set(videos_per_job(sandbox).values()) == {1}


async def test_a_poll_reads_the_accounts_listings_at_once_not_one_after_another(tmp_path):
    """With 40 accounts, a listing round trip each one after another outlasts the poll
    interval; read together, a pass costs about one listing (`ACCOUNTS_POLLED_AT_ONCE` at a time)."""
    listing = 0.4
    accounts = [SandboxAccount(f"a{i}@sandbox.local", max_jobs=1) for i in range(8)]
    config = SandboxConfig(generation_seconds=30, listing_delay=listing, accounts=accounts)
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            jobs = [await core.service.create_single(requester(f"user{i}"), create(f"fox {i}")) for i in range(8)]
            assert await core.scheduler.submit_ready() == 8
            assert {video.email for video in sandbox.videos.values()} == {account.email for account in accounts}
            listings_before = sandbox.count("GET", "/v2/pixverse/videos")
            started = time.monotonic()
            await core.tracker.poll_once()
            elapsed = time.monotonic() - started
            assert sandbox.count("GET", "/v2/pixverse/videos") - listings_before >= 8  # every account was read
            assert set(await states(core, jobs)) <= {JobState.SUBMITTED, JobState.GENERATING}
    # One after another: 8 × 0.4 s = 3.2 s at the least.
    assert elapsed < 8 * listing / 2, f"8 listings of {listing} s took {elapsed:.2f} s"
