"""A restart in every job state: each job finishes and reaches the chat exactly once.

The process "dies" by leaving the core at the chosen point; a new core is then
opened on the same database, as after a crash and restart.
"""

from __future__ import annotations

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState, ResultAction
from bot.sandbox import SandboxConfig, running_sandbox
from bot.submission import build_upstream_request
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core


@pytest.fixture
async def sandbox():
    async with running_sandbox(SandboxConfig(generation_seconds=0.4)) as sb:
        yield sb


def command():
    return parse_command(CreateSingle, prompt="a fox in the snow")


async def finish_after_restart(settings, notifier, job_id):
    async with running_core(settings, notifier) as core:
        job = await eventually(lambda: _delivered(core, job_id), timeout=15)
    assert notifier.outcome_counts()[job_id] == 1
    return job


async def _delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job.state is JobState.DELIVERED else None


def videos_for(sandbox, job_id):
    return [v for v in sandbox.videos.values() if getattr(v, "reply_ref", None) == job_id]


async def test_restart_while_queued(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.create_single(requester(), command())
    done = await finish_after_restart(settings, notifier, job.id)
    assert done.outcome is JobState.COMPLETED


async def test_restart_after_submitting_was_written_but_before_the_request_left(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.create_single(requester(), command())
        await core.jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account="alice@sandbox.local")
    await finish_after_restart(settings, notifier, job.id)
    assert len(videos_for(sandbox, job.id)) == 1


async def test_restart_after_the_request_was_sent_but_before_its_answer_was_written(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.create_single(requester(), command())
        claimed = await core.jobs.transition(
            job.id, JobState.QUEUED, JobState.SUBMITTING, account="alice@sandbox.local"
        )
        request = build_upstream_request(claimed.request, email="alice@sandbox.local", reply_ref=job.id)
        sent = await core.upstream.create_video(request)  # the process dies before recording this
    done = await finish_after_restart(settings, notifier, job.id)
    assert done.video_id == sent.id
    assert len(videos_for(sandbox, job.id)) == 1  # found by its replyRef, not sent again


async def test_restart_right_after_a_create_the_upstream_lists_late_does_not_send_it_again(tmp_path, sandbox):
    sandbox.config.new_video_listing_delay = 1.5  # a lookup right after the create finds nothing
    settings = fast_settings(tmp_path, sandbox, unknown_outcome_grace=3)
    notifier = RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.create_single(requester(), command())
        claimed = await core.jobs.transition(
            job.id, JobState.QUEUED, JobState.SUBMITTING, account="alice@sandbox.local"
        )
        request = build_upstream_request(claimed.request, email="alice@sandbox.local", reply_ref=job.id)
        sent = await core.upstream.create_video(request)  # accepted; the process dies before recording it
    # Restarted at once: the job is younger than the grace, so it is left for a later pass.
    done = await finish_after_restart(settings, notifier, job.id)
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1  # sent once, paid once
    assert done.video_id == sent.id


async def test_restart_while_generating(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), command())
        await eventually(lambda: _in_state(core, job.id, JobState.SUBMITTED, JobState.GENERATING))
    await finish_after_restart(settings, notifier, job.id)
    assert len(videos_for(sandbox, job.id)) == 1


async def test_restart_when_finished_but_not_yet_delivered(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    notifier.fail_next_deliveries = 10_000  # the chat is down until the restart
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), command())
        await eventually(lambda: _in_state(core, job.id, JobState.COMPLETED))
    notifier.fail_next_deliveries = 0
    await finish_after_restart(settings, notifier, job.id)


async def test_restart_after_delivery_posts_nothing_again_and_buttons_still_work(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), command())
        await eventually(lambda: _delivered(core, job.id))
    async with running_core(settings, notifier) as core:
        await core.deliverer.deliver_pending()
        await core.tracker.poll_once()
        child = await core.service.press(requester(), job.id, ResultAction.REROLL)
        await eventually(lambda: _delivered(core, child.id))
    assert notifier.outcome_counts() == {job.id: 1, child.id: 1}


async def _in_state(core, job_id, *states):
    return (await core.jobs.get(job_id)).state in states
