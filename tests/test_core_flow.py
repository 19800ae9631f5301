"""The whole path: core + SQLite + PixVerse client + sandbox over real HTTP."""

from __future__ import annotations

import io

import av
import pytest

from bot.commands import Animate, CreateSingle, parse_command
from bot.domain import JobKind, JobState, ResultAction
from bot.errors import ActionUnavailable, InvalidInput, NotYourJob
from bot.ports import ProgressStage
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core, tiny_png


def decode_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


async def delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job and job.state is JobState.DELIVERED else None


@pytest.fixture
async def env(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.3)) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox), notifier) as core:
            yield sandbox, core, notifier


async def test_create_single_from_command_to_delivered_video(env):
    sandbox, core, notifier = env
    command = parse_command(CreateSingle, prompt="a fox running through snow", aspect_ratio="9:16", style="anime")
    job = await core.service.create_single(requester(), command)
    done = await eventually(lambda: delivered(core, job.id), what="job delivered")

    assert done.outcome is JobState.COMPLETED and done.video_id and done.result_url
    [video] = notifier.deliveries
    assert decode_frames(video.file_bytes) > 0
    assert video.caption.startswith("a fox running through snow")
    assert f"seed {done.request.seed}" in video.caption and "9:16" in video.caption
    assert video.buttons == (
        ResultAction.REROLL,
        ResultAction.REMIX,
        ResultAction.UPSCALE,
        ResultAction.EXTEND,
        ResultAction.MODIFY,
    )
    stages = [p.stage for job_id, p in notifier.progress_events if job_id == job.id]
    assert stages[0] is ProgressStage.QUEUED and ProgressStage.STARTED in stages
    # The v1 style reached PixVerse inside the prompt (v2 has no style field).
    upstream_video = await core.upstream.get_video(done.video_id)
    assert "anime style" in upstream_video.prompt


async def test_animate_uploads_the_image_and_creates_from_it(env):
    sandbox, core, notifier = env
    command = parse_command(Animate, prompt="smiling and blinking", motion=8, hd_quality="Yes")
    job = await core.service.animate(requester(), command, tiny_png())
    done = await eventually(lambda: delivered(core, job.id))

    assert done.request.kind is JobKind.ANIMATE and done.request.image_path.startswith("upload/")
    assert done.request.quality == "720p"  # hd_quality Yes
    assert "strong, dynamic motion" in done.request.prompt
    assert sandbox.count("POST", "/v2/pixverse/files") == 1
    assert notifier.outcome_counts()[job.id] == 1


async def test_animate_refuses_what_is_not_an_image_before_anything_is_spent(env):
    sandbox, core, _ = env
    with pytest.raises(InvalidInput, match="image: .*JPEG, PNG, WebP or GIF"):
        await core.service.animate(requester(), parse_command(Animate), b"BM a bitmap: not allowed")
    assert sandbox.count("POST", "/v2/pixverse/") == 0


@pytest.mark.parametrize(
    ("action", "prompt"),
    [
        (ResultAction.REROLL, None),
        (ResultAction.REMIX, "a wolf instead"),
        (ResultAction.UPSCALE, None),
        (ResultAction.EXTEND, None),
    ],
)
async def test_each_button_makes_a_new_video_from_the_finished_one(env, action, prompt):
    sandbox, core, notifier = env
    parent = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    parent = await eventually(lambda: delivered(core, parent.id))

    child = await core.service.press(requester(), parent.id, action, prompt=prompt)
    child = await eventually(lambda: delivered(core, child.id))

    assert child.outcome is JobState.COMPLETED and child.parent_id == parent.id and child.action is action
    assert child.video_id != parent.video_id
    if action is ResultAction.REROLL:
        assert child.request.user_prompt == "a fox" and child.request.seed != parent.request.seed
    elif action is ResultAction.REMIX:
        assert child.request.user_prompt == "a wolf instead" and child.request.kind is JobKind.CREATE
    else:
        assert child.request.source_video_id == parent.video_id
        assert child.request.kind is (JobKind.UPSCALE if action is ResultAction.UPSCALE else JobKind.EXTEND)
    assert notifier.outcome_counts() == {parent.id: 1, child.id: 1}


