"""Telegram: delivering results through what Telegram throws at a bot — 429s, 413, blocked users,
vanished messages — and across a restart."""

from __future__ import annotations

import logging

from bot.domain import JobState
from tests.fakes.telegram_api import MESSAGE_TO_EDIT_NOT_FOUND, FakeChat, FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    BOB,
    OPERATOR,
    OPERATOR_CHAT,
    RunningBot,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    replies_to,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    videos,
    wait_text_reply,
    wait_videos,
)
from tests.harness import eventually

PALS = FakeChat(id=-4242, type="group", title="Pix pals")  # a basic group, upgraded in a test


def outcomes(fake: FakeTelegram, method: str) -> list[int]:
    return [call.status for call in fake.calls_to(method)]


async def only_job(bot: RunningBot, user=ALICE):
    [job] = await eventually(lambda: bot.core.service.recent_jobs(user_ref(user)), what="the job to exist")
    return job


async def test_a_429_on_a_progress_edit_defers_the_edit(fake, bot, sandbox) -> None:
    sandbox.config.generation_seconds = 2.0  # long enough for the deferred edit to come due
    fake.fail_next("editMessageText", 429, retry_after=1)
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")

    await wait_videos(fake, ALICE_CHAT)
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done")
    edits = fake.calls_to("editMessageText")
    assert edits[0].status == 429
    assert any(call.ok and call.params["text"].startswith("🎬") for call in edits[1:-1])
    assert len(fake.calls_to("sendVideo")) == 1
    assert fake.spec_violations == []


async def test_a_429_on_send_video_is_waited_out_and_the_video_posted_once(fake, bot) -> None:
    fake.fail_next("sendVideo", 429, retry_after=1)
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")

    [video] = await wait_videos(fake, ALICE_CHAT)
    await bot.delivered(job_id_of(video))
    assert outcomes(fake, "sendVideo") == [429, 200]
    assert len(fake.bot_messages(ALICE_CHAT)) == 2  # the status message and the one video
    assert fake.spec_violations == []


async def test_a_video_telegram_finds_too_large_goes_out_as_a_link_with_the_buttons(fake, bot) -> None:
    fake.upload_limit = 1000
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")

    link = await wait_text_reply(fake, ALICE_CHAT, sent, "🔗")
    job = await bot.delivered((await only_job(bot)).id)
    assert outcomes(fake, "sendVideo") == [413]
    assert link["text"].startswith("a fox in the snow\n") and job.result_url in link["text"]
    assert buttons(link) == [f"px:{action}:{job.id}" for action in ("reroll", "remix", "upscale", "extend", "modify")]
    # Marked final once the link is recorded as delivered.
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done", what="✅ on the status")
    assert fake.spec_violations == []


async def test_a_progress_message_deleted_meanwhile_is_replaced(fake, bot) -> None:
    fake.fail_next("editMessageText", 400, description=MESSAGE_TO_EDIT_NOT_FOUND)
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")

    await wait_videos(fake, ALICE_CHAT)
    job = await bot.delivered((await only_job(bot)).id)
    first, second = [m for m in replies_to(fake, ALICE_CHAT, sent) if "text" in m]
    assert job.status_message_id == str(second["message_id"])
    # Marked final once the video is recorded as delivered.
    await fake.wait_for(
        lambda: [m["text"] for m in replies_to(fake, ALICE_CHAT, sent) if "text" in m][1] == "✅ Done",
        what="✅ on the new status message",
    )
    assert first["text"].startswith("⏳ Queued")  # "gone" as far as Telegram told the bot
    assert fake.spec_violations == []


