"""Discord shards split across processes: real discord.py (AutoShardedBot) against the fake Discord.

Discord sends a server's interactions only to the shard the server belongs to
(`guild_id >> 22 % shard_count`), so each process answers its own shards' servers;
a job's later messages go out over REST, so a process running other shards (or
started after the one that accepted the job stopped) delivers it all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord import PixverseBot, running_discord
from bot.bootstrap import Core, open_core
from bot.domain import Job, JobState, Platform, UserRef
from bot.sandbox import Sandbox, SandboxAccount, SandboxConfig
from bot.settings import Settings, SettingsError, load_settings
from tests import patience
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeInteraction, FakeMessage, FakeUser, shard_of
from tests.harness import eventually, fast_settings

SHARDS = 2
ACCOUNT = "solo@sandbox.local"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # One slot: the tests that need a job to wait close it first.
    return SandboxConfig(generation_seconds=0.3, accounts=[SandboxAccount(ACCOUNT, max_jobs=1)])


@dataclass
class Servers:
    """The fake Discord with one server (and its channel) on each of two shards, and a member."""

    fake: FakeDiscord
    channels: list[FakeChannel]  # index = the shard its server is on
    alice: FakeUser
    tmp_path: Path
    sandbox: Sandbox

    def settings(self, *shard_ids: int, database: str = "bot.sqlite3") -> Settings:
        """A process running `shard_ids` of the two shards, on `database`."""
        return fast_settings(
            self.tmp_path,
            self.sandbox,
            bot_database=self.tmp_path / database,
            discord_bot_token=SecretStr(self.fake.token),
            discord_guild_ids=[str(channel.guild_id) for channel in self.channels],
            discord_shard_count=str(SHARDS),
            discord_shard_ids=",".join(map(str, shard_ids)),
        )

    @contextlib.asynccontextmanager
    async def process(self, settings: Settings, **options: Any) -> AsyncIterator[tuple[Core, PixverseBot]]:
        """One bot process: its core and its Discord adapter, stopped on exit."""
        options = {"guild_ready_timeout": 0.05, "edit_interval": 0.0, **options}
        async with open_core(settings) as core, running_discord(core, **options) as bot:
            yield core, bot

    async def video(self, interaction: FakeInteraction) -> FakeMessage:
        return await self.fake.wait_for(
            lambda: next((m for m in self.fake.followups(interaction) if m.custom_ids), None),
            what=f"the video answering interaction {interaction.id}",
        )


@pytest.fixture
async def servers(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Servers]:
    async with FakeDiscord() as fake:
        channels = [fake.add_channel("general", guild_id=fake.add_guild(on_shard=(s, SHARDS))) for s in range(SHARDS)]
        yield Servers(fake, channels, fake.add_member("alice"), tmp_path, sandbox)
        assert fake.spec_violations == []


def job_id_of(message: FakeMessage) -> str:
    return message.custom_ids[0].rsplit(":", 1)[1]


async def delivered(core: Core, job_id: str) -> Job:
    """The job, once `core` has recorded its delivery (just after the post went out)."""

    async def recorded() -> Job | None:
        job = await core.jobs.get(job_id)
        return job if job is not None and job.state is JobState.DELIVERED else None

    found: Job = await eventually(recorded, what=f"job {job_id} recorded as delivered")
    return found


async def test_each_process_answers_only_the_servers_of_its_own_shard(servers: Servers) -> None:
    fake = servers.fake
    # Two processes at once, each with a database of its own: which one made a job tells who answered.
    async with (
        servers.process(servers.settings(0, database="zero.sqlite3")) as (core_zero, bot_zero),
        servers.process(servers.settings(1, database="one.sqlite3")) as (core_one, bot_one),
    ):
        assert fake.connected_shards == [(0, SHARDS), (1, SHARDS)]
        assert (bot_zero.shard_count, sorted(bot_zero.shards)) == (SHARDS, [0])
        assert (bot_one.shard_count, sorted(bot_one.shards)) == (SHARDS, [1])
        for shard, bot in enumerate([bot_zero, bot_one]):
            # The fake's first server is on one of the two shards as well.
            assert {g.id for g in bot.guilds} == {g for g in fake.guild_ids if shard_of(g, SHARDS) == shard}
            assert bot.get_guild(servers.channels[shard].guild_id or 0) is not None

        videos = []
        for channel in servers.channels:
            asked = await fake.slash(
                "create_single", by=servers.alice, channel=channel, prompt=f"a fox in {channel.id}"
            )
            videos.append(await servers.video(asked))
        for shard, (own, other) in enumerate([(core_zero, core_one), (core_one, core_zero)]):
            job_id = job_id_of(videos[shard])
            job = await delivered(own, job_id)
            assert job.chat.group_id == str(servers.channels[shard].guild_id)
            assert await other.jobs.get(job_id) is None
        # Every interaction was answered once, by the process that received it.
        assert all(ix.callback is not None for ix in fake.interactions.values())


@pytest.mark.parametrize("token_lives", [True, False], ids=["through-the-interaction", "in-the-channel"])
async def test_a_job_accepted_on_one_shard_is_delivered_by_a_process_running_only_another(
    servers: Servers, sandbox: Sandbox, token_lives: bool
) -> None:
    fake = servers.fake
    channel = servers.channels[0]
    sandbox.config.accounts[0].max_jobs = 0  # the job waits in the queue while its process stops
    # A token past its lifetime makes the delivery a post in the channel, by its id alone.
    lifetime = timedelta(minutes=15) if token_lives else timedelta(0)
    async with servers.process(servers.settings(0), token_lifetime=lifetime) as (core, _):
        asked = await fake.slash("create_single", by=servers.alice, channel=channel, prompt="a heron at dawn")
        requester = UserRef(Platform.DISCORD, str(servers.alice.id), servers.alice.name)

        async def accepted() -> Job | None:
            jobs = await core.service.recent_jobs(requester)
            return jobs[0] if jobs and asked.callback is not None else None

        job = await eventually(accepted, what="the job accepted by shard 0's process")
        assert job.state is JobState.QUEUED

    sandbox.config.accounts[0].max_jobs = 1
    async with servers.process(servers.settings(1)) as (core, bot):
        # This process never saw the server: nothing about it is in its gateway cache.
        assert bot.get_guild(channel.guild_id or 0) is None and bot.get_channel(channel.id) is None
        if token_lives:
            video = await servers.video(asked)
            progress = fake.original(asked)  # edited by this process, through the interaction's webhook
            assert progress is not None and progress.content.startswith("✅ Done")
        else:
            video = await fake.wait_for(
                lambda: next((m for m in fake.channel_messages(channel) if m.interaction_id is None), None),
                what="the video posted in the channel",
            )
            assert video.content.startswith(f"{servers.alice.mention}\na heron at dawn")
            assert fake.followups(asked) == []
        assert job_id_of(video) == job.id and video.attachments[0].data[4:8] == b"ftyp"
        await delivered(core, job.id)
    assert shard_of(channel.guild_id or 0, SHARDS) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"discord_shard_ids": "0,1"}, "DISCORD_SHARD_IDS: Value error, needs DISCORD_SHARD_COUNT"),
        (
            {"discord_shard_ids": "0,2", "discord_shard_count": "2"},
            "DISCORD_SHARD_IDS: Value error, shard 2 does not exist: with DISCORD_SHARD_COUNT=2 they are 0–1",
        ),
        (
            {"discord_shard_ids": "0,one", "discord_shard_count": "2"},
            "DISCORD_SHARD_IDS: Value error, 'one' is not a shard number; list shard numbers like 0,1",
        ),
        ({"discord_shard_ids": "1,1", "discord_shard_count": "2"}, "lists shard 1 twice"),
        ({"discord_shard_count": "0"}, "DISCORD_SHARD_COUNT: Input should be greater than or equal to 1"),
    ],
)
def test_shard_settings_that_cannot_work_are_refused_naming_the_setting(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, **overrides)
    assert message in str(refused.value)


def test_shard_settings_default_to_all_of_discords_count_and_may_be_left_empty() -> None:
    default = load_settings(_env_file=None)
    assert (default.discord_shard_count, default.discord_shard_ids) == (None, [])
    empty = load_settings(_env_file=None, discord_shard_count="", discord_shard_ids="")
    assert (empty.discord_shard_count, empty.discord_shard_ids) == (None, [])
    split = load_settings(_env_file=None, discord_shard_count="4", discord_shard_ids=" 3, 1 ")
    assert (split.discord_shard_count, split.discord_shard_ids) == (4, [3, 1])


async def test_one_process_runs_every_shard_discord_recommends_however_long_they_take_to_connect(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # discord.py connects shards 5 s apart: three take about 10 s, more than the deadline for one.
    async with FakeDiscord(recommended_shards=3) as fake:
        settings = fast_settings(tmp_path, sandbox, discord_bot_token=SecretStr(fake.token))
        async with (
            open_core(settings) as core,
            running_discord(core, guild_ready_timeout=0.05, ready_timeout=8.0) as bot,
        ):
            assert (bot.shard_count, sorted(bot.shards)) == (3, [0, 1, 2])
            assert fake.connected_shards == [(0, 3), (1, 3), (2, 3)]
            guild = bot.get_guild(fake.guild_id)
            assert guild is not None and guild.shard_id == shard_of(fake.guild_id, 3)
        assert fake.spec_violations == []


async def test_stopping_while_shards_are_still_connecting_ends_at_once(
    tmp_path: Path, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # The second shard would connect 5 s after the first: the deadline ends the start before.
    async with FakeDiscord(recommended_shards=2) as fake:
        settings = fast_settings(tmp_path, sandbox, discord_bot_token=SecretStr(fake.token))
        async with open_core(settings) as core:

            async def start() -> None:
                async with running_discord(core, guild_ready_timeout=0.05, ready_timeout=1.0):
                    raise AssertionError("ready with one shard of two")

            with pytest.raises(TimeoutError, match="for 1 s no shard connected or got ready"):
                await asyncio.wait_for(start(), timeout=patience.deadline(15.0))
        assert fake.connected_shards == []  # the connected shard was closed, the other never opened
    assert [t for t in asyncio.all_tasks() if t.get_name() == "discord-gateway" and not t.done()] == []
    assert "Session is closed" not in caplog.text  # no shard launched on the closed connection
