"""Telegram: progress messages through the core's one pipeline (bot/progress.py) — paced per chat,
never behind a finished job, always ending at the outcome."""

from __future__ import annotations

from itertools import pairwise

from bot.domain import JobState
from bot.ports import UNLIMITED, ChatBudget, Progress, ProgressStage
from bot.progress import worth_showing
from bot.upstream.models import Video
from tests.fakes.telegram_api import ApiCall, FakeTelegram, FakeUser, FloodLimit
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    FAST_PACING,
    GROUP,
    Pacing,
    RunningBot,
    bot_fixture,
    fake_fixture,
    replies_to,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    videos,
    wait_videos,
)
from tests.harness import eventually


async def only_job(bot: RunningBot):
    [job] = await eventually(lambda: bot.core.service.recent_jobs(user_ref(ALICE)), what="the job to exist")
    return job


async def test_a_job_finished_while_its_first_status_post_waits_out_a_429_still_shows_its_outcome(fake, bot) -> None:
    fake.fail_next("sendMessage", 429, retry_after=4)
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    job = await only_job(bot)

    async def finished() -> bool:
        return (await bot.job(job.id)).is_finished

    await eventually(finished, what="the job to reach its outcome")
    assert not any(call.ok for call in fake.calls_to("sendMessage")), "the status post landed before the outcome"

    await bot.delivered(job.id)
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done", what="✅ on the status")
    assert [m.get("text") for m in replies_to(fake, ALICE_CHAT, sent) if "text" in m] == ["✅ Done"]
    assert len(videos(fake, ALICE_CHAT)) == 1
    assert fake.spec_violations == []


async def test_a_stale_generating_report_never_edits_a_delivered_jobs_message(fake, bot, sandbox) -> None:
    sandbox.config.generation_seconds = 1.0
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    job = await only_job(bot)

    async def generating():
        current = await bot.job(job.id)
        return current if current.state is JobState.GENERATING else None

    snapshot = await eventually(generating, what="the job to be generating")
    await bot.delivered(job.id)
    await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done", what="✅ on the status")
    edits = len(fake.calls_to("editMessageText"))

    # What the tracker does with a job read before it completed — a poll that was under
    # way, or a progress callback replayed since: it reports the job generating.
    still_running = Video.model_validate(
        {"video_id": snapshot.video_id, "video_status_name": "GENERATING", "video_status_final": False}
    )
    await bot.core.tracker.apply(snapshot, still_running)
    await bot.core.progress.idle()

    assert status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done"
    assert len(fake.calls_to("editMessageText")) == edits
    assert fake.spec_violations == []


# A group's budget, scaled down from Telegram's (1 message a second, 20 a minute) to keep the test short.
GROUP_BUDGET = ChatBudget(min_gap=0.1, per_window=6, window=1.0)
QUEUED_USERS = [FakeUser(id=3000 + n, first_name=f"Member {n}") for n in range(12)]


async def test_a_busy_group_gets_queue_positions_within_its_budget_without_429s(tmp_path, sandbox, fake) -> None:
    fake.flood_limit = FloodLimit(GROUP_BUDGET.min_gap, GROUP_BUDGET.per_window or 0, GROUP_BUDGET.window)
    for account in sandbox.config.accounts:
        account.max_jobs = 0  # no free slot: every job waits in the queue
    sandbox.config.generation_seconds = 60  # jobs sent upstream keep generating: only progress is posted
    pacing = Pacing(private_chat=UNLIMITED, group_chat=GROUP_BUDGET, max_retry_wait=FAST_PACING.max_retry_wait)

    async with running_bot(telegram_settings(tmp_path, sandbox, fake), pacing) as bot:
        commands = [
            await fake.user_sends_text(GROUP, user, f"/create_single picture number {n}")
            for n, user in enumerate(QUEUED_USERS)
        ]
        await fake.wait_for(
            lambda: all(replies_to(fake, GROUP, c) for c in commands), timeout=10, what="every job's status message"
        )
        # Scheduler passes over an unchanged queue change nobody's message.
        for _ in range(5):
            await bot.core.scheduler.submit_ready()
        await bot.core.progress.idle()
        assert fake.calls_to("editMessageText") == []

        # Slots free up one at a time: the queue moves on every pass for a while.
        for running in range(1, 5):
            sandbox.config.accounts[0].max_jobs = running
            await until_queued(bot, len(QUEUED_USERS) - running)
        await fake.wait_for(lambda: all_positions_current(fake, commands), timeout=10, what="current queue positions")

    # What the chat's flood limit counts: messages posted or edited (not look-ups such as
    # getChatAdministrators, which the admin check makes).
    calls = [call for call in fake.calls if call.chat_id == GROUP.id and call.method.startswith(("send", "edit"))]
    assert [call.summary() for call in calls if not call.ok] == []  # no 429, no "message is not modified"
    assert within_budget(calls, GROUP_BUDGET)
    moved = []
    for command in commands:
        shown = [position_in(text) for text in texts_shown(fake, command)]
        queued = [p for p in shown if p is not None]
        assert all(worth_moving(before, after) for before, after in pairwise(queued)), queued
        moved.append(len(queued) > 1)
    assert any(moved), "the queue moved but no message showed it"
    assert fake.spec_violations == []


async def until_queued(bot: RunningBot, count: int) -> None:
    async def left() -> bool:
        return len(await bot.core.jobs.in_states([JobState.QUEUED])) == count

    await eventually(left, what=f"{count} job(s) left in the queue")


def texts_shown(fake: FakeTelegram, command: dict) -> list[str]:
    """Every text a job's status message has shown, in order (its post, then its edits)."""
    [status] = [m for m in replies_to(fake, GROUP, command) if "text" in m]
    return [
        call.params["text"]
        for call in fake.calls
        if call.ok
        and call.chat_id == GROUP.id
        and (
            (call.method == "sendMessage" and call.result["message_id"] == status["message_id"])
            or (call.method == "editMessageText" and call.params["message_id"] == status["message_id"])
        )
    ]


def position_in(text: str) -> int | None:
    if not text.startswith("⏳ Queued — #"):
        return None
    return int(text.removeprefix("⏳ Queued — #").split(" ", 1)[0])


def worth_moving(before: int, after: int) -> bool:
    return worth_showing(Progress(ProgressStage.QUEUED, before), Progress(ProgressStage.QUEUED, after))


def all_positions_current(fake: FakeTelegram, commands: list[dict]) -> bool:
    """Every job still queued shows its place, or one it has not moved meaningfully from.

    Places in the order the jobs were admitted: commands that arrive together are handled
    concurrently, so that need not be the order they were sent in."""
    shown = [position_in(texts_shown(fake, command)[-1]) for command in commands]
    waiting = sorted(position for position in shown if position is not None)
    return all(not worth_moving(position, place) for place, position in enumerate(waiting, 1))


def within_budget(calls: list[ApiCall], budget: ChatBudget) -> bool:
    """No two requests closer than `min_gap`, and no more than `per_window` in any `window`."""
    times = [call.at for call in calls]
    assert all(later - earlier >= budget.min_gap for earlier, later in pairwise(times)), times
    count = budget.per_window or len(times)
    assert all(times[i + count] - times[i] >= budget.window for i in range(len(times) - count)), times
    return True