async def test_a_user_who_blocked_the_bot_gets_nothing_and_the_job_is_settled(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    await wait_text_reply(fake, ALICE_CHAT, sent, "Queued")
    fake.user_blocks_bot(ALICE)

    job = await bot.delivered((await only_job(bot)).id)

    assert job.outcome is JobState.COMPLETED
    assert outcomes(fake, "sendVideo") == [403]
    bob_chat = FakeChat.private(BOB)
    await fake.user_sends_text(bob_chat, BOB, "/create_single a wolf")  # the bot carries on
    await wait_videos(fake, bob_chat)
    assert fake.spec_violations == []


async def test_a_chat_that_is_gone_settles_the_job_without_a_crash(fake, bot) -> None:
    fake.fail_next("sendVideo", 400, description="Bad Request: chat not found")
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")

    job = await bot.delivered((await only_job(bot)).id)

    assert job.outcome is JobState.COMPLETED
    assert outcomes(fake, "sendVideo") == [400]
    assert fake.spec_violations == []


async def test_a_restart_between_submit_and_delivery_delivers_once_and_old_buttons_work(
    tmp_path, sandbox, fake
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake)
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
        [old_video] = await wait_videos(fake, ALICE_CHAT)
        await bot.delivered(job_id_of(old_video))
        sandbox.config.generation_seconds = 60  # still generating when the bot stops
        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a wolf in the rain")

        async def generating():
            jobs = await bot.core.service.recent_jobs(user_ref(ALICE))
            return next((j for j in jobs if j.request.user_prompt == "a wolf in the rain" and j.video_id), None)

        running = await eventually(generating, what="the second job to be submitted")
    assert not running.is_finished
    sandbox.config.generation_seconds = 0.3

    async with running_bot(settings) as bot:
        sandbox.complete_now(running.video_id)
        new_video = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
        assert job_id_of(new_video) == running.id
        await bot.delivered(running.id)
        # The buttons under the video posted before the restart still work.
        query = await fake.user_presses_button(ALICE_CHAT, ALICE, old_video, f"px:reroll:{job_id_of(old_video)}")
        rerolled = (await wait_videos(fake, ALICE_CHAT, 3))[-1]
        assert fake.callback_answers[query["id"]]["text"] == "Rerolling…"
        await bot.delivered(job_id_of(rerolled))

    assert [job_id_of(v) for v in fake.bot_messages(ALICE_CHAT) if "video" in v].count(running.id) == 1
    statuses = [m for m in replies_to(fake, ALICE_CHAT, sent) if "text" in m]
    assert [m["text"] for m in statuses] == ["✅ Done"]  # one progress message, edited across the restart
    assert fake.spec_violations == []


async def test_a_group_that_became_a_supergroup_gets_its_video_there(fake, bot, sandbox) -> None:
    sandbox.config.generation_seconds = 60  # still generating when the group is upgraded
    sent = await fake.user_sends_text(PALS, ALICE, "/create_single a fox in the snow")
    await wait_text_reply(fake, PALS, sent, "Queued")

    async def submitted():
        job = await only_job(bot)
        return job if job.video_id else None

    job = await eventually(submitted, what="the job to be submitted")
    supergroup = await fake.group_becomes_supergroup(PALS, ALICE)
    sandbox.complete_now(job.video_id)

    [video] = await wait_videos(fake, supergroup)
    done = await bot.delivered(job.id)
    assert job_id_of(video) == job.id and video["caption"].startswith("a fox in the snow")
    assert done.outcome is JobState.COMPLETED
    assert done.chat.chat_id == str(supergroup.id)  # later posts for this job go there too
    assert videos(fake, PALS) == []
    assert fake.spec_violations == []


async def test_the_bot_token_never_reaches_the_logs(fake, bot, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next("getFile", 500)
    photo = await fake.user_sends_photo(ALICE_CHAT, ALICE, b"\x89PNG not really", caption="/animate")
    assert "went wrong" in (await wait_text_reply(fake, ALICE_CHAT, photo, "Sorry"))["text"]
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    await wait_videos(fake, ALICE_CHAT)

    secret = fake.token.split(":", 1)[1]
    assert any(record.levelno >= logging.ERROR for record in caplog.records)  # the failure was logged …
    assert secret not in caplog.text  # … without the token
    assert fake.spec_violations == []


async def test_a_failed_job_is_explained_in_plain_words(fake, bot) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a volcano about to explode")

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "❌ PixVerse")
    assert reply["text"].startswith("❌ PixVerse could not make this video")
    job = await bot.delivered((await only_job(bot)).id)
    assert job.outcome is JobState.FAILED
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "❌ Not made")
    assert videos(fake, ALICE_CHAT) == []
    assert fake.spec_violations == []


async def test_operator_alerts_reach_the_operators_private_chat(fake, bot) -> None:
    hello = await fake.user_sends_text(OPERATOR_CHAT, OPERATOR, "/start")  # Telegram needs the chat to exist
    await wait_text_reply(fake, OPERATOR_CHAT, hello)

    await bot.core.progress.alert_operator("PixVerse account alice@sandbox.local needs attention")

    [alert] = [m for m in fake.bot_messages(OPERATOR_CHAT) if "needs attention" in m.get("text", "")]
    assert alert["text"] == "⚠️ PixVerse account alice@sandbox.local needs attention"
    assert fake.spec_violations == []


async def test_a_made_video_that_could_not_be_posted_is_not_called_not_made(fake, tmp_path, sandbox) -> None:
    """Given up after DELIVERY_MAX_ATTEMPTS: the user is told the video was made (with its
    link), and the progress message agrees with that rather than saying "Not made"."""
    settings = telegram_settings(tmp_path, sandbox, fake, delivery_max_attempts=2, delivery_retry_initial=0.1)
    fake.fail_next("sendVideo", 500, times=2)
    async with running_bot(settings) as running:
        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
        told = await wait_text_reply(fake, ALICE_CHAT, sent, "The video was made")
        job = await running.delivered((await only_job(running)).id)
        # Marked final once the job is recorded as delivered.
        status = await fake.wait_for(
            lambda: (text := status_message(fake, ALICE_CHAT, sent)["text"]).startswith("⚠️") and text,
            what="the status marked final",
        )
    assert job.outcome is JobState.COMPLETED and job.result_url in told["text"]
    assert outcomes(fake, "sendVideo") == [500, 500]
    assert status != "❌ Not made" and "made" in status and "not posted" in status
    assert fake.spec_violations == []
