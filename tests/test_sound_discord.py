"""Sound and speech on Discord: the sound options of /create_single, /voices, the 🗣 Lip-sync
dialog and /lipsync with an audio attachment — real discord.py against the fake Discord."""

from __future__ import annotations

from bot.domain import JobKind, ResultAction
from bot.sandbox import Sandbox
from tests.fakes.discord_api import FakeMessage
from tests.test_discord_adapter import World, world  # noqa: F401 (the fixture, used by name)

# The tests take the `world` fixture by name, which shadows the import (F811).
from tests.test_sound import stream_types, voice_note


async def a_v5_video(world: World) -> FakeMessage:  # noqa: F811
    asked = await world.fake.slash("create_single", by=world.alice, prompt="a sailor at the helm", model="v5")
    return await world.video(asked)


async def test_sound_options_are_slash_options_and_refused_where_the_model_lacks_them(
    world: World,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    fake = world.fake
    async with world.running():
        asked = await fake.slash(
            "create_single",
            by=world.alice,
            prompt="a lighthouse",
            model="v5",
            sound_effect="waves crashing",
            auto_sound=True,
            speech="Hello sailors",
            voice="Isabella",
        )
        video = await world.video(asked)
        job = await world.job_of(video)
        body = sandbox.bodies[job.video_id or ""]
        assert (body["sound_effect_prompt"], body["auto_sound"]) == ("waves crashing", True)
        assert (body["lip_sync_tts_prompt"], body["lip_sync_tts_speaker_id"]) == ("Hello sailors", "3")
        assert stream_types(video.attachments[0].data) == ["video", "audio"]
        assert f"px:lipsync:{job.id}" in video.custom_ids

        refused = await fake.slash("create_single", by=world.alice, prompt="a lighthouse", sound_effect="waves")
        assert (await world.reply(refused)).startswith(
            "sound_effect: a sound effect is not available on v5.5; models that have it: v5"
        )
        unknown = await fake.slash("create_single", by=world.alice, prompt="a", model="v5", speech="hi", voice="Zed")
        assert "voice: 'Zed' is not a voice; use one of Emily, James" in await world.reply(unknown)


async def test_lipsync_button_opens_a_dialog_whose_words_make_a_speaking_video(
    world: World,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    fake = world.fake
    async with world.running():
        first = await a_v5_video(world)
        parent = await world.job_of(first)
        nosy = await fake.click(first, f"px:lipsync:{parent.id}", by=world.bob)
        assert await world.reply(nosy) == "Only the person who asked for this video can use its buttons."
        opened = await fake.click(first, f"px:lipsync:{parent.id}", by=world.alice)
        dialog = await fake.wait_for(lambda: opened.modal, what="the lip-sync dialog")
        assert dialog["title"] == "🗣 Lip-sync: what should it say?"
        submitted = await fake.submit_modal(opened, {"prompt": "Ahoy there", "voice": "liam"}, by=world.alice)
        spoken = await world.video(submitted)
        job = await world.job_of(spoken)
        assert (job.request.kind, job.action, job.parent_id) == (JobKind.LIPSYNC, ResultAction.LIPSYNC, parent.id)
        body = sandbox.bodies[job.video_id or ""]
        assert (body["video_id"], body["prompt"], body["speaker_id"]) == (parent.video_id, "Ahoy there", "4")
        assert stream_types(spoken.attachments[0].data) == ["video", "audio"]


async def test_lipsync_command_takes_an_audio_attachment_and_voices_lists_the_samples(
    world: World,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    fake = world.fake
    async with world.running():
        parent = await world.job_of(await a_v5_video(world))
        listed = await fake.slash("voices", by=world.alice)
        text = await world.reply(listed)
        assert "• Emily — http://" in text and "/media/voice/1.wav" in text

        clip = fake.upload("hello.ogg", voice_note(1.2), "audio/ogg")
        asked = await fake.slash("lipsync", by=world.alice, job=parent.id, audio=clip)
        spoken = await world.video(asked)
        body = sandbox.bodies[(await world.job_of(spoken)).video_id or ""]
        assert sandbox.uploads.get(body["audio_path"].removeprefix("upload/")).content_type == "audio/wav"
        assert stream_types(spoken.attachments[0].data) == ["video", "audio"]

        notes = fake.upload("notes.txt", b"not audio", "text/plain")
        refused = await fake.slash("lipsync", by=world.alice, job=parent.id, audio=notes)
        assert (await world.reply(refused)).startswith("audio: is text/plain; send a voice note or an audio file")
        both = await fake.slash("lipsync", by=world.alice, job=parent.id, text="hi", audio=clip)
        assert (await world.reply(both)).startswith("text: give words to speak or an audio track, not both")
        nothing = await fake.slash("lipsync", by=world.alice, job=parent.id)
        assert (await world.reply(nothing)).startswith("text: is empty; give the words to speak")
