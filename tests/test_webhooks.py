"""Upstream callbacks (`replyUrl`): a signed callback is the upstream's word, applied as it
comes; nothing a forger without the secret, or a replayer, sends changes a job; polling
is then only a slow safety net."""

from __future__ import annotations

import contextlib
import socket

import httpx
import pytest

from bot.bootstrap import serving_http
from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STATUS_LISTING = "/v2/pixverse/videos/"
STATUS_LOOKUP = "/v2/pixverse/videos/user:"


def status_requests(sandbox) -> int:
    """`GET videos` listings and `GET videos/{id}` lookups the sandbox has answered."""
    return sum(
        1
        for method, path in sandbox.request_log
        if method == "GET" and (path == STATUS_LISTING or path.startswith(STATUS_LOOKUP))
    )


@contextlib.asynccontextmanager
async def webhook_core(tmp_path, *, public_port=None, generation_seconds=0.5, **overrides):
    """The real core with webhooks on, its HTTP server up; `public_port` other than the
    server's makes every callback go nowhere (lost)."""
    async with running_sandbox(SandboxConfig(generation_seconds=generation_seconds)) as sandbox:
        port = free_port()
        settings = fast_settings(
            tmp_path,
            sandbox,
            bot_public_url=f"http://127.0.0.1:{public_port or port}",
            bot_http_host="127.0.0.1",
            bot_http_port=port,
            **({"poll_interval": 60} | overrides),  # these tests must finish by webhook alone
        )
        notifier = RecordingNotifier()
        async with running_core(settings, notifier) as core:
            async with serving_http(core.http_app, "127.0.0.1", port) as base_url:
                async with httpx.AsyncClient(base_url=base_url) as http:
                    yield sandbox, core, notifier, http


@pytest.fixture
async def webhook_env(tmp_path):
    async with webhook_core(tmp_path) as env:
        yield env


async def _job(core, job_id):
    return await core.jobs.get(job_id)


async def test_a_job_finishes_by_webhook_without_polling(webhook_env):
    sandbox, core, notifier, _ = webhook_env
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    done = await eventually(lambda: _delivered(core, job.id), timeout=10)
    assert done.outcome is JobState.COMPLETED
    assert done.result_url == sandbox.videos[done.video_id].media_url("mp4")
    # The signed callback was applied as it came: nobody asked the upstream about the video.
    assert sandbox.count("GET", STATUS_LOOKUP) == 0
    assert [d.link for d in notifier.deliveries] == [done.result_url]


async def test_with_webhooks_on_jobs_cost_at_most_a_fifth_of_a_status_request_each(tmp_path):
    """Issue 14's target: polling with webhooks on is only a slow safety net, so a
    tracker pass every 0.1 s does not turn into a listing every 0.1 s."""
    jobs_count = 10
    async with webhook_core(tmp_path, poll_interval=0.1) as (sandbox, core, notifier, _):
        jobs = [
            await core.service.create_single(
                requester(user_id=str(100 + n)), parse_command(CreateSingle, prompt="a fox")
            )
            for n in range(jobs_count)
        ]
        for job in jobs:
            await eventually(lambda job=job: _delivered(core, job.id), timeout=20)
        assert status_requests(sandbox) <= 0.2 * jobs_count, sandbox.request_log


async def test_a_lost_callback_is_picked_up_by_the_safety_net_poll(tmp_path):
    # The upstream is given a public URL nothing listens on: every callback is lost.
    async with webhook_core(tmp_path, public_port=free_port(), poll_interval=0.1, webhook_safety_poll_interval=0.5) as (
        sandbox,
        core,
        notifier,
        _,
    ):
        job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
        done = await eventually(lambda: _delivered(core, job.id), timeout=10)
        assert done.outcome is JobState.COMPLETED
        assert status_requests(sandbox) >= 1, sandbox.request_log


async def test_a_callback_before_the_submission_was_recorded_is_looked_up_at_once(tmp_path):
    """The create call's answer was lost (the job stays SUBMITTING, no video id to check a
    callback against) and the upstream calls back meanwhile: the job is looked up as soon
    as it runs, not on the slow safety-net interval."""
    async with webhook_core(tmp_path, generation_seconds=0.2, poll_interval=0.1) as (sandbox, core, notifier, _):
        first = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
        await eventually(lambda: _delivered(core, first.id), timeout=10)  # the safety net has had its pass
        # The create's answer is lost and the new video is listed late: the job stays
        # SUBMITTING while its callbacks arrive, until the scheduler finds its video.
        sandbox.config.drop_write_responses = 1
        sandbox.config.new_video_listing_delay = 1.0
        job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a hare"))
        done = await eventually(lambda: _delivered(core, job.id), timeout=10)
        assert done.outcome is JobState.COMPLETED
        assert [d.link for d in notifier.deliveries] == [(await _job(core, first.id)).result_url, done.result_url]


async def test_forged_unknown_and_foreign_callbacks_change_nothing(webhook_env):
    sandbox, core, notifier, http = webhook_env
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    job = await eventually(lambda: _running(core, job.id))
    signer_token = core.signer.token(job.id)
    evil = {
        "video_id": job.video_id,
        "video_status_final": True,
        "video_status_name": "COMPLETED",
        "url": "http://127.0.0.1:9/evil.mp4",
        "replyRef": job.id,
    }

    assert (await http.post(f"/callbacks/pixverse/{job.id}/{'0' * 32}", json=evil)).status_code == 403
    assert (await http.post(f"/callbacks/pixverse/nosuchjob/{signer_token}", json=evil)).status_code == 403
    other = dict(evil, video_id="user:1-pixverse:alice@sandbox.local-video:999999")
    assert (await http.post(f"/callbacks/pixverse/{job.id}/{signer_token}", json=other)).status_code == 409

    done = await eventually(lambda: _delivered(core, job.id), timeout=10)
    assert done.result_url != evil["url"]
    assert [d.link for d in notifier.deliveries] == [done.result_url]


async def test_replayed_final_callback_after_delivery_changes_nothing(webhook_env):
    sandbox, core, notifier, http = webhook_env
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    done = await eventually(lambda: _delivered(core, job.id), timeout=10)
    token = core.signer.token(job.id)
    final = (await core.upstream.get_video(done.video_id)).model_dump(exclude_none=True) | {"replyRef": job.id}
    for _ in range(3):
        response = await http.post(f"/callbacks/pixverse/{job.id}/{token}", json=final)
        assert response.status_code == 200 and response.json()["status"] == "already settled"
    assert notifier.outcome_counts()[job.id] == 1
    assert (await _job(core, job.id)).state is JobState.DELIVERED


async def test_healthz(webhook_env):
    *_, http = webhook_env
    response = await http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


async def _delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job.state is JobState.DELIVERED else None


async def _running(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job.video_id else None
