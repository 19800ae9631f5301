"""A process that dies while delivering posts nothing twice (README "Known limits").

Delivery is post → record DELIVERED → mark the progress message final. The last step
is a paced edit that can wait out a 429 for a while; a process killed during it must
leave the job recorded as delivered, so the process that comes next does not post the
video again: the real `pixverse-bot run` is killed (SIGKILL) while Telegram (the fake)
keeps it waiting on that edit, and started again on the same database. What is left
is the post itself; on Discord a channel post carries a nonce, and a repeat of it
(the process died after the post, before the record) shows no second video.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain import JobState
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.telegram_api import ApiCall, FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (a fixture)
    ALICE,
    ALICE_CHAT,
    fake_fixture,
    job_id_of,
    wait_videos,
)
from tests.harness import bot_env, eventually, start_bot
from tests.test_discord_adapter import World
from tests.test_discord_adapter import world as world  # a fixture, used by name

DONE = "✅ Done"  # the progress message's last words once the video is posted


def job_state(db: Path, job_id: str) -> str:
    with sqlite3.connect(db) as connection:
        [(state,)] = connection.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchall()
    return str(state)


def done_edits(fake: FakeTelegram) -> list[ApiCall]:
    return [call for call in fake.calls_to("editMessageText") if call.params.get("text") == DONE]


async def test_a_process_killed_while_marking_the_progress_done_does_not_post_the_video_again(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    database = tmp_path / "bot.sqlite3"
    # The "✅ Done" edit is answered "retry after 60 s": the process waits it out, and is killed meanwhile.
    fake.fail_next("editMessageText", 429, retry_after=60, matching=lambda params: params.get("text") == DONE)
    async with running_sandbox(SandboxConfig(generation_seconds=0.5)) as sandbox:
        env = bot_env(
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            USEAPI_BASE_URL=sandbox.base_url,
            USEAPI_API_TOKEN=sandbox.config.token,
            POLL_INTERVAL="0.3",
            DELIVERY_RETRY_INITIAL="0.3",
            BOT_DATABASE=str(database),
            BOT_HTTP_HOST="127.0.0.1",
            BOT_HTTP_PORT="0",
        )
        first = await start_bot("run", env=env, cwd=tmp_path)
        try:
            await fake.wait_for(lambda: fake.waiting_polls, timeout=30, what="the bot to poll")
            await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a red kite over a beach")
            [video] = await wait_videos(fake, ALICE_CHAT)
            await fake.wait_for(lambda: done_edits(fake), timeout=30, what="the ✅ Done edit (answered 429)")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            await first.communicate()
        job_id = job_id_of(video)
        state_at_kill = job_state(database, job_id)

        second = await start_bot("run", env=env, cwd=tmp_path)
        try:
            await fake.wait_for(lambda: fake.waiting_polls, timeout=30, what="the restarted bot to poll")
            # A second job through the restarted process: once its video is out, the start-up
            # pass over undelivered jobs (which would post the first one again) is long done.
            await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a wolf in the rain")
            await wait_videos(fake, ALICE_CHAT, 2)
            await eventually(
                lambda: job_state(database, job_id) == "delivered", what="the first job recorded delivered"
            )
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), timeout=30)

    posted = [job_id_of(call.result) for call in fake.calls_to("sendVideo") if call.ok]
    assert posted.count(job_id) == 1, posted  # posted once, across the kill and the restart
    assert len(posted) == 2
    assert state_at_kill == "delivered"  # recorded before the edit that was under way
    assert fake.spec_violations == []


async def test_discord_answers_a_repeated_channel_post_with_the_first_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process "dies" right after Discord took the channel post (the DELIVERED record
    fails), so the job is delivered again: Discord (the fake, as the real API with
    `enforce_nonce`) answers the repeated post with the first message, and nothing new shows."""
    fake = world.fake
    route = "POST /channels/{channel_id}/messages"
    async with world.running(token_lifetime=timedelta(0)):  # past the interaction: a channel post
        jobs = world.core.jobs
        record = jobs.transition
        crashed: list[str] = []

        async def dies_before_recording_the_post(job_id: str, expected: Any, new_state: JobState, **changes: Any):
            if new_state is JobState.DELIVERED and not crashed:
                crashed.append(job_id)
                raise ConnectionError("the process died before recording the post")
            return await record(job_id, expected, new_state, **changes)

        monkeypatch.setattr(jobs, "transition", dies_before_recording_the_post)
        await fake.slash("create_single", by=world.alice, prompt="a kite over the dunes")
        [job] = await eventually(lambda: jobs.in_states([JobState.DELIVERED]), timeout=20, what="the delivery")

    assert crashed == [job.id]
    posts = [r for r in fake.requests_to(route) if r.files]
    assert len(posts) == 2 and all(r.status == 200 for r in posts)  # posted, and posted again after the "crash"
    shown = [m for m in fake.channel_messages(fake.channel) if job.id in " ".join(m.custom_ids)]
    assert len(shown) == 1  # one video in the channel
    assert {r.body["nonce"] for r in posts} == {f"video-{job.id}"} and all(r.body["enforce_nonce"] for r in posts)
