"""Telegram: /queue, /cancel and the ✖️ Cancel button under a progress message, through aiogram."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import JobState
from bot.sandbox import SandboxAccount, SandboxConfig
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    BOB,
    CAROL,
    GROUP,
    RunningBot,
    bot_fixture,
    buttons,
    fake_fixture,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    videos,
    wait_text_reply,
)
from tests.harness import eventually

ACCOUNT = "solo@sandbox.local"
SCHEDULER_DELETES = "/v2/pixverse/scheduler/"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # No free slot: jobs stay queued until a test opens one.
    return SandboxConfig(generation_seconds=30, accounts=[SandboxAccount(ACCOUNT, max_jobs=0)])


async def ask(fake: FakeTelegram, chat, user, text: str, containing: str = "") -> str:
    sent = await fake.user_sends_text(chat, user, text)
    return (await wait_text_reply(fake, chat, sent, containing))["text"]


async def queued_job(fake: FakeTelegram, bot: RunningBot, chat, user, prompt: str) -> tuple[str, dict]:
    """Ask for a video; return its job id (from the ✖️ button) and the command message."""
    command = await fake.user_sends_text(chat, user, f"/create_single {prompt}")
    status = await fake.wait_for(lambda: _status_with_button(fake, chat, command), what="the progress message")
    [data] = buttons(status)
    assert data.startswith("pxc:")
    return data.removeprefix("pxc:"), command


def _status_with_button(fake: FakeTelegram, chat, command) -> dict | None:
    try:
        status = status_message(fake, chat, command)
    except StopIteration:
        return None
    return status if buttons(status) else None


async def press_cancel(fake: FakeTelegram, chat, user, command, job_id: str) -> dict:
    query = await fake.user_presses_button(chat, user, status_message(fake, chat, command), f"pxc:{job_id}")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers, what="the answer to ✖️ Cancel")
    return fake.callback_answers[query["id"]]


async def test_queue_lists_a_waiting_job_and_its_cancel_button_refunds_it_and_leaves_the_message_cancelled(
    fake, bot
) -> None:
    job_id, command = await queued_job(fake, bot, ALICE_CHAT, ALICE, "a fox in the snow")
    assert status_message(fake, ALICE_CHAT, command)["text"] == "⏳ Queued — #1 in line: a fox in the snow"
    listing = await ask(fake, ALICE_CHAT, ALICE, "/queue", "Your jobs")
    assert f"{job_id} · #1 in line (0 ahead) · no estimate yet · a fox in the snow" in listing
    assert "1 queued in all; 0 of 0 PixVerse slots free; no video finished recently" in listing

    answer = await press_cancel(fake, ALICE_CHAT, ALICE, command, job_id)
    assert answer["text"] == f"Job {job_id} is cancelled. It had not started, so nothing was charged."
    assert answer["show_alert"] is True
    await bot.delivered(job_id)
    status = status_message(fake, ALICE_CHAT, command)
    assert status["text"] == "✖️ Cancelled by Alice before it started; nothing was charged."
    assert buttons(status) == []  # the button went with the edit
    mine, _ = await bot.core.quotas.status(user_ref(ALICE))
    assert (mine.used, mine.reserved) == (0, 0)
    assert (await bot.job(job_id)).outcome is JobState.CANCELLED

    assert await ask(fake, ALICE_CHAT, ALICE, "/cancel nosuchjob", "⚠️") == (
        "⚠️ No job 'nosuchjob' found. /jobs lists your recent jobs."
    )
    assert await ask(fake, ALICE_CHAT, ALICE, "/cancel", "⚠️") == (
        "⚠️ job: is missing; e.g. /cancel abc123 — /queue lists your waiting jobs\n"
        "Usage: /cancel <job> — the job id /jobs and /queue show (e.g. /cancel abc123)."
    )
    assert "Your queue is empty" in await ask(fake, ALICE_CHAT, ALICE, "/queue", "queue")
    assert fake.spec_violations == []


async def test_in_a_group_only_the_requester_or_an_admin_may_cancel_and_the_admin_sees_the_groups_queue(
    fake, bot
) -> None:
    fake.set_chat_member(GROUP, CAROL, "administrator")
    alices, alice_command = await queued_job(fake, bot, GROUP, ALICE, "a fox in the snow")
    bobs, _ = await queued_job(fake, bot, GROUP, BOB, "a cat on a roof")

    refused = await press_cancel(fake, GROUP, BOB, alice_command, alices)
    assert refused["text"] == f"⚠️ Only the person who asked for job {alices}, or an admin of its group, can cancel it."
    assert (await bot.job(alices)).state is JobState.QUEUED

    bobs_view = await ask(fake, GROUP, BOB, "/queue", "jobs not finished")
    assert bobs_view.startswith("Your jobs") and bobs in bobs_view and alices not in bobs_view
    admins_view = await ask(fake, GROUP, CAROL, "/queue", "jobs not finished")
    assert admins_view.startswith("This group's jobs not finished yet:")
    assert f"{alices} · #1 in line (0 ahead)" in admins_view and f"{bobs} · #2 in line (1 ahead)" in admins_view

    answer = await ask(fake, GROUP, CAROL, f"/cancel {alices}", "cancelled")
    assert answer == f"Job {alices} is cancelled. It had not started, so nothing was charged."
    await bot.delivered(alices)
    assert status_message(fake, GROUP, alice_command)["text"] == (
        "✖️ Cancelled by Carol before it started; nothing was charged."
    )
    assert (await bot.job(bobs)).state is JobState.QUEUED
    assert fake.spec_violations == []


async def test_a_running_job_is_cancelled_upstream_refunded_and_its_late_video_never_posted_even_after_a_restart(
    tmp_path: Path, fake: FakeTelegram, sandbox
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake)
    sandbox.config.accounts[0].max_jobs = 1
    async with running_bot(settings) as bot:
        job_id, command = await queued_job(fake, bot, ALICE_CHAT, ALICE, "a fox in the snow")
        await eventually(lambda: _started(bot, job_id), what="the job running")
        await fake.wait_for(lambda: "Started" in status_message(fake, ALICE_CHAT, command)["text"] or None)
        assert buttons(status_message(fake, ALICE_CHAT, command)) == [f"pxc:{job_id}"]  # kept by the edit
        answer = await ask(fake, ALICE_CHAT, ALICE, f"/cancel {job_id}", "cancelled")
        assert answer.startswith(f"Job {job_id} is cancelled and your quota refunded.")
        assert "may still finish the video and charge the bot's PixVerse credits for it" in answer
        job = await bot.delivered(job_id)
        assert sandbox.request_log.count(("DELETE", SCHEDULER_DELETES + str(job.video_id))) == 1
        status = status_message(fake, ALICE_CHAT, command)
        assert status["text"].startswith("✖️ Cancelled by Alice while PixVerse was making it; your quota is refunded.")
        assert buttons(status) == []
        # PixVerse finishes the video anyway: the bot neither posts it nor charges for it.
        sandbox.complete_now(str(job.video_id))
        await eventually(lambda: sandbox.videos[str(job.video_id)].phase.over)
        await bot.core.tracker.poll_once()
    messages = len(fake.bot_messages(ALICE_CHAT))
    async with running_bot(settings) as bot:
        await bot.core.tracker.poll_once()
        await bot.core.deliverer.deliver_pending()
        assert (await bot.job(job_id)).outcome is JobState.CANCELLED
        mine, _ = await bot.core.quotas.status(user_ref(ALICE))
        assert (mine.used, mine.reserved) == (0, 0)
    assert videos(fake, ALICE_CHAT) == [] and len(fake.bot_messages(ALICE_CHAT)) == messages
    assert fake.spec_violations == []


async def _started(bot: RunningBot, job_id: str) -> bool:
    return (await bot.job(job_id)).state in {JobState.SUBMITTED, JobState.GENERATING}
