"""Discord: /queue, /cancel and the ✖️ Cancel button on a job's progress, through discord.py."""

from __future__ import annotations

import pytest

from bot.domain import JobState
from bot.sandbox import Sandbox, SandboxAccount, SandboxConfig
from tests.fakes.discord_api import FakeInteraction, FakeMessage
from tests.test_discord_adapter import World
from tests.test_discord_adapter import world as world  # a fixture, used by name

ACCOUNT = "solo@sandbox.local"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # No free slot: jobs stay queued until a test opens one.
    return SandboxConfig(generation_seconds=0.3, accounts=[SandboxAccount(ACCOUNT, max_jobs=0)])


async def progress_with_cancel(world: World, asked: FakeInteraction) -> tuple[str, FakeMessage]:
    """The job's id (from its ✖️ button) and its progress message, once it shows the button."""

    def shown() -> FakeMessage | None:
        message = world.fake.original(asked)
        return message if message is not None and message.custom_ids else None

    message = await world.fake.wait_for(shown, what=f"the progress of interaction {asked.id} with its button")
    [custom_id] = message.custom_ids
    assert custom_id.startswith("px:cancel:")
    return custom_id.removeprefix("px:cancel:"), message


async def test_queue_cancel_and_the_cancel_button_with_who_may_use_them(world: World, sandbox: Sandbox) -> None:
    fake = world.fake
    async with world.running():
        first, first_progress = await progress_with_cancel(
            world, await fake.slash("create_single", by=world.alice, prompt="a quiet lake")
        )
        assert first_progress.content == "⏳ Queued — #1 in line: a quiet lake"
        second, _ = await progress_with_cancel(
            world, await fake.slash("create_single", by=world.alice, prompt="a stormy lake")
        )

        mine = await world.reply(await fake.slash("queue", by=world.alice))
        assert mine.startswith("Your jobs not finished yet:")
        assert f"{first} · #1 in line (0 ahead) · no estimate yet · a quiet lake" in mine
        assert f"{second} · #2 in line (1 ahead)" in mine
        assert (await world.reply(await fake.slash("queue", by=world.bob))).startswith("Your queue is empty")
        servers = await world.reply(await fake.slash("queue", by=world.admin))
        assert servers.startswith("This group's jobs not finished yet:") and first in servers

        typing = await fake.autocomplete("cancel", by=world.alice, focused="job", job=first[:3])
        await fake.wait_for(lambda: typing.choices is not None, what="job choices")
        assert first in [choice["value"] for choice in typing.choices or []]
        refused = await world.reply(await fake.slash("cancel", by=world.bob, job=first))
        assert refused == f"Only the person who asked for job {first}, or an admin of its group, can cancel it."
        unknown = await world.reply(await fake.slash("cancel", by=world.alice, job="nosuchjob"))
        assert unknown == "No job 'nosuchjob' found. /jobs lists your recent jobs."

        pressed = await fake.click(first_progress, f"px:cancel:{first}", by=world.alice)
        assert await world.reply(pressed) == f"Job {first} is cancelled. It had not started, so nothing was charged."
        cancelled = await fake.wait_for(
            lambda: first_progress if first_progress.content.startswith("✖️") else None, what="the cancelled progress"
        )
        assert cancelled.content == "✖️ “a quiet lake”: Cancelled by alice before it started; nothing was charged."
        assert cancelled.custom_ids == []  # the button went with the edit

        by_admin = await world.reply(await fake.slash("cancel", by=world.admin, job=f"job {second}"))
        assert by_admin == f"Job {second} is cancelled. It had not started, so nothing was charged."
        for job_id in (first, second):
            job = await world.core.jobs.get(job_id)
            assert job is not None and job.outcome is JobState.CANCELLED

        # A job that runs to its end loses the button too, when its video is posted.
        sandbox.config.accounts[0].max_jobs = 1
        asked = await fake.slash("create_single", by=world.alice, prompt="a calm sea")
        await world.video(asked)
        done = fake.original(asked)
        assert done is not None and done.content.startswith("✅ Done") and done.custom_ids == []
        mine = await world.core.quotas.status(await _alice(world, asked))
        assert (mine[0].used, mine[0].reserved) == (1, 0)  # only the video made was charged


async def _alice(world: World, asked: FakeInteraction):
    video = await world.video(asked)
    return (await world.job_of(video)).user
