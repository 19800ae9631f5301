"""/lipsync on a video the user sends: checked by content and uploaded (bot.media), then
lip-synced with `video_path` — through the real aiogram and discord.py adapters and the
console, against the sandbox."""

from __future__ import annotations

import io
import re
from pathlib import Path

from adapters.console.app import run_console
from bot.bootstrap import open_core
from bot.domain import JobKind
from bot.pricing import Pricing
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    RunningBot,
    bot_fixture,
    fake_fixture,
    job_id_of,
    running_bot,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)
from tests.harness import fast_settings
from tests.test_discord_adapter import World, world  # noqa: F401 (the fixture, used by name)
from tests.test_sound import stream_types, voice_note
from tests.videos import clip

FILES, LIPSYNCS = "/v2/pixverse/files", "/v2/pixverse/videos/lipsync"


def upload_of(sandbox: Sandbox, path: str):  # type: ignore[no-untyped-def]
    upload = sandbox.uploads.get(path.removeprefix("upload/"))
    assert upload is not None, path
    return upload


async def test_telegram_lipsync_as_the_caption_of_the_users_video_and_in_reply_to_it(
    tmp_path: Path, sandbox: Sandbox, fake: FakeTelegram
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake, quota_unit="credits", quota_per_user="100000")
    async with running_bot(settings) as bot:
        sent = await fake.user_sends_video(ALICE_CHAT, ALICE, clip(2), caption="/lipsync Ahoy there --voice JAMES")
        [spoken] = await wait_videos(fake, ALICE_CHAT)
        assert spoken["reply_to_message"]["message_id"] == sent["message_id"]
        job = await bot.delivered(job_id_of(spoken))
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))

        # The video went up with POST files, and the lip-sync names it by its path, on the
        # account the scheduler chose (an upload is reachable from every account).
        body = sandbox.bodies[job.video_id or ""]
        assert (job.request.kind, job.parent_id) == (JobKind.LIPSYNC, None)
        assert body["video_path"] == job.request.source_video_path and "video_id" not in body
        assert (body["prompt"], body["speaker_id"], body["email"]) == (
            "Ahoy there",
            "2",
            sandbox.videos[job.video_id or ""].email,
        )
        assert upload_of(sandbox, body["video_path"]).content_type == "video/mp4"
        assert stream_types(fake.file(spoken["video"]["file_id"]).data) == ["video", "audio"]
        assert spoken["caption"].split("\n")[0].startswith("lipsync · says “Ahoy there” · voice James")
        # Priced like a new video of the lip-sync model (v5) at the default quality, as long as the video.
        assert (job.request.model, job.request.duration) == ("v5", 2)
        assert mine.used == Pricing.load().credits(job.request) > 0

        # A voice note with the caption /lipsync, in reply to the user's video: its audio plays.
        await fake.user_sends_voice(ALICE_CHAT, ALICE, voice_note(1.0), duration=1, caption="/lipsync", reply_to=sent)
        played = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
        body = sandbox.bodies[(await bot.delivered(job_id_of(played))).video_id or ""]
        assert set(body) >= {"video_path", "audio_path"} and "prompt" not in body
        assert upload_of(sandbox, body["audio_path"]).content_type == "audio/wav"

        # Words replied to the user's own video: the same.
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync Fair winds", reply_to=sent)
        said = (await wait_videos(fake, ALICE_CHAT, 3))[-1]
        body = sandbox.bodies[(await bot.delivered(job_id_of(said))).video_id or ""]
        assert (body["prompt"], "video_id" in body) == ("Fair winds", False)
        assert sandbox.count("POST", FILES) == 2 + 1 + 1  # three videos and one voice note went up
        assert fake.spec_violations == []


async def test_telegram_lipsync_of_the_users_video_refuses_before_uploading_or_charging(
    fake: FakeTelegram, bot: RunningBot, sandbox: Sandbox
) -> None:
    async def reply_to(message: dict, containing: str) -> str:
        return (await wait_text_reply(fake, ALICE_CHAT, message, containing))["text"]

    # No words and no audio: refused before the video is even fetched.
    empty = await fake.user_sends_video(ALICE_CHAT, ALICE, clip(2), caption="/lipsync")
    assert "text: is empty; give the words to speak" in await reply_to(empty, "text")
    assert fake.calls_to("getFile") == []
    notes = await fake.user_sends_document(
        ALICE_CHAT, ALICE, b"shopping list\n" * 50, file_name="clip.mp4", mime_type="video/mp4", caption="/lipsync hi"
    )
    assert "video: is not a video file this bot can read; send MP4 or MOV" in await reply_to(notes, "video")
    nothing = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync hello")
    assert "or send your own video (MP4 or MOV) with the caption /lipsync" in await reply_to(nothing, "video")
    assert sandbox.count("POST", FILES) == 0 and sandbox.count("POST", LIPSYNCS) == 0
    assert await bot.core.jobs.recent_for_user(user_ref(ALICE)) == []


