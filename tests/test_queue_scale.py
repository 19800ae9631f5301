"""A long queue: a scheduler pass reads what it sends and reports, not the whole queue."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

import storage.jobs
from bot.domain import GenerationRequest, Job, JobKind, JobState, utcnow
from bot.ports import ProgressStage
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from storage import open_database
from tests.harness import RecordingNotifier, fast_settings, requester, running_core

QUEUED, USERS = 100_000, 10_000
SLOTS = 4


async def seed_queue(path: Path, count: int, users: int) -> None:
    """`count` queued jobs of `users` users, oldest first, written in one transaction.

    Rows are made by the job store's own column mapping (one per user, then copied with
    a new id and time), so they are what `SqlJobStore.add` writes — a hundred thousand
    `add`s, one commit each, would take minutes.
    """
    await (await open_database(path)).close()  # the schema, by the product's migrations
    start = utcnow() - timedelta(minutes=30)
    prompt = "a fox in the snow"
    templates = []
    for user in range(users):
        job = Job(
            id="template",
            requester=requester(f"user{user}", f"chat{user}"),
            request=GenerationRequest(JobKind.CREATE, user_prompt=prompt, prompt=prompt, seed=user + 1),
        )
        templates.append(storage.jobs._columns({f.name: getattr(job, f.name) for f in fields(Job)}))
    columns = list(templates[0])
    rows = []
    for index in range(count):
        row = dict(templates[index % users])
        created = storage.jobs.to_sql_time(start + timedelta(microseconds=10 * index))
        row.update(id=f"q{index:08d}", created_at=created, updated_at=created)
        rows.append(tuple(row[c] for c in columns))
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
            )
    finally:
        connection.close()


class LongestStall:
    """The longest time the event loop went without running a heartbeat task (a blocked step)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> LongestStall:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def jobs_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many `Job` objects the store has built from rows (counted, then built as usual)."""
    built = [0]
    real = storage.jobs._job

    def counting(row: sqlite3.Row) -> Job:
        built[0] += 1
        return real(row)

    monkeypatch.setattr(storage.jobs, "_job", counting)
    return built


async def test_a_pass_over_100000_queued_jobs_reads_what_it_sends_and_never_stalls_the_loop(
    tmp_path: Path, jobs_built: list[int]
) -> None:
    await seed_queue(tmp_path / "bot.sqlite3", QUEUED, USERS)
    config = SandboxConfig(generation_seconds=30, accounts=[SandboxAccount("solo@sandbox.local", max_jobs=SLOTS)])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=2)
        async with running_core(settings, notifier, start=False) as core:
            with LongestStall() as stall:
                started = time.perf_counter()
                sent = await asyncio.wait_for(core.scheduler.submit_ready(), timeout=60)
                took = time.perf_counter() - started
            built, jobs_built[0] = jobs_built[0], 0
            running = await core.jobs.in_states([JobState.SUBMITTED])
            # A second pass finds the account full: it reads next to nothing.
            assert await core.scheduler.submit_ready() == 0
            second = jobs_built[0]
    assert sent == SLOTS
    # The fair order: one job each for the users whose jobs are oldest (never served yet).
    assert sorted(job.id for job in running) == [f"q{index:08d}" for index in range(SLOTS)]
    # Sent, plus the front of the queue whose places changed: hundreds of jobs, not 100,000.
    assert built < 1_000, built
    assert second < 100, second
    # No step of the pass holds the loop (the goal is 20 ms; generous here, the machine is shared).
    assert stall.longest < 0.1, f"the event loop was blocked for {stall.longest * 1000:.0f} ms"
    assert took < 10, took


async def test_places_deep_in_a_long_queue_are_told_once_the_jobs_ahead_have_moved_them(tmp_path: Path) -> None:
    await seed_queue(tmp_path / "bot.sqlite3", 2_000, 2_000)
    config = SandboxConfig(generation_seconds=60, accounts=[SandboxAccount("big@sandbox.local", max_jobs=400)])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox), notifier, start=False) as core:
            assert await core.scheduler.submit_ready() == 400
            await core.progress.idle()
            told = {job_id: p.queue_position for job_id, p in notifier.progress_events if p.queue_position}
            # Nothing left the queue since: the next pass tells nobody anything.
            notifier.progress_events.clear()
            assert await core.scheduler.submit_ready() == 0
            await core.progress.idle()
            assert notifier.progress_events == []
    # The 400 oldest went; everyone behind them moved up by 400 and is told so, to the back.
    assert told["q00000400"] == 1
    assert told["q00001000"] == 601
    assert told["q00001999"] == 1600
    assert len(told) == 1600


async def test_when_every_account_is_paused_a_long_queue_is_told_once_each_a_batch_per_pass(tmp_path: Path) -> None:
    await seed_queue(tmp_path / "bot.sqlite3", 600, 600)
    config = SandboxConfig(accounts=[SandboxAccount("held@sandbox.local", needs_attention=True)])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox), notifier, start=False) as core:
            told_after = []
            for _ in range(4):
                await core.scheduler.submit_ready()  # the first pass meets the 596 and pauses the account
                await core.progress.idle()
                told_after.append(sum(p.stage is ProgressStage.WAITING for _, p in notifier.progress_events))
    waiting = [(job_id, p.queue_position) for job_id, p in notifier.progress_events if p.stage is ProgressStage.WAITING]
    assert told_after == [256, 512, 600, 600]
    assert sorted(waiting) == [(f"q{index:08d}", index + 1) for index in range(600)]
