"""Telegram: /create_single and /animate from the first message to the video in the chat.

The real aiogram bot polls FakeTelegram; the core talks to the sandbox.
"""

from __future__ import annotations

import gc
import weakref

from aiogram.methods import Response
from aiogram.types import Message

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    BOB,
    GROUP,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    replies_to,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)
from tests.harness import tiny_png


async def test_create_single_ends_as_a_video_replying_to_the_command_with_its_buttons(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox running through snow --ar 9:16")

    [video] = await wait_videos(fake, ALICE_CHAT)
    job_id = job_id_of(video)
    assert video["reply_to_message"]["message_id"] == sent["message_id"]
    assert buttons(video) == [f"px:{action}:{job_id}" for action in ("reroll", "remix", "upscale", "extend", "modify")]
    assert video["caption"].startswith("a fox running through snow\n") and "9:16" in video["caption"]
    [send_video] = fake.calls_to("sendVideo")
    assert send_video.params["reply_parameters"]["allow_sending_without_reply"] is True
    assert fake.file(video["video"]["file_id"]).data[4:8] == b"ftyp"  # the sandbox's real MP4
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done")
    assert [m["message_id"] for m in replies_to(fake, ALICE_CHAT, sent)] == [
        status_message(fake, ALICE_CHAT, sent)["message_id"],
        video["message_id"],
    ]
    assert (await bot.delivered(job_id)).video_id
    assert fake.spec_violations == []


async def test_progress_is_one_message_edited_in_place(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a red kite over a beach")

    await wait_videos(fake, ALICE_CHAT)
    status = await fake.wait_for(lambda: (m := status_message(fake, ALICE_CHAT, sent))["text"] == "✅ Done" and m)
    [first] = [c for c in fake.calls_to("sendMessage") if c.ok]
    assert first.result["message_id"] == status["message_id"]
    assert first.params["text"].startswith("⏳ Queued — #1 in line: a red kite")
    edits = [
        c.params["text"] for c in fake.calls_to("editMessageText") if c.params["message_id"] == status["message_id"]
    ]
    assert any(text.startswith("🎬 ") for text in edits) and edits[-1] == "✅ Done"
    assert fake.spec_violations == []


async def test_commands_menu_is_set_at_start(fake, bot) -> None:
    menus = {tuple(c.params.get("scope", {}).items()): c.params["commands"] for c in fake.calls_to("setMyCommands")}
    default = [c["command"] for c in menus[(("type", "default"),)]]
    admins = [c["command"] for c in menus[(("type", "all_chat_administrators"),)]]
    assert {"create_single", "animate", "jobs", "status", "help"} <= set(default)
    assert {"setquota", "ban", "filter", "filtermode", "bot"} <= set(admins) - set(default)
    assert fake.spec_violations == []


async def test_animate_a_photo_uses_the_largest_size(fake, bot) -> None:
    sent = await fake.user_sends_photo(
        ALICE_CHAT, ALICE, tiny_png(64, 48), caption="/animate blinking --motion 7 --hd yes"
    )

    [video] = await wait_videos(fake, ALICE_CHAT)
    assert video["reply_to_message"]["message_id"] == sent["message_id"]
    [get_file] = fake.calls_to("getFile")
    assert get_file.params["file_id"] == sent["photo"][-1]["file_id"]
    assert "motion 7" in video["caption"] and "720p" in video["caption"]
    assert fake.spec_violations == []


async def test_animate_an_image_sent_as_a_file(fake, bot) -> None:
    await fake.user_sends_document(ALICE_CHAT, ALICE, tiny_png(), file_name="cat.png", caption="/animate")

    [video] = await wait_videos(fake, ALICE_CHAT)
    assert "animate" not in video["caption"].split("\n")[0]  # no prompt: the caption starts with the settings
    assert fake.spec_violations == []


async def test_animate_as_a_reply_to_a_photo(fake, bot) -> None:
    photo = await fake.user_sends_photo(ALICE_CHAT, ALICE, tiny_png())
    await wait_text_reply(fake, ALICE_CHAT, photo, "/animate")  # a bare photo gets a hint in private

    await fake.user_sends_text(ALICE_CHAT, ALICE, "/animate waving hello", reply_to=photo)

    [video] = await wait_videos(fake, ALICE_CHAT)
    assert video["caption"].startswith("waving hello\n")
    assert fake.spec_violations == []


async def test_animate_refuses_what_is_not_a_picture_or_too_large(fake, bot) -> None:
    no_image = await fake.user_sends_text(ALICE_CHAT, ALICE, "/animate smiling")
    reply = await wait_text_reply(fake, ALICE_CHAT, no_image, "image")
    assert "image: is missing" in reply["text"] and "Usage:" in reply["text"]

    text_file = await fake.user_sends_document(
        ALICE_CHAT, ALICE, b"just some text", file_name="notes.txt", caption="/animate"
    )
    reply = await wait_text_reply(fake, ALICE_CHAT, text_file, "image")
    assert "not a picture" in reply["text"]

    huge = await fake.user_sends_document(
        ALICE_CHAT, ALICE, tiny_png() + bytes(11 * 1024 * 1024), file_name="big.png", caption="/animate"
    )
    reply = await wait_text_reply(fake, ALICE_CHAT, huge, "image")
    assert "the limit is 10.5 MB" in reply["text"]
    assert len(fake.calls_to("getFile")) == 1  # the huge one was refused by its size, before any download
    assert fake.spec_violations == []


async def test_a_malformed_option_gets_a_usage_reply_naming_it(fake, bot) -> None:
    bad_value = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --ar 2:1")
    reply = await wait_text_reply(fake, ALICE_CHAT, bad_value, "--ar")
    # Named as the user typed it, not by the field behind it (aspect_ratio).
    assert "--ar: '2:1' is not supported; use one of 16:9, 9:16, 1:1, 4:3, 3:4" in reply["text"]
    assert "Usage: /create_single <prompt>" in reply["text"]

    unknown = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --colour red")
    reply = await wait_text_reply(fake, ALICE_CHAT, unknown, "--colour")
    assert "--colour: is not an option here; options are --style/-s, --ar" in reply["text"]
    assert await bot.core.service.recent_jobs(user_ref(ALICE)) == []
    assert fake.spec_violations == []


async def test_create_single_without_a_prompt_asks_for_it_and_the_answer_starts_the_job(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single --ar 9:16")
    question = await wait_text_reply(fake, ALICE_CHAT, sent, "What should the video show?")
    [asked] = [c for c in fake.calls_to("sendMessage") if c.ok and c.result["message_id"] == question["message_id"]]
    assert asked.params["reply_markup"]["force_reply"] is True

    await fake.user_sends_text(ALICE_CHAT, ALICE, "a lighthouse at dusk --seed 7", reply_to=question)

    [video] = await wait_videos(fake, ALICE_CHAT)
    assert video["caption"].startswith("a lighthouse at dusk\n")
    assert "9:16" in video["caption"] and "seed 7" in video["caption"]
    assert fake.spec_violations == []


async def test_in_a_group_only_commands_for_this_bot_and_answers_to_it_are_taken(fake, bot) -> None:
    other_bot = await fake.user_sends_text(GROUP, BOB, "/create_single@OtherBot a fox")
    assert not await bot.handled.finished(fake.updates[-1])
    chatter = await fake.user_sends_text(GROUP, BOB, "hello everyone")
    assert not await bot.handled.finished(fake.updates[-1])

    mine = await fake.user_sends_text(GROUP, BOB, "/create_single@PixTestBot a fox")

    [video] = await wait_videos(fake, GROUP)
    assert video["reply_to_message"]["message_id"] == mine["message_id"]
    thanks = await fake.user_sends_text(GROUP, BOB, "nice!", reply_to=video)
    assert not await bot.handled.finished(fake.updates[-1])
    assert [replies_to(fake, GROUP, m) for m in (other_bot, chatter, thanks)] == [[], [], []]
    assert fake.spec_violations == []


async def test_help_jobs_and_status(fake, bot) -> None:
    help_ = await fake.user_sends_text(ALICE_CHAT, ALICE, "/help")
    reply = await wait_text_reply(fake, ALICE_CHAT, help_, "/create_single")
    assert "Admin commands" in reply["text"] and "/filtermode" in reply["text"]

    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a paper boat")
    [video] = await wait_videos(fake, ALICE_CHAT)
    job_id = job_id_of(video)
    await bot.delivered(job_id)

    jobs = await fake.user_sends_text(ALICE_CHAT, ALICE, "/jobs")
    assert f"{job_id} · done · a paper boat" in (await wait_text_reply(fake, ALICE_CHAT, jobs, job_id))["text"]
    status = await fake.user_sends_text(ALICE_CHAT, ALICE, f"/status {job_id}")
    assert f"Job {job_id}: done" in (await wait_text_reply(fake, ALICE_CHAT, status, job_id))["text"]
    missing = await fake.user_sends_text(ALICE_CHAT, ALICE, "/status nope")
    assert "No job 'nope' found" in (await wait_text_reply(fake, ALICE_CHAT, missing, "nope"))["text"]
    assert fake.spec_violations == []


async def test_with_a_local_bot_api_server_pictures_are_read_from_its_disk(tmp_path, sandbox) -> None:
    async with FakeTelegram(local_mode=True) as local, running_bot(telegram_settings(tmp_path, sandbox, local)) as bot:
        await local.user_sends_document(ALICE_CHAT, ALICE, tiny_png(), file_name="cat.png", caption="/animate purring")

        [video] = await wait_videos(local, ALICE_CHAT)
        assert video["caption"].startswith("purring\n")
        assert local.downloads == []  # read from the path getFile gave, not over HTTP
        assert bot.adapter.notifier.upload_limit(await bot.job(job_id_of(video))) == 2000 * 1024 * 1024
        assert local.spec_violations == []


async def test_short_options_with_one_dash_work_as_the_readme_lists_them(fake, bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a dog -s Anime -m v5 -q 720p --seed 9")

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.delivered(job_id_of(video))
    assert job.request.user_prompt == "a dog"
    assert (job.request.style, job.request.model, job.request.quality) == ("Anime", "v5", "720p")
    assert fake.spec_violations == []


async def test_a_word_that_looks_like_an_option_is_refused_not_charged(fake, bot) -> None:
    for text, named in (("/create_single a dog -x 3", "-x"), ("/create_single a dog --foo", "--foo")):
        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, text)
        reply = await wait_text_reply(fake, ALICE_CHAT, sent, named)
        assert f"{named}: is not an option here; options are --style/-s, --ar" in reply["text"]
    # Errors name the option as typed: one dash, or the long name behind a field called otherwise.
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a dog -q 4k")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "-q")
    assert "-q: '4k' is not supported; use one of 360p, 540p, 720p, 1080p" in reply["text"]
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a dog --seed -5")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "--seed")
    assert "--seed: -5 is out of range" in reply["text"] and "seed_value" not in reply["text"]
    # "-20" is a number in the prompt, not an option.
    assert await bot.core.service.recent_jobs(user_ref(ALICE)) == []
    status = await bot.core.quotas.status(user_ref(ALICE))
    assert status[0].used == 0 and status[0].reserved == 0
    assert fake.spec_violations == []


async def test_an_invisible_prompt_is_no_prompt_and_control_characters_are_stripped(tmp_path, sandbox, fake) -> None:
    async with running_bot(telegram_settings(tmp_path, sandbox, fake, quota_per_user="2")) as bot:
        invisible = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single \u200b\u2060 \x1b[31m\u202e\x07")
        question = await wait_text_reply(fake, ALICE_CHAT, invisible, "What should the video show?")
        answer = await fake.user_sends_text(ALICE_CHAT, ALICE, "\u200b\ufeff\u00ad\x1b[0m", reply_to=question)
        await wait_text_reply(fake, ALICE_CHAT, answer, "is empty; reply with words that describe the video")
        quota = await fake.user_sends_text(ALICE_CHAT, ALICE, "/quota")
        await wait_text_reply(fake, ALICE_CHAT, quota, "Your quota: 2 of 2 videos left")
        assert await bot.core.service.recent_jobs(user_ref(ALICE)) == []

        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox\x1b[2J in\x00 the\u200b snow\x1b]0;x\x07")
        [video] = await wait_videos(fake, ALICE_CHAT)
        assert video["caption"].startswith("a fox in the snow\n")
        assert (await bot.job(job_id_of(video))).request.user_prompt == "a fox in the snow"
        [sent] = [video.prompt for video in sandbox.videos.values()]
        assert sent.startswith("a fox in the snow")
        shown = [call.params.get("text", "") for call in fake.calls_to("sendMessage")]
        assert not [text for text in shown if "\x1b" in text or "\x00" in text]
        assert fake.spec_violations == []


# ---------------------------------------------------------------- options are kept as given, or refused


async def test_hd_and_an_explicit_quality_that_disagree_are_refused_not_overridden(fake, bot, sandbox) -> None:
    clash = await fake.user_sends_photo(
        ALICE_CHAT, ALICE, tiny_png(), caption="/animate blink --hd yes --quality 1080p"
    )
    reply = await wait_text_reply(fake, ALICE_CHAT, clash, "--quality")
    assert "--quality: 1080p contradicts hd_quality yes (which means 720p here); give only one of them" in reply["text"]

    await fake.user_sends_photo(ALICE_CHAT, ALICE, tiny_png(), caption="/animate blink --hd yes --quality 720p")
    await fake.user_sends_photo(ALICE_CHAT, ALICE, tiny_png(), caption="/animate blink --quality 1080p")
    made = [await bot.job(job_id_of(v)) for v in await wait_videos(fake, ALICE_CHAT, 2)]
    assert sorted(job.request.quality for job in made) == ["1080p", "720p"]
    assert all(sandbox.videos[job.video_id or ""].quality == job.request.quality for job in made)  # as sent
    assert fake.spec_violations == []


async def test_the_operators_audio_default_yields_to_a_model_without_audio(tmp_path, sandbox, fake) -> None:
    async with running_bot(telegram_settings(tmp_path, sandbox, fake, default_audio=True)) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
        [with_audio] = await wait_videos(fake, ALICE_CHAT)
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow --model v5")
        without = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
        asked = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow --model v5 --audio")
        refused = await wait_text_reply(fake, ALICE_CHAT, asked, "audio")
        default_job, v5_job = await bot.job(job_id_of(with_audio)), await bot.job(job_id_of(without))
    assert default_job.request.audio and "audio" in with_audio["caption"]  # v5.5, the default model, has audio
    assert (v5_job.request.model, v5_job.request.audio) == ("v5", False)
    assert "audio" not in without["caption"].split("\n")[1]
    # Only the user's own --audio is refused, naming the models that have it.
    assert "audio is only available on models v5.5, v5.6, not v5" in refused["text"]
    assert fake.spec_violations == []


GIF = (
    b"GIF89a\x02\x00\x02\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x02\x00\x02\x00\x00\x02\x02D\x01\x00;"
)


async def test_a_gif_is_animated_and_uploaded_as_a_gif(fake, bot, sandbox) -> None:
    await fake.user_sends_photo(ALICE_CHAT, ALICE, GIF, caption="/animate blinking")
    await fake.user_sends_animation(
        ALICE_CHAT, ALICE, GIF, mime_type="image/gif", file_name="wave.gif", caption="/animate"
    )
    clip = await fake.user_sends_animation(ALICE_CHAT, ALICE, b"\0\0\0\x18ftypmp42", caption="/animate")

    refused = await wait_text_reply(fake, ALICE_CHAT, clip, "image")
    assert "image: is an animation Telegram delivers as an MP4 video" in refused["text"]
    assert "JPEG, PNG, WebP or GIF" in refused["text"]
    made = [await bot.job(job_id_of(v)) for v in await wait_videos(fake, ALICE_CHAT, 2)]
    uploads = [sandbox.uploads.get((job.request.image_path or "").removeprefix("upload/")) for job in made]
    assert [(u.content_type, u.data) for u in uploads if u] == [("image/gif", GIF)] * 2
    assert len(fake.calls_to("getFile")) == 2  # the MP4 clip was refused before any download
    assert fake.spec_violations == []


async def test_the_model_aiogram_reads_answers_with_survives_garbage_collection(fake, bot) -> None:
    # aiogram parametrizes Response[...] for every answer and pydantic caches it only
    # weakly: were nothing to keep it, each collection would make the next answer
    # rebuild the model and its validator (a tenth of the bot's CPU per command).
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox")
    await fake.wait_for(lambda: any("text" in m for m in replies_to(fake, ALICE_CHAT, sent)))
    answered_with = weakref.ref(Response[Message])
    gc.collect()
    assert answered_with() is not None, "Response[Message] was collected: every answer rebuilds it"


async def test_a_flag_followed_by_yes_or_no_takes_it_as_its_value(fake, bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a dog barking --audio yes --offpeak no")

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.delivered(job_id_of(video))
    # Neither word became part of the prompt; both reached their flags.
    assert job.request.user_prompt == "a dog barking"
    assert job.request.audio is True and job.request.off_peak is False
    assert fake.spec_violations == []
