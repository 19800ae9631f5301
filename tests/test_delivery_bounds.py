"""Delivering finished videos within bounds: so many at once, retries that back off and
end with a plain message, and one job's trouble never holding up the others."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
from datetime import timedelta

from bot import delivery
from bot.commands import CreateSingle, parse_command
from bot.domain import JobState, Platform
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core


def in_state(core, jobs, state):
    async def check():
        current = [await core.jobs.get(job.id) for job in jobs]
        return current if all(job.state is state for job in current) else None

    return check


async def make_jobs(core, count):
    return [
        await core.service.create_single(requester(f"u{i}"), parse_command(CreateSingle, prompt=f"a fox, take {i}"))
        for i in range(count)
    ]


async def test_no_more_videos_are_fetched_at_once_than_the_setting_allows(tmp_path, sandbox):
    sandbox.config.media_delay = 1.0  # a slow CDN: every download takes a second
    notifier = RecordingNotifier()
    settings = fast_settings(tmp_path, sandbox, max_concurrent_deliveries=2)
    async with running_core(settings, notifier) as core:
        jobs = await make_jobs(core, 6)
        await eventually(in_state(core, jobs, JobState.DELIVERED), timeout=30, what="every video delivered")

    assert sandbox.media_peak == 2  # the bound, and reached: the deliveries do overlap
    assert notifier.outcome_counts() == {job.id: 1 for job in jobs}


async def test_a_failing_delivery_backs_off_then_tells_the_user_once_and_keeps_the_quota(tmp_path, sandbox):
    notifier = RecordingNotifier(fail_next_deliveries=1000)  # the chat never takes the video
    settings = fast_settings(
        tmp_path,
        sandbox,
        delivery_retry_initial=0.2,
        delivery_retry_max=0.5,
        delivery_max_attempts=4,
        quota_per_user="5",
    )
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
        [done] = await eventually(in_state(core, [job], JobState.DELIVERED), timeout=15, what="the bot gives up")
        quota, _ = await core.quotas.status(requester().user)

    tries = [at for job_id, at in notifier.delivery_tries if job_id == job.id]
    assert len(tries) == 4
    gaps = [later - earlier for earlier, later in zip(tries, tries[1:], strict=False)]
    # 0.2 s, doubled, capped at 0.5 s (a pass may start a little later, never sooner).
    for gap, least in zip(gaps, (0.2, 0.4, 0.5), strict=True):
        assert gap >= least - 0.02, gaps
    [(job_id, told)] = notifier.failures
    assert job_id == job.id
    assert told.startswith("The video was made, but posting it here failed 4 times (chat is down)")
    assert done.result_url and done.result_url in told
    assert done.outcome is JobState.COMPLETED and done.delivery_attempts == 4
    # The video was made and paid for upstream: it counts (README "How it works").
    assert (quota.used, quota.reserved) == (1, 0)


async def test_a_restart_keeps_a_failed_deliverys_backoff(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, delivery_retry_initial=600, delivery_retry_max=600)
    failing = RecordingNotifier(fail_next_deliveries=1)
    async with running_core(settings, failing) as core:
        job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
        await eventually(lambda: failing.delivery_tries, what="a first, failed try")

    working = RecordingNotifier()
    async with running_core(settings, working) as core:  # its start-up pass has run
        current = await core.jobs.get(job.id)
        assert current.state is JobState.COMPLETED and working.deliveries == []  # not before its time
        assert current.delivery_attempts == 1
        assert current.deliver_after - current.finished_at >= timedelta(seconds=600)


def test_the_backoff_doubles_up_to_its_cap():
    policy = delivery.DeliveryPolicy(retry_initial=30, retry_max=1800)
    waits = [policy.backoff(tries).total_seconds() for tries in range(1, 9)]
    assert waits == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert policy.backoff(10_000).total_seconds() == 1800


async def test_one_jobs_error_outside_the_post_neither_stops_the_others_nor_escapes(tmp_path, sandbox, caplog):
    notifier = RecordingNotifier()
    settings = fast_settings(tmp_path, sandbox)
    async with running_core(settings, notifier) as core:
        core.notifiers.unregister(Platform.CONSOLE)  # the chat adapter is down while the videos finish
        first, *others = jobs = await make_jobs(core, 3)
        await eventually(in_state(core, jobs, JobState.COMPLETED), what="every video made")
        await core.stop_loops()  # this test runs the retry pass itself
        # The oldest job cannot be recorded as delivered (the disk is failing for it).
        with contextlib.closing(sqlite3.connect(settings.bot_database)) as db:
            db.execute(
                "CREATE TRIGGER failing_disk BEFORE UPDATE OF state ON jobs"
                f" WHEN NEW.id = '{first.id}' AND NEW.state = 'delivered'"
                " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
            db.commit()
        core.notifiers.register(Platform.CONSOLE, notifier)

        await core.deliverer.deliver_pending()

        assert await in_state(core, others, JobState.DELIVERED)()
        assert (await core.jobs.get(first.id)).state is JobState.COMPLETED  # kept for a later pass

        # The same trouble in a background delivery is logged, not left in the task.
        unretrieved: list[dict] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
        try:
            caplog.clear()
            core.deliverer.schedule(await core.jobs.get(first.id))

            def finished():
                gc.collect()  # a task nobody awaited reports its exception when collected
                logged = [r for r in caplog.records if first.id in r.getMessage() and r.levelno >= logging.ERROR]
                return unretrieved or logged

            await eventually(finished, what="the background delivery to end")
            gc.collect()
            assert unretrieved == []
        finally:
            loop.set_exception_handler(None)
