"""The bulk seeding of the storage benchmarks (benchmarks/seeding.py) writes the state a running
bot would be in: the jobs it seeds as running were sent recently, by videos the upstream knows."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.seeding import ACCOUNTS, Population, running_numbers, seed, seed_cached
from benchmarks.storage_p99 import _start_running_videos
from bot.domain import RUNNING_STATES, JobState, utcnow
from bot.sandbox import Sandbox
from bot.settings import load_settings
from storage import SqlJobStore, open_database

POPULATION = Population(users=20, delivered=50, running=10, queued=40)


async def test_seeded_running_jobs_are_live_and_known_upstream(tmp_path: Path) -> None:
    """They were all past the job timeout (sent when they were made, 30 min before the
    seeding), so the tracker's first pass gave every one up; and their video ids named no
    video of the sandbox, so each tracker pass looked each up alone, in vain."""
    path = tmp_path / "bot.sqlite3"
    await (await open_database(path)).close()
    seed(path, POPULATION, rng=random.Random(1))
    sandbox = Sandbox()
    _start_running_videos(sandbox, POPULATION)
    timeout = timedelta(seconds=load_settings(_env_file=None).job_timeout)
    async with await open_database(path) as db:
        running = await SqlJobStore(db).in_states(RUNNING_STATES)
        queued = await SqlJobStore(db).in_states([JobState.QUEUED])
    try:
        assert len(running) == POPULATION.running and len(queued) == POPULATION.queued
        now = utcnow()
        for job in running:
            assert job.submitted_at is not None and now - job.submitted_at < timeout / 2, job
            assert job.account == ACCOUNTS[0] and job.video_id is not None
            video = sandbox.find(job.video_id)
            assert video is not None and not video.phase.over, job.video_id
        assert sorted(int(job.id) for job in running) == list(running_numbers(POPULATION))
    finally:
        await sandbox.close()


async def test_a_kept_seeded_database_is_copied_with_its_running_jobs_sent_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_SEED_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    for path in (first, second):
        await (await open_database(path)).close()
    assert "seeded in" in seed_cached(first, POPULATION)
    assert "copied from" in seed_cached(second, POPULATION)
    async with await open_database(first) as db:
        made = {job.id: job for job in await SqlJobStore(db).in_states(list(JobState))}
    async with await open_database(second) as db:
        copied = {job.id: job for job in await SqlJobStore(db).in_states(list(JobState))}
    assert made.keys() == copied.keys()
    for job_id, job in copied.items():
        original = made[job_id]
        if job.state is JobState.GENERATING:
            assert job.submitted_at is not None and original.submitted_at is not None
            assert job.submitted_at >= original.submitted_at  # sent again, as of the copy
        else:
            assert job == original