async def test_buttons_refuse_other_users_and_unfinished_jobs(env):
    _, core, _ = env
    job = await core.service.create_single(requester("owner"), parse_command(CreateSingle, prompt="a fox"))
    with pytest.raises(ActionUnavailable):
        await core.service.press(requester("owner"), job.id, ResultAction.REROLL)
    await eventually(lambda: delivered(core, job.id))
    with pytest.raises(NotYourJob):
        await core.service.press(requester("stranger"), job.id, ResultAction.UPSCALE)
    with pytest.raises(InvalidInput, match="prompt: is empty"):
        await core.service.press(requester("owner"), job.id, ResultAction.REMIX, prompt="  ")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"prompt": "x" * 513}, "prompt: is 513 characters long; at most 512"),
        (
            {"prompt": "a", "aspect_ratio": "21:9"},
            "aspect_ratio: '21:9' is not supported; use one of 16:9, 9:16, 1:1, 4:3, 3:4",
        ),
        ({"prompt": "a", "style": "Oil"}, "style: 'Oil' is not supported; use one of Realistic, Anime, 3D Animation"),
        (
            {"prompt": "a", "seed_value": 2147483648},
            "seed_value: 2147483648 is out of range; use 0 (random) to 2147483647",
        ),
        ({"prompt": "a", "duration": 11}, "duration: 11 is out of range; use 1 to 10 seconds"),
        ({"prompt": "a", "quality": "4k"}, "quality: '4k' is not supported; use one of 360p, 540p, 720p, 1080p"),
        ({"prompt": "a", "model": "v9"}, "model: 'v9' is not supported; use one of v5.6, v5.5, v5, v5-fast"),
    ],
)
async def test_bad_options_are_refused_with_the_field_and_what_is_allowed(fields, expected):
    with pytest.raises(InvalidInput) as caught:
        parse_command(CreateSingle, **fields)
    assert expected in str(caught.value)


async def test_limits_that_depend_on_each_other_are_checked_before_queueing(env):
    sandbox, core, _ = env
    with pytest.raises(InvalidInput, match="1080p allows at most 8 seconds"):
        await core.service.create_single(
            requester(), parse_command(CreateSingle, prompt="a", quality="1080p", duration=10)
        )
    with pytest.raises(InvalidInput, match="audio is only available on models v5.5, v5.6"):
        await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a", model="v5", audio=True))
    with pytest.raises(InvalidInput, match="character: only works with style Anime"):
        await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a", character="hutao"))
    assert await core.jobs.in_states(list(JobState)) == []
    assert sandbox.count("POST", "/v2/pixverse/") == 0


@pytest.mark.parametrize(
    ("prompt", "state", "reason"),
    [
        ("something forbidden", JobState.MODERATED, "moderator"),
        ("something spicy", JobState.MODERATED, "moderator"),
        ("make it explode", JobState.FAILED, "could not make this video"),
    ],
)
async def test_upstream_refusals_reach_the_user_once(env, prompt, state, reason):
    _, core, notifier = env
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt=prompt))
    done = await eventually(lambda: delivered(core, job.id))
    assert done.outcome is state
    [(job_id, told)] = notifier.failures
    assert job_id == job.id and reason in told


async def test_a_video_too_large_for_the_chat_goes_out_as_a_link(env):
    _, core, notifier = env
    notifier.limit_bytes = 100
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    done = await eventually(lambda: delivered(core, job.id))
    [video] = notifier.deliveries
    assert video.file_bytes is None and video.link == done.result_url


async def test_a_chat_outage_delays_delivery_but_never_loses_or_doubles_it(env):
    _, core, notifier = env
    notifier.fail_next_deliveries = 2
    job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
    await eventually(lambda: delivered(core, job.id))
    assert notifier.outcome_counts()[job.id] == 1


async def test_status_and_recent_jobs_are_per_user(env):
    _, core, _ = env
    mine = await core.service.create_single(requester("me"), parse_command(CreateSingle, prompt="mine"))
    await core.service.create_single(requester("you"), parse_command(CreateSingle, prompt="yours"))
    assert [j.id for j in await core.service.recent_jobs(requester("me").user)] == [mine.id]
    assert (await core.service.job_status(requester("me").user, mine.id)).id == mine.id
    with pytest.raises(Exception, match="No job"):
        await core.service.job_status(requester("you").user, mine.id)


async def test_an_older_stage_never_replaces_a_newer_one_still_waiting_to_be_sent(tmp_path):
    # The accept path reads the queue position after admitting the job; a scheduler pass may
    # have started the job in between. Its late "queued" report must not win over "started".
    from bot.ports import Progress

    async with running_sandbox(SandboxConfig(generation_seconds=5)) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox), notifier, start=False) as core:
            job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
            await core.progress.idle()
            await core.progress.report(job, Progress(ProgressStage.STARTED, elapsed_seconds=0))
            await core.progress.report(job, Progress(ProgressStage.QUEUED, queue_position=1))
            await core.progress.idle()
    shown = [progress.stage for job_id, progress in notifier.progress_events if job_id == job.id]
    assert shown == [ProgressStage.QUEUED, ProgressStage.STARTED]