async def test_discord_lipsync_with_a_video_attachment(world: World, sandbox: Sandbox) -> None:  # noqa: F811
    fake = world.fake
    async with world.running():
        command = next(c for c in fake.commands[fake.guild_id] if c["name"] == "lipsync")
        assert {(o["name"], o["type"], o.get("required", False)) for o in command["options"]} >= {
            ("job", 3, False),
            ("video", 11, False),
        }
        video = fake.upload("clip.mp4", clip(2), "video/mp4")
        asked = await fake.slash("lipsync", by=world.alice, video=video, text="Ahoy there", voice="liam")
        spoken = await world.video(asked)
        job = await world.job_of(spoken)
        body = sandbox.bodies[job.video_id or ""]
        assert job.request.kind is JobKind.LIPSYNC and "video_id" not in body
        assert (body["video_path"], body["prompt"]) == (job.request.source_video_path, "Ahoy there")
        assert stream_types(spoken.attachments[0].data) == ["video", "audio"]

        both = await fake.slash("lipsync", by=world.alice, job=job.id, video=video, text="hi")
        assert (await world.reply(both)).startswith("video: is one too many")
        neither = await fake.slash("lipsync", by=world.alice, text="hi")
        assert (await world.reply(neither)).startswith("video: is missing")
        wrong = fake.upload("clip.mkv", clip(2, container="matroska"), "video/x-matroska")
        refused = await fake.slash("lipsync", by=world.alice, video=wrong, text="hi")
        assert "video: is not MP4 or MOV (it reads as Matroska" in await world.reply(refused)
        assert sandbox.count("POST", FILES) == 1


async def test_console_lipsync_of_a_video_file_with_words_or_an_audio_file(tmp_path: Path) -> None:
    (tmp_path / "clip.mov").write_bytes(clip(3, container="mov"))
    (tmp_path / "hello.ogg").write_bytes(voice_note(1.5))
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = (
                f"/lipsync {tmp_path / 'clip.mov'} Good morning --voice isabella\n"
                f"/lipsync {tmp_path / 'clip.mov'} {tmp_path / 'hello.ogg'}\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0, out.getvalue()
            done = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", out.getvalue())
            assert len(done) == 2, out.getvalue()
            bodies = [sandbox.bodies[(await core.jobs.get(made)).video_id] for made, _ in done]  # type: ignore[union-attr]
            [spoken] = [body for body in bodies if "prompt" in body]
            [played] = [body for body in bodies if "audio_path" in body]
            assert (spoken["prompt"], spoken["speaker_id"]) == ("Good morning", "3")
            assert all(upload_of(sandbox, b["video_path"]).content_type == "video/quicktime" for b in bodies)
            assert upload_of(sandbox, played["audio_path"]).content_type == "audio/wav"
            assert all(stream_types(Path(p).read_bytes()) == ["video", "audio"] for _, p in done)


async def test_lipsync_of_a_result_made_from_an_upload_names_only_the_result(tmp_path: Path) -> None:
    # An extension of the user's own video on v5 takes 🗣 too; its lip-sync is of the
    # extension (video_id), not of the upload the extension started from.
    (tmp_path / "clip.mp4").write_bytes(clip(2))
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = f"/extend {tmp_path / 'clip.mp4'} the tide comes in --model v5 --duration 5\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0, out.getvalue()
            [extended] = re.findall(r"\[(\w+)\] ✅ Done: \S+\.mp4", out.getvalue())
            assert f"/lipsync {extended} <words>" in out.getvalue()

            out = io.StringIO()
            script = f"/lipsync {extended} Here it comes\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0, out.getvalue()
            [spoken] = re.findall(r"\[(\w+)\] ✅ Done: \S+\.mp4", out.getvalue())
            parent, job = await core.jobs.get(extended), await core.jobs.get(spoken)
            assert parent is not None and job is not None
            body = sandbox.bodies[job.video_id or ""]
            assert body["video_id"] == parent.video_id and "video_path" not in body
            assert job.request.source_video_path is None
