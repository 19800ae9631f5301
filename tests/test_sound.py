"""Sound and speech: --sfx, --sound, --say/--voice on create, /voices, and lip-sync of the
bot's own videos (🗣 button, /lipsync, voice notes) — through the real aiogram adapter
against FakeTelegram, the real core and the sandbox."""

from __future__ import annotations

import io
import re
from pathlib import Path

import av
import numpy as np
import pytest

from bot.domain import JobKind
from bot.pricing import Pricing
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

V5_SPEECH = (
    '/create_single a lighthouse at dusk --model v5 --sfx "waves crashing" --sound --say "Hello sailors" --voice emily'
)


def voice_note(seconds: float) -> bytes:
    """An OGG/Opus voice note, as Telegram records them: a tone `seconds` long."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        t = np.arange(int(48_000 * seconds)) / 48_000
        frame = av.AudioFrame.from_ndarray(
            (np.sin(2 * np.pi * 330 * t) * 8000).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def stream_types(mp4: bytes) -> list[str]:
    with av.open(io.BytesIO(mp4)) as container:
        return [stream.type for stream in container.streams]


def delivered_file(fake: FakeTelegram, video: dict) -> bytes:
    return fake.file(video["video"]["file_id"]).data


async def press(fake: FakeTelegram, user, message, action: str) -> dict:
    query = await fake.user_presses_button(ALICE_CHAT, user, message, f"px:{action}:{job_id_of(message)}")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers, what=f"the answer to pressing {action}")
    return fake.callback_answers[query["id"]]


async def refusal(fake: FakeTelegram, text: str, containing: str) -> str:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, text)
    return (await wait_text_reply(fake, ALICE_CHAT, sent, containing))["text"]


async def test_v5_sound_effect_auto_sound_and_speech_reach_pixverse_and_the_video_has_sound(
    tmp_path: Path, sandbox, fake: FakeTelegram
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake, quota_unit="credits", quota_per_user="100000")
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, V5_SPEECH)
        [video] = await wait_videos(fake, ALICE_CHAT)
        job = await bot.delivered(job_id_of(video))
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))

    body = sandbox.bodies[job.video_id]
    assert body["model"] == "v5"
    assert body["sound_effect_prompt"] == "waves crashing"
    assert body["auto_sound"] is True
    assert body["lip_sync_tts_prompt"] == "Hello sailors"
    assert body["lip_sync_tts_speaker_id"] == "1"  # Emily, looked up by name in any case
    assert "audio" not in body  # v5 has no integrated audio
    assert stream_types(delivered_file(fake, video)) == ["video", "audio"]
    assert "says “Hello sailors” (Emily)" in video["caption"] and "sfx “waves crashing”" in video["caption"]
    assert "lipsync" in [b.split(":")[1] for b in buttons(video)]  # a v5 video can be lip-synced
    # Charged through the quota ledger: v5 publishes no extra price for its sound.
    assert mine.used == Pricing.load().credits(job.request) == 45
    assert fake.spec_violations == []


async def test_a_plain_video_has_no_sound_track(fake, bot: RunningBot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a quiet lake --model v5")
    [video] = await wait_videos(fake, ALICE_CHAT)
    assert stream_types(delivered_file(fake, video)) == ["video"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # v5.5 (the default model here) and v5.6 make sound with --audio: refused, naming v5.
        (
            '--sfx "waves"',
            "--sfx: a sound effect is not available on v5.5; models that have it: v5; v5.5 makes sound with --audio",
        ),
        ("--sound --model v5.6", "--sound: auto sound is not available on v5.6; models that have it: v5"),
        ('--say "hi" --model v5-fast', "--say: speech is not available on v5-fast; models that have it: v5"),
        (
            '--model v5 --say "hi" --voice Nobody',
            "--voice: 'Nobody' is not a voice; use one of Emily, James, Isabella, Liam, Chloe, Adrian",
        ),
        ("--model v5 --voice Emily", '--voice: needs words to speak: add --say "…"'),
        (f'--model v5 --say "{"x" * 141}"', "--say: is 141 characters long; at most 140 are allowed"),
        # The upstream's own limit, refused in the words typed (not as sound_effect_prompt).
        (f'--model v5 --sfx "{"w" * 2049}"', "--sfx: is 2049 characters long; at most 2048 are allowed"),
        ("--audio --model v5", "audio is only available on models v5.5, v5.6, not v5"),
    ],
)
async def test_each_sound_option_is_refused_where_the_model_lacks_it(fake, bot, options: str, expected: str) -> None:
    text = await refusal(fake, f"/create_single a boat {options}", expected.split(":")[0])
    assert expected in text
    assert fake.calls_to("sendVideo") == []


async def test_the_sound_effect_and_the_speech_are_moderated_like_the_prompt(fake, bot) -> None:
    for option in ('--sfx "nudity"', '--say "nudity now"'):
        text = await refusal(fake, f"/create_single a calm beach --model v5 {option}", "blocked term")
        assert "blocked term “nudity”" in text
    assert await bot.core.jobs.recent_for_user(user_ref(ALICE)) == []


async def test_animate_takes_the_sound_options_too(fake, bot, sandbox) -> None:
    from tests.test_telegram_generation import tiny_png

    photo = await fake.user_sends_photo(
        ALICE_CHAT, ALICE, tiny_png(), caption='/animate waving --model v5 --say "Hi there" --voice james'
    )
    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.delivered(job_id_of(video))
    assert sandbox.bodies[job.video_id]["lip_sync_tts_speaker_id"] == "2"
    assert photo["message_id"] == video["reply_to_message"]["message_id"]
    assert stream_types(delivered_file(fake, video)) == ["video", "audio"]


async def test_voices_lists_each_voice_with_its_sample_as_audio(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/voices")
    listing = await wait_text_reply(fake, ALICE_CHAT, sent, "Voices")
    assert "• Emily — http://" in listing["text"] and "Adrian" in listing["text"]
    [album] = await fake.wait_for_method("sendMediaGroup")
    assert album.ok and len(album.result) == 6
    # Telegram fetched every sample from the sandbox: real WAV audio.
    samples = [fake.file(message["audio"]["file_id"]).data for message in album.result]
    assert all(sample.startswith(b"RIFF") for sample in samples)
    assert [m["caption"] for m in album.result] == ["Emily", "James", "Isabella", "Liam", "Chloe", "Adrian"]
    assert fake.spec_violations == []


async def a_v5_video(fake: FakeTelegram) -> dict:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a sailor at the helm --model v5")
    [video] = await wait_videos(fake, ALICE_CHAT)
    return video


async def test_lipsync_button_asks_and_the_words_make_a_speaking_video(tmp_path: Path, sandbox, fake) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake, quota_unit="credits", quota_per_user="100000")
    async with running_bot(settings) as bot:
        first = await a_v5_video(fake)
        answer = await press(fake, ALICE, first, "lipsync")
        assert answer["text"] == "Reply to my message with the words to say, or a voice note."
        question = await wait_text_reply(fake, ALICE_CHAT, first, f"Lip-sync of job {job_id_of(first)}")
        await fake.user_sends_text(ALICE_CHAT, ALICE, "Ahoy there --voice JAMES", reply_to=question)
        spoken = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
        parent, job = await bot.job(job_id_of(first)), await bot.delivered(job_id_of(spoken))
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))

    assert (job.request.kind, job.parent_id, job.action) == (JobKind.LIPSYNC, parent.id, "lipsync")
    body = sandbox.bodies[job.video_id]
    assert body == {"video_id": parent.video_id, "prompt": "Ahoy there", "speaker_id": "2", "replyRef": job.id} | {
        k: v for k, v in body.items() if k == "replyUrl"
    }
    assert sandbox.videos[job.video_id].email == sandbox.videos[parent.video_id].email  # the video's own account
    assert stream_types(delivered_file(fake, spoken)) == ["video", "audio"]
    assert spoken["caption"].split("\n")[1].startswith("lipsync · says “Ahoy there” · voice James")
    # A lip-sync costs like a new video of the lip-synced one's model, quality and length.
    assert mine.used == 2 * Pricing.load().credits(parent.request)
    assert fake.spec_violations == []


async def test_a_voice_note_answer_is_converted_and_uploaded_as_wav(fake, bot: RunningBot, sandbox) -> None:
    first = await a_v5_video(fake)
    await press(fake, ALICE, first, "lipsync")
    question = await wait_text_reply(fake, ALICE_CHAT, first, "Lip-sync of job")
    await fake.user_sends_voice(ALICE_CHAT, ALICE, voice_note(2.5), duration=3, reply_to=question)
    spoken = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    job = await bot.delivered(job_id_of(spoken))

    body = sandbox.bodies[job.video_id]
    assert set(body) >= {"video_id", "audio_path"} and "prompt" not in body
    upload = sandbox.uploads.get(body["audio_path"].removeprefix("upload/"))
    assert upload.content_type == "audio/wav"
    with av.open(io.BytesIO(upload.data)) as wav:
        assert wav.format.name == "wav" and 2.4 <= wav.duration / 1e6 <= 2.6
    assert stream_types(delivered_file(fake, spoken)) == ["video", "audio"]
    assert "your audio" in spoken["caption"]


async def test_lipsync_command_in_reply_to_a_video_with_a_voice_note_as_its_caption(fake, bot, sandbox) -> None:
    first = await a_v5_video(fake)
    await fake.user_sends_voice(ALICE_CHAT, ALICE, voice_note(1.0), duration=1, caption="/lipsync", reply_to=first)
    spoken = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    job = await bot.delivered(job_id_of(spoken))
    assert job.parent_id == job_id_of(first) and "audio_path" in sandbox.bodies[job.video_id]

    await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync Fair winds --voice chloe", reply_to=first)
    spoken = (await wait_videos(fake, ALICE_CHAT, 3))[-1]
    job = await bot.delivered(job_id_of(spoken))
    assert (sandbox.bodies[job.video_id]["prompt"], sandbox.bodies[job.video_id]["speaker_id"]) == ("Fair winds", "5")


async def test_lipsync_refusals_name_what_is_wrong_and_the_limit(fake, bot) -> None:
    first = await a_v5_video(fake)
    jobs_before = len(await bot.core.jobs.recent_for_user(user_ref(ALICE)))

    async def reply_to(message: dict, containing: str) -> str:
        return (await wait_text_reply(fake, ALICE_CHAT, message, containing))["text"]

    not_a_reply = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync hello")
    assert "video: is missing; reply /lipsync <words>" in await reply_to(not_a_reply, "video")
    empty = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync", reply_to=first)
    assert "text: is empty; give the words to speak (up to 200 characters)" in await reply_to(empty, "text")
    long = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync " + "a" * 201, reply_to=first)
    assert "text: is 201 characters long; lip-sync speaks at most 200" in await reply_to(long, "text")
    unknown = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync hi --voice Zed", reply_to=first)
    assert "--voice: 'Zed' is not a voice; use one of Emily" in await reply_to(unknown, "voice")
    blocked = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync nudity please", reply_to=first)
    assert "blocked term “nudity”" in await reply_to(blocked, "blocked")
    getfiles = len(fake.calls_to("getFile"))
    too_long = await fake.user_sends_voice(
        ALICE_CHAT, ALICE, voice_note(0.5), duration=61, caption="/lipsync", reply_to=first
    )
    assert "audio: is 61 seconds long; lip-sync takes at most 60 seconds" in await reply_to(too_long, "audio")
    too_big = await fake.user_sends_voice(
        ALICE_CHAT, ALICE, voice_note(0.5), duration=5, caption="/lipsync", reply_to=first, file_size=25 * 2**20
    )
    assert "audio: is 25.0 MB; Telegram lets a bot download at most 20 MB" in await reply_to(too_big, "audio")
    both = await fake.user_sends_voice(
        ALICE_CHAT, ALICE, voice_note(0.5), duration=5, caption="/lipsync hello there", reply_to=first
    )
    assert "text: give words to speak or an audio track, not both" in await reply_to(both, "not both")
    assert len(fake.calls_to("getFile")) == getfiles  # all refused before anything was fetched
    really_long = await fake.user_sends_voice(
        ALICE_CHAT, ALICE, voice_note(61.5), duration=0, caption="/lipsync", reply_to=first
    )  # Telegram did not say how long: the decoded length decides
    assert "audio: is longer than 60 seconds; lip-sync takes at most 60" in await reply_to(really_long, "audio")
    assert len(await bot.core.jobs.recent_for_user(user_ref(ALICE))) == jobs_before  # nothing queued, nothing charged


async def test_videos_of_models_that_cannot_lipsync_have_no_button_and_refuse_the_command(fake, bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v5.5")
    [video] = await wait_videos(fake, ALICE_CHAT)
    assert "lipsync" not in [b.split(":")[1] for b in buttons(video)]
    asked = await fake.user_sends_text(ALICE_CHAT, ALICE, "/lipsync hello", reply_to=video)
    text = (await wait_text_reply(fake, ALICE_CHAT, asked, "lip-synced"))["text"]
    assert "Videos made with v5.5 cannot be lip-synced; only videos made with v5 can." in text


async def test_console_sound_options_voices_and_lipsync_with_words_and_an_audio_file(tmp_path: Path) -> None:
    from adapters.console.app import run_console
    from bot.bootstrap import open_core
    from bot.sandbox import SandboxConfig, running_sandbox
    from tests.harness import fast_settings

    clip = tmp_path / "hello.ogg"
    clip.write_bytes(voice_note(1.5))
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = (
                "/voices\n"
                '/create_single a harbour --model v5 --sfx "gulls" --say "Morning all" --voice liam\n'
                '/create_single a harbour --sfx "gulls"\n'
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            text = out.getvalue()
            assert "• Emily — http://" in text and "• Adrian — http://" in text
            [(job_id, path)] = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", text)
            assert stream_types(Path(path).read_bytes()) == ["video", "audio"]
            assert f"/lipsync {job_id} <words> [--voice NAME] | <audio file>" in text
            assert "--sfx: a sound effect is not available on v5.5; models that have it: v5" in text

            out = io.StringIO()
            script = f"/lipsync {job_id} Good morning --voice isabella\n/lipsync {job_id} {clip}\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0
            done = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", out.getvalue())
            assert len(done) == 2, out.getvalue()
            bodies = [sandbox.bodies[(await core.jobs.get(made)).video_id] for made, _ in done]  # type: ignore[union-attr]
            [spoken] = [body for body in bodies if "prompt" in body]
            [played] = [body for body in bodies if "audio_path" in body]
            assert (spoken["prompt"], spoken["speaker_id"]) == ("Good morning", "3")
            assert sandbox.uploads.get(played["audio_path"].removeprefix("upload/")).content_type == "audio/wav"
            assert all(stream_types(Path(p).read_bytes()) == ["video", "audio"] for _, p in done)


async def test_the_voice_list_is_kept_for_its_ttl_and_survives_a_failed_refresh(sandbox) -> None:
    from pydantic import SecretStr

    from bot.upstream.client import PixVerseClient
    from bot.upstream.errors import ServerError
    from bot.voices import VoiceCatalogue, VoicesUnavailable

    now = [0.0]
    calls: list[str] = []
    async with PixVerseClient(sandbox.base_url, SecretStr(sandbox.config.token)) as client:

        async def fetch():  # type: ignore[no-untyped-def]
            calls.append("GET videos/voices")
            if len(calls) == 3:
                raise ServerError("down", status=503)
            return await client.voices(email=sandbox.config.accounts[0].email)

        voices = VoiceCatalogue(fetch, refresh_seconds=60, clock=lambda: now[0])
        assert [v.name for v in await voices.all()] == ["Emily", "James", "Isabella", "Liam", "Chloe", "Adrian"]
        assert (await voices.find("  chloe ")).speaker_id == "5"
        now[0] = 59.0
        await voices.all()
        assert len(calls) == 1  # within the TTL: no new request
        now[0] = 60.0
        await voices.all()
        assert len(calls) == 2  # the TTL passed: fetched again
        now[0] = 120.0
        assert len(await voices.all()) == 6 and len(calls) == 3  # the refresh failed: the list held still serves

    async def down():  # type: ignore[no-untyped-def]
        raise ServerError("down", status=503)

    with pytest.raises(VoicesUnavailable, match="cannot be fetched"):
        await VoiceCatalogue(down, refresh_seconds=60).all()
