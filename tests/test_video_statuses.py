"""Reading the upstream's video statuses as its docs' table gives them (seeds/v2/get-pixverse-videos.md):
5 QUEUED is final yet not done (an off-peak video waiting for its hours), success is COMPLETED
with a url, and a status the table does not list is waited on until the job's time-out."""

from __future__ import annotations

import logging

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import RUNNING_STATES, JobState, utcnow
from bot.sandbox import SandboxConfig, running_sandbox
from bot.sandbox.videos import VideoPhase
from bot.upstream.models import Video, VideoStage
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    fake_fixture,
    job_id_of,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core

WAITING_TEXT = "Waiting for off-peak hours"


def status(code: int | None, name: str | None, final: bool, **more: str) -> dict[str, object]:
    return {"video_status": code, "video_status_name": name, "video_status_final": final, **more}


@pytest.mark.parametrize(
    ("fields", "stage"),
    [
        (status(5, "QUEUED", True), VideoStage.WAITING_OFF_PEAK),
        (status(None, "QUEUED", True), VideoStage.WAITING_OFF_PEAK),
        (status(9, "GENERATING", False), VideoStage.GENERATING),
        (status(10, "GENERATING", False), VideoStage.GENERATING),
        (status(1, "COMPLETED", True, url="u"), VideoStage.SUCCEEDED),
        (status(1, "COMPLETED", True), VideoStage.UNEXPECTED),
        (status(7, "MODERATED", True), VideoStage.MODERATED),
        (status(8, "FAILED", True, error="boom"), VideoStage.FAILED),
        (status(42, "NEW", True), VideoStage.UNEXPECTED),
        (status(42, "NEW", False), VideoStage.UNEXPECTED),
        (status(42, None, False, error="transient?"), VideoStage.UNEXPECTED),
        # The code decides: the API derives the name and the final flag from it.
        (status(5, "COMPLETED", True, url="u"), VideoStage.WAITING_OFF_PEAK),
    ],
)
def test_a_video_is_read_by_the_documented_table(fields, stage) -> None:
    video = Video.model_validate({"video_id": "v", **fields})
    assert video.stage is stage
    assert video.is_finished is (stage in {VideoStage.SUCCEEDED, VideoStage.MODERATED, VideoStage.FAILED})


async def test_an_off_peak_job_waits_for_its_hours_then_arrives_on_telegram(tmp_path, sandbox, fake: FakeTelegram):
    sandbox.config.off_peak_seconds = 3.0  # 1.5 s at 5 QUEUED (final), then generating
    settings = telegram_settings(tmp_path, sandbox, fake, off_peak_poll_interval=0.1)
    async with running_bot(settings) as bot:
        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox under the moon --offpeak")
        await wait_text_reply(fake, ALICE_CHAT, sent)  # the status message
        await fake.wait_for(
            lambda: WAITING_TEXT in status_message(fake, ALICE_CHAT, sent).get("text", ""),
            what="the status message to say it waits for off-peak hours",
        )
        [job] = await bot.core.service.recent_jobs(user_ref(ALICE))
        [video] = [v for v in sandbox.videos.values() if v.off_peak]
        assert job.state in RUNNING_STATES and job.request.off_peak  # waiting, not failed
        assert video.phase in {VideoPhase.QUEUED, VideoPhase.STARTING, VideoPhase.GENERATING}

        [posted] = await wait_videos(fake, ALICE_CHAT)
        done = await bot.delivered(job_id_of(posted))
        await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done")
    assert done.outcome is JobState.COMPLETED and done.id == job.id
    shown = [call.params["text"] for call in fake.calls_to("editMessageText") if call.ok]
    waited = next(i for i, text in enumerate(shown) if WAITING_TEXT in text)
    assert any(text.startswith("🎬 Generating") for text in shown[waited + 1 :]), shown
    assert fake.spec_violations == []


async def test_a_status_the_table_does_not_list_is_logged_once_and_waited_on_until_the_time_out(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="bot.tracker")
    job_timeout = 2.0
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, poll_interval=0.05, job_timeout=job_timeout)
        async with running_core(settings, notifier) as core:
            job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="an enigma"))
            submitted = await eventually(lambda: _submitted(core, job.id), what="the job to be sent")
            await eventually(
                lambda: sandbox.videos[submitted.video_id].phase is VideoPhase.UNLISTED, what="status 42 upstream"
            )
            listings_then = _listings(sandbox)
            await eventually(lambda: notifier.settled(job.id), timeout=15, what="the job to time out")
            settled_at = utcnow()
            polls_meanwhile = _listings(sandbox) - listings_then
            final = await core.jobs.get(job.id)

    # Not given up before its time-out, then with the time-out message.
    assert final is not None and final.outcome is JobState.FAILED
    assert (settled_at - submitted.submitted_at).total_seconds() >= job_timeout
    [(_, reason)] = notifier.failures
    assert "did not finish this video" in reason
    # Polled again and again meanwhile, but logged once.
    assert polls_meanwhile >= 10, polls_meanwhile
    logged = [r for r in caplog.records if job.id in r.getMessage() and "do not list" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "video_status=42" in logged[0].getMessage()


async def test_a_final_video_with_an_error_and_no_documented_status_fails_with_that_error(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox, job_timeout=60), notifier) as core:
            job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="it will explode"))
            await eventually(lambda: notifier.settled(job.id), what="the failure to be told")
    [(_, reason)] = notifier.failures
    assert reason == "PixVerse could not make this video (Generation failed (sandbox fault))."


async def _submitted(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job is not None and job.video_id and job.submitted_at else None


def _listings(sandbox) -> int:
    listing = "/v2/pixverse/videos"
    return sum(1 for method, path in sandbox.request_log if method == "GET" and path.rstrip("/") == listing)
