"""Admitting a job: quota, image and job stored together or not at all; images kept only while needed."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from bot.blobs import ImageStorageFull
from bot.commands import Animate, CreateSingle, parse_command
from bot.domain import JobState, utcnow
from bot.moderation.service import PromptRejected
from bot.quota import QuotaExceeded
from bot.sandbox import SandboxConfig, running_sandbox
from bot.settings import SettingsError, load_settings
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core, tiny_png


@pytest.fixture
async def sandbox():
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sb:
        yield sb


async def stored_images(core) -> tuple[int, int]:
    """(how many images, how many bytes) the database holds, read straight from its table."""
    row = await core.jobs._db.fetch_one("SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM blobs")
    return int(row[0]), int(row[1])


async def ledger(core) -> dict[str, str]:
    """Every quota reservation's state, by job id."""
    rows = await core.jobs._db.fetch_all("SELECT job_id, state FROM quota_ledger")
    return {row["job_id"]: row["state"] for row in rows}


async def delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job is not None and job.state is JobState.DELIVERED else None


def big_png(size: int) -> bytes:
    """A PNG (by its signature) of about `size` bytes."""
    image = tiny_png()
    return image + b"\x00" * max(0, size - len(image))


async def test_animate_over_quota_stores_no_image(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="1", max_image_bytes=6_000_000)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
        for _ in range(6):
            with pytest.raises(QuotaExceeded):
                await core.service.animate(requester(), parse_command(Animate, prompt="wave"), big_png(5_000_000))
        assert await stored_images(core) == (0, 0)
        assert len(await core.jobs.in_states(list(JobState))) == 1


async def test_animate_with_a_blocked_caption_stores_no_image(tmp_path, sandbox):
    async with running_core(fast_settings(tmp_path, sandbox), RecordingNotifier(), start=False) as core:
        with pytest.raises(PromptRejected):
            await core.service.animate(requester(), parse_command(Animate, prompt="a nude statue"), tiny_png())
        assert await stored_images(core) == (0, 0)
        assert await core.jobs.in_states(list(JobState)) == []


async def test_an_image_whose_job_times_out_in_the_queue_is_deleted(tmp_path, sandbox):
    notifier = RecordingNotifier()
    settings = fast_settings(tmp_path, sandbox, queue_timeout=0.2)
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.animate(requester(), parse_command(Animate, prompt="wave"), tiny_png())
        assert await stored_images(core) == (1, len(tiny_png()))
        # Let it wait past QUEUE_TIMEOUT before the scheduler first looks at the queue.
        await eventually(lambda: utcnow() - job.created_at > timedelta(seconds=0.3), what="queue time-out passed")
        await core.start_loops()
        done = await eventually(lambda: delivered(core, job.id), what="time-out delivered")
        assert done.outcome is JobState.FAILED and "Timed out" in (done.failure or "")
        assert notifier.outcome_counts()[job.id] == 1
        assert sandbox.count("POST", "/v2/pixverse/files") == 0
        assert await stored_images(core) == (0, 0)


async def test_an_image_is_deleted_once_uploaded(tmp_path, sandbox):
    async with running_core(fast_settings(tmp_path, sandbox), RecordingNotifier()) as core:
        job = await core.service.animate(requester(), parse_command(Animate, prompt="wave"), tiny_png())
        done = await eventually(lambda: delivered(core, job.id))
        assert done.outcome is JobState.COMPLETED and done.request.image_path
        assert sandbox.count("POST", "/v2/pixverse/files") == 1
        assert await stored_images(core) == (0, 0)


async def test_the_start_sweep_deletes_images_no_waiting_job_needs(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        waiting = await core.service.animate(requester(), parse_command(Animate, prompt="wave"), tiny_png())
        # Left behind by a crash (or an older version): an image no job names.
        await core.jobs._db.write(
            "INSERT INTO blobs (id, content_type, data, created_at) VALUES ('orphan', 'image/png', ?, '')",
            (big_png(1000),),
        )
    async with running_core(settings, RecordingNotifier()) as core:
        assert await core.blobs.get("orphan") is None
        # The queued job's image was kept: the job uploads it and completes.
        done = await eventually(lambda: delivered(core, waiting.id))
        assert done.outcome is JobState.COMPLETED
        assert await stored_images(core) == (0, 0)


async def test_a_full_image_store_refuses_for_now_and_charges_nothing(tmp_path, sandbox):
    image = big_png(4000)
    settings = fast_settings(
        tmp_path, sandbox, quota_per_user="5", max_image_bytes=5000, max_stored_image_bytes=2 * len(image) + 100
    )
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        for _ in range(2):
            await core.service.animate(requester(), parse_command(Animate, prompt="wave"), image)
        with pytest.raises(ImageStorageFull) as refused:
            await core.service.animate(requester(), parse_command(Animate, prompt="wave"), image)
        message = str(refused.value)
        assert "temporary" in message and "nothing was charged" in message and "/animate" in message
        status, _ = await core.quotas.status(requester().user)
        assert (status.used, status.reserved) == (0, 2)
        assert len(await core.jobs.in_states(list(JobState))) == 2
        assert await stored_images(core) == (2, 2 * len(image))
        # A job without an image still fits: the cap is on images only.
        await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))


async def test_concurrent_images_cannot_both_take_the_last_room(tmp_path, sandbox):
    image = big_png(4000)
    settings = fast_settings(tmp_path, sandbox, max_image_bytes=5000, max_stored_image_bytes=2 * len(image) + 100)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        results = await asyncio.gather(
            *(core.service.animate(requester(f"u{i}"), parse_command(Animate), image) for i in range(10)),
            return_exceptions=True,
        )
        assert sum(isinstance(result, ImageStorageFull) for result in results) == 8
        assert await stored_images(core) == (2, 2 * len(image))
        assert await ledger(core) == {job.id: "reserved" for job in await core.jobs.in_states([JobState.QUEUED])}


def test_the_image_store_must_hold_at_least_one_largest_image(tmp_path):
    with pytest.raises(SettingsError, match="MAX_STORED_IMAGE_BYTES: .* at least MAX_IMAGE_BYTES \\(1000\\)"):
        load_settings(
            bot_database=tmp_path / "x.sqlite3", max_image_bytes=1000, max_stored_image_bytes=999, _env_file=None
        )


async def test_a_request_cancelled_while_its_job_is_being_written_is_charged_like_any_other(tmp_path, sandbox):
    """A caller cancelled while the unit that writes its job is queued (aiohttp's shutdown
    timeout, teardown) must not leave a job whose quota was refunded: a free video."""
    settings = fast_settings(tmp_path, sandbox, quota_per_user="5")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        db = core.jobs._db
        inserting, release = threading.Event(), threading.Event()

        def hold_the_job_insert(statement: str) -> None:
            # Runs on the database thread as each statement starts: hold the job's INSERT
            # there until the test has cancelled the caller.
            if statement.lstrip().startswith("INSERT INTO jobs"):
                inserting.set()
                release.wait(timeout=10)

        await db.run(lambda connection: connection.set_trace_callback(hold_the_job_insert))
        task = asyncio.create_task(core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox")))
        try:
            await eventually(inserting.is_set, what="the job's INSERT started")
            task.cancel()
        finally:
            release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await db.run(lambda connection: connection.set_trace_callback(None))

        [job] = await core.jobs.in_states(list(JobState))
        assert await ledger(core) == {job.id: "reserved"}
        # The job runs, and its video is charged.
        await core.start_loops()
        await eventually(lambda: delivered(core, job.id))
        assert await ledger(core) == {job.id: "committed"}
