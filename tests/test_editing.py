"""Editing videos (issue 16): the videos users send (bot.media), /modify and /extend on them,
the ✏️ Modify button, and --preview with its upscale — through the console, the real
aiogram and discord.py adapters against the fakes, and the sandbox."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from adapters.console.app import run_console
from adapters.telegram.files import download_limit
from bot.bootstrap import Core, open_core
from bot.domain import JobKind, Platform, ResultAction, UserRef
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    RunningBot,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    running_bot,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)
from tests.harness import fast_settings
from tests.test_discord_adapter import World, world  # noqa: F401 (a pytest fixture, used by name)
from tests.videos import clip, padded, sound_only

FILES, MODIFIES, EXTENDS = "/v2/pixverse/files", "/v2/pixverse/videos/modify", "/v2/pixverse/videos/extend"
CONSOLE_USER = UserRef(Platform.CONSOLE, "tester")


async def console(core: Core, script: str) -> tuple[int, str]:
    """Run `script` in the console as the tester; its exit code and what it printed."""
    out = io.StringIO()
    code = await run_console(core, stdin=io.StringIO(script), out=out, user="tester")
    return code, out.getvalue()


def done_jobs(text: str) -> list[str]:
    return re.findall(r"\[(\w+)\] ✅ Done: \S+\.mp4", text)


def sent_body(sandbox: Sandbox, core_job_video_id: str | None) -> dict[str, Any]:
    assert core_job_video_id is not None
    return sandbox.bodies[core_job_video_id]


async def credits_used(core: Core) -> int:
    mine, _ = await core.quotas.status(CONSOLE_USER)
    return mine.used


@pytest.fixture
async def sandbox_and_settings(tmp_path: Path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        yield sandbox, fast_settings(tmp_path, sandbox, quota_unit="credits", quota_per_user="1000")


# ------------------------------------------------------------------ console and core


async def test_modify_and_extend_a_video_the_user_sends_make_new_videos(tmp_path, sandbox_and_settings) -> None:
    sandbox, settings = sandbox_and_settings
    (tmp_path / "clip.mp4").write_bytes(clip(2))
    (tmp_path / "clip.mov").write_bytes(clip(7, container="mov"))
    async with open_core(settings) as core:
        code, text = await console(
            core,
            f"/modify {tmp_path / 'clip.mp4'} make it snow --quality 720p\n"
            f"/extend {tmp_path / 'clip.mov'} the camera pulls back --duration 3\n",
        )
        assert code == 0, text
        jobs = {job.request.kind: job for job in await core.jobs.recent_for_user(CONSOLE_USER)}
        assert len(done_jobs(text)) == 2
        modify_job, extend_job = jobs[JobKind.MODIFY], jobs[JobKind.EXTEND]

        # Each video went up as what its content is, and the job refers to its path.
        uploads = [sandbox.uploads.get(Path(j.request.source_video_path or "").name) for j in (modify_job, extend_job)]
        assert [u.content_type for u in uploads if u is not None] == ["video/mp4", "video/quicktime"]
        assert sandbox.count("POST", FILES) == 2
        modify_body = sent_body(sandbox, modify_job.video_id)
        assert modify_body["video_path"] == modify_job.request.source_video_path
        assert (modify_body["prompt"], modify_body["quality"], "video_id" in modify_body) == (
            "make it snow",
            "720p",
            False,
        )
        extend_body = sent_body(sandbox, extend_job.video_id)
        assert (extend_body["video_path"], extend_body["duration"]) == (extend_job.request.source_video_path, 3)
        assert "modify · v5.5 · 2s · 720p" in text  # a modify is as long as its source
        # Charged as the catalogue says: a 2 s 720p modify as a 5 s video (40), a 3 s 540p extension (30).
        assert await credits_used(core) == 40 + 30
    for job_id in done_jobs(text):
        assert (settings.console_output_dir / f"{job_id}.mp4").read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("notes.mp4", b"these are my notes, not a video\n" * 20, "video: is not a video file this bot can read"),
        ("clip.mkv", clip(2, container="matroska"), "video: is not MP4 or MOV (it reads as Matroska"),
        ("song.mp4", sound_only(), "video: has no video stream (only sound?)"),
        ("long.mp4", clip(31), "video: is 31.0 seconds long; the limit is 30 seconds"),
        ("big.mp4", padded(clip(2), 60_000), "video: is 60.0 KB; the limit is 50.0 KB"),
    ],
)
async def test_a_bad_video_is_refused_naming_the_problem_and_nothing_is_uploaded_or_charged(
    tmp_path, sandbox_and_settings, name: str, data: bytes, problem: str
) -> None:
    sandbox, settings = sandbox_and_settings
    settings = settings.model_copy(update={"max_video_bytes": 50_000})
    (tmp_path / name).write_bytes(data)
    async with open_core(settings) as core:
        code, text = await console(core, f"/modify {tmp_path / name} make it snow\n")
        assert code == 1
        assert problem in text, text
        assert "send MP4 or MOV, at most 30 seconds and 50.0 KB" in text or "(MP4 or MOV, at most" in text
        assert sandbox.count("POST", FILES) == 0 and sandbox.count("POST", MODIFIES) == 0
        assert await core.jobs.recent_for_user(CONSOLE_USER) == []
        assert await credits_used(core) == 0


async def test_a_preview_is_a_cheaper_draft_and_its_upscale_is_the_full_video(sandbox_and_settings) -> None:
    sandbox, settings = sandbox_and_settings
    async with open_core(settings) as core:
        code, text = await console(core, "/create_single a fox in the snow --preview --seed 5\n")
        assert code == 0, text
        [draft_id] = done_jobs(text)
        draft = await core.jobs.get(draft_id)
        assert draft is not None and draft.request.preview
        assert sent_body(sandbox, draft.video_id)["preview_mode"] is True
        assert "preview (⬆️ Upscale for the full video)" in text and f"/upscale {draft_id}" in text
        assert await credits_used(core) == 20  # as a 5 s 360p video (prices.preview_quality)

        code, text = await console(core, f"/upscale {draft_id}\n")
        assert code == 0, text
        [full_id] = done_jobs(text)
        full = await core.jobs.get(full_id)
        assert full is not None and full.request.kind is JobKind.UPSCALE and not full.request.preview
        assert await credits_used(core) == 20 + 30  # prices.upscale for 5 s
        made = {v.video_id: v for v in sandbox.videos.values()}
        assert draft.video_id is not None and full.video_id is not None
        draft_made, full_made = made[draft.video_id], made[full.video_id]
        assert (full_made.picture.width, full_made.picture.height) == (
            2 * draft_made.picture.width,
            2 * draft_made.picture.height,
        )


async def test_preview_is_refused_where_its_endpoint_has_none(tmp_path, sandbox_and_settings) -> None:
    sandbox, settings = sandbox_and_settings
    (tmp_path / "clip.mp4").write_bytes(clip(2))
    async with open_core(settings) as core:
        code, text = await console(core, f"/modify {tmp_path / 'clip.mp4'} make it snow --preview\n")
        assert code == 1
        assert "--preview: is not an option here; options are --seed, --quality/-q, --offpeak" in text
        assert sandbox.count("POST", FILES) == 0


async def test_modify_of_a_finished_video_runs_on_the_account_that_made_it(sandbox_and_settings) -> None:
    sandbox, settings = sandbox_and_settings
    async with open_core(settings) as core:
        code, text = await console(core, "/create_single a quiet lake --quality 1080p\n")
        assert code == 0, text
        [parent_id] = done_jobs(text)
        assert f"/modify {parent_id} <the change>" in text

        code, text = await console(core, f"/modify {parent_id} make it stormy\n")
        assert code == 0, text
        [child_id] = done_jobs(text)
        parent, child = await core.jobs.get(parent_id), await core.jobs.get(child_id)
        assert parent is not None and child is not None
        assert (child.parent_id, child.action, child.request.kind) == (parent_id, ResultAction.MODIFY, JobKind.MODIFY)
        body = sent_body(sandbox, child.video_id)
        # The source by its id, on its account; a 1080p video is modified at modify's best, 720p.
        assert (body["video_id"], body["email"], body["quality"]) == (parent.video_id, parent.account, "720p")
        assert "video_path" not in body and sandbox.count("POST", FILES) == 0


# ------------------------------------------------------------------ Telegram


async def press(fake: FakeTelegram, message: dict[str, Any], action: str) -> dict[str, Any]:
    query = await fake.user_presses_button(ALICE_CHAT, ALICE, message, f"px:{action}:{job_id_of(message)}")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers, what=f"the answer to pressing {action}")
    return fake.callback_answers[query["id"]]


async def test_telegram_modify_button_asks_with_force_reply_and_the_answer_modifies_the_video(
    fake: FakeTelegram, bot: RunningBot, sandbox: Sandbox
) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    [first] = await wait_videos(fake, ALICE_CHAT)
    assert [b.split(":")[1] for b in buttons(first)] == ["reroll", "remix", "upscale", "extend", "modify"]

    answer = await press(fake, first, "modify")

    assert answer["text"] == "Reply to my message with the change to make."
    question = await wait_text_reply(fake, ALICE_CHAT, first, f"✏️ Modify of job {job_id_of(first)}")
    [asked] = [c for c in fake.calls_to("sendMessage") if c.ok and c.result["message_id"] == question["message_id"]]
    assert asked.params["reply_markup"]["force_reply"] is True and asked.params["reply_markup"]["selective"] is True

    await fake.user_sends_text(ALICE_CHAT, ALICE, "make it night", reply_to=question)

    modified = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    assert modified["caption"].startswith("make it night\nmodify · v5.5 · 5s · 540p")
    job = await bot.delivered(job_id_of(modified))
    parent = await bot.job(job_id_of(first))
    assert (job.parent_id, job.action) == (parent.id, ResultAction.MODIFY)
    assert sent_body(sandbox, job.video_id)["video_id"] == parent.video_id
    assert fake.spec_violations == []


async def test_telegram_modify_and_extend_as_the_caption_of_the_users_video(
    fake: FakeTelegram, bot: RunningBot, sandbox: Sandbox
) -> None:
    sent = await fake.user_sends_video(ALICE_CHAT, ALICE, clip(2), caption="/modify make it snow")
    [modified] = await wait_videos(fake, ALICE_CHAT)
    assert modified["reply_to_message"]["message_id"] == sent["message_id"]
    assert modified["caption"].startswith("make it snow\nmodify · v5.5 · 2s")
    job = await bot.delivered(job_id_of(modified))
    assert sent_body(sandbox, job.video_id)["video_path"] == job.request.source_video_path

    # /extend replied to a video (here the user's own, sent earlier) works the same way.
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/extend the snow melts --duration 4", reply_to=sent)
    extended = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    job = await bot.delivered(job_id_of(extended))
    body = sent_body(sandbox, job.video_id)
    assert (body["prompt"], body["duration"], body["video_path"]) == (
        "the snow melts",
        4,
        job.request.source_video_path,
    )
    assert sandbox.count("POST", FILES) == 2
    assert fake.spec_violations == []


async def test_telegram_refuses_a_file_that_is_no_video_before_uploading_or_charging(
    fake: FakeTelegram, bot: RunningBot, sandbox: Sandbox
) -> None:
    sent = await fake.user_sends_document(
        ALICE_CHAT, ALICE, b"shopping list\n" * 50, file_name="clip.mp4", mime_type="video/mp4", caption="/modify snow"
    )
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "video")
    assert (
        "video: is not a video file this bot can read; send MP4 or MOV, at most 30 seconds and 100.0 MB"
        in (reply["text"])
    )
    nothing = await fake.user_sends_text(ALICE_CHAT, ALICE, "/modify make it snow")
    reply = await wait_text_reply(fake, ALICE_CHAT, nothing, "video")
    assert "video: is missing; send a video (MP4 or MOV" in reply["text"]
    assert sandbox.count("POST", FILES) == 0
    assert await bot.core.jobs.recent_for_user(user_ref(ALICE)) == []
    assert fake.spec_violations == []


async def test_telegram_a_video_over_the_cloud_download_limit_is_refused_naming_it(
    fake: FakeTelegram, bot: RunningBot, sandbox: Sandbox
) -> None:
    # The fake is the cloud Bot API here: getFile refuses files over 20 MB.
    sent = await fake.user_sends_video(ALICE_CHAT, ALICE, padded(clip(2), 21 * 1024 * 1024), caption="/modify snow")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "video")
    assert "video: is 21.0 MB; Telegram lets bots fetch files up to 20 MB" in reply["text"]
    assert "TELEGRAM_API_BASE" in reply["text"]
    assert fake.downloads == [] and sandbox.count("POST", FILES) == 0
    assert await bot.core.jobs.recent_for_user(user_ref(ALICE)) == []


def test_without_a_local_bot_api_server_the_20_mb_getfile_limit_applies(tmp_path, sandbox) -> None:
    cloud = fast_settings(tmp_path, sandbox)
    local = fast_settings(tmp_path, sandbox, telegram_api_base="http://127.0.0.1:8081")
    assert download_limit(cloud, cloud.max_video_bytes) == 20 * 1024 * 1024
    assert download_limit(local, local.max_video_bytes) == local.max_video_bytes == 100_000_000


async def test_telegram_with_a_local_bot_api_server_a_larger_video_is_taken(tmp_path, sandbox: Sandbox) -> None:
    async with FakeTelegram(local_mode=True) as local, running_bot(telegram_settings(tmp_path, sandbox, local)) as bot:
        await local.user_sends_video(ALICE_CHAT, ALICE, padded(clip(2), 25 * 1024 * 1024), caption="/modify snow")
        [modified] = await wait_videos(local, ALICE_CHAT)
        job = await bot.delivered(job_id_of(modified))
        assert job.request.kind is JobKind.MODIFY and sandbox.count("POST", FILES) == 1
        assert local.spec_violations == []


# ------------------------------------------------------------------ Discord


async def test_discord_modify_slash_command_with_a_video_attachment(world: World, sandbox: Sandbox) -> None:  # noqa: F811
    fake = world.fake
    async with world.running():
        command = next(c for c in fake.commands[fake.guild_id] if c["name"] == "modify")
        assert [(o["name"], o["type"], o.get("required", False)) for o in command["options"][:2]] == [
            ("video", 11, True),
            ("change", 3, True),
        ]
        video = fake.upload("clip.mp4", clip(2), "video/mp4")
        asked = await fake.slash("modify", by=world.alice, video=video, change="make it snow")
        made = await world.video(asked)
        job = await world.job_of(made)
        assert job.request.kind is JobKind.MODIFY and made.content.startswith("make it snow\nmodify")
        assert sent_body(sandbox, job.video_id)["video_path"] == job.request.source_video_path

        wrong = fake.upload("clip.mkv", clip(2, container="matroska"), "video/x-matroska")
        refused = await fake.slash("modify", by=world.alice, video=wrong, change="make it snow")
        assert "video: is not MP4 or MOV (it reads as Matroska" in await world.reply(refused)
        assert sandbox.count("POST", FILES) == 1


async def test_discord_modify_button_opens_a_dialog_and_modifies_the_video(
    world: World,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    fake = world.fake
    async with world.running():
        video = await world.video(await fake.slash("create_single", by=world.alice, prompt="a quiet lake"))
        parent = await world.job_of(video)

        nosy = await fake.click(video, f"px:modify:{parent.id}", by=world.bob)
        assert await world.reply(nosy) == "Only the person who asked for this video can use its buttons."
        assert nosy.modal is None

        opened = await fake.click(video, f"px:modify:{parent.id}", by=world.alice)
        dialog = await fake.wait_for(lambda: opened.modal, what="the modify dialog")
        assert dialog["title"] == "✏️ Modify this video"
        assert "value" not in dialog["components"][0]["component"]  # a change starts blank
        submitted = await fake.submit_modal(opened, {"prompt": "make it stormy"}, by=world.alice)
        modified = await world.video(submitted)
        job = await world.job_of(modified)
        assert (job.action, job.parent_id, job.request.user_prompt) == (
            ResultAction.MODIFY,
            parent.id,
            "make it stormy",
        )
        assert sent_body(sandbox, job.video_id)["video_id"] == parent.video_id


async def test_the_change_is_moderated_before_the_video_is_uploaded(tmp_path, sandbox_and_settings) -> None:
    sandbox, settings = sandbox_and_settings
    house_rules = tmp_path / "blocklist.txt"
    house_rules.write_text("pineapple\n", "utf-8")
    settings = settings.model_copy(update={"blocklist_file": house_rules})
    (tmp_path / "clip.mp4").write_bytes(clip(2))
    async with open_core(settings) as core:
        code, text = await console(core, f"/modify {tmp_path / 'clip.mp4'} add a pineapple\n")
        assert code == 1 and "blocked term “pineapple”" in text, text
        code, text = await console(core, "/create_single a beach\n")
        [parent_id] = done_jobs(text)
        code, text = await console(core, f"/modify {parent_id} add a pineapple\n")
        assert code == 1 and "blocked term “pineapple”" in text, text
        assert sandbox.count("POST", FILES) == 0 and sandbox.count("POST", MODIFIES) == 0
        assert [job.request.kind for job in await core.jobs.recent_for_user(CONSOLE_USER)] == [JobKind.CREATE]
        assert await credits_used(core) == 30  # the 5 s 540p video only


async def test_discord_preview_option_makes_a_draft_whose_upscale_is_the_full_video(
    world: World,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    fake = world.fake
    async with world.running():
        command = next(c for c in fake.commands[fake.guild_id] if c["name"] == "create_single")
        assert any(o["name"] == "preview" and o["type"] == 5 for o in command["options"])  # a boolean
        draft = await world.video(await fake.slash("create_single", by=world.alice, prompt="a kite", preview=True))
        job = await world.job_of(draft)
        assert job.request.preview and sent_body(sandbox, job.video_id)["preview_mode"] is True
        assert "preview (⬆️ Upscale for the full video)" in draft.content

        full = await world.video(await fake.click(draft, f"px:upscale:{job.id}", by=world.alice))
        upscale = await world.job_of(full)
        assert (upscale.request.kind, upscale.parent_id, upscale.request.preview) == (JobKind.UPSCALE, job.id, False)
