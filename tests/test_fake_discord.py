"""The fake Discord proves itself against a minimal discord.py bot before it judges the adapter."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_api import (
    CLOSE_INVALID_SHARD,
    DEFERRED_CHANNEL_MESSAGE,
    MODERATOR_PERMISSIONS,
    FakeDiscord,
    FakeUser,
    shard_of,
)
from tests.fakes.discord_spec import check_request, check_response


class Knock(discord.ui.DynamicItem[discord.ui.Button], template=r"knock:(?P<n>\d+)"):
    """A persistent button: the number it carries comes back from its custom_id."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Knock", custom_id=f"knock:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Knock:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Question(self.n))


class Question(discord.ui.Modal, title="Who is there?"):
    def __init__(self, n: int) -> None:
        super().__init__(custom_id=f"question:{n}")
        self.answer: discord.ui.TextInput[Question] = discord.ui.TextInput(custom_id="answer")
        self.add_item(discord.ui.Label(text="Your name", component=self.answer))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"hello {self.answer.value}", ephemeral=True)


class MiniBot(commands.Bot):
    """Just enough bot to exercise each thing the fake serves."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned, intents=discord.Intents(guilds=True), guild_ready_timeout=0.05
        )
        self.seen_bytes: bytes | None = None
        self.errors: list[BaseException] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(Knock)
        tree = self.tree

        @tree.command(description="Say it back")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message(text)

        @tree.command(description="Think, then answer twice")
        async def slow(interaction: discord.Interaction, picture: discord.Attachment | None = None) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            if picture is not None:
                self.seen_bytes = await picture.read()
            await interaction.followup.send("first")  # replaces the thinking message
            await interaction.followup.send("second", view=discord.ui.View().add_item(Knock(7)))

        @tree.command(description="Pick a colour")
        async def colour(interaction: discord.Interaction, name: str, who: discord.Member | None = None) -> None:
            await interaction.response.send_message(f"{name} for {who.display_name if who else 'you'}")

        @colour.autocomplete("name")
        async def colour_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=c, value=c) for c in ("red", "green", "blue") if current in c]

        @tree.command(description="Post in the channel")
        async def post(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer(ephemeral=True)
            try:
                assert interaction.channel is not None
                await interaction.channel.send(text, file=discord.File(__file__, filename="proof.py"))  # type: ignore[union-attr]
            except discord.HTTPException as exc:
                self.errors.append(exc)
            await interaction.edit_original_response(content="done")

        await tree.sync()


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord) -> AsyncIterator[MiniBot]:
    async with MiniBot() as bot:
        await bot.login(fake.token)
        connection = asyncio.create_task(bot.connect())
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        try:
            yield bot
        finally:
            await bot.close()
            await connection


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as running_fake:
        yield running_fake


async def test_login_ready_guild_cache_and_command_sync(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        assert bot.user is not None and bot.user.id == fake.bot_user.id
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None and guild.get_channel(fake.channel.id) is not None
        assert {c["name"] for c in fake.commands[None]} == {"echo", "slow", "colour", "post"}
    assert fake.identified == 1
    assert fake.spec_violations == []


async def test_slash_command_answer_and_followup_rules(fake: FakeDiscord) -> None:
    alice = fake.add_member("alice")
    picture = fake.upload("cat.png", b"\x89PNG fake bytes", "image/png")
    async with running(fake) as bot:
        echo = await fake.slash("echo", by=alice, text="hi there")
        await fake.wait_for(lambda: fake.original(echo), what="the echo")
        assert fake.original(echo).content == "hi there"  # type: ignore[union-attr]

        slow = await fake.slash("slow", by=alice, picture=picture)
        await fake.wait_for(lambda: len(fake.followups(slow)) == 1, what="the second followup")
        assert bot.seen_bytes == b"\x89PNG fake bytes"
        assert slow.callback_type == DEFERRED_CHANNEL_MESSAGE
        original = fake.original(slow)
        assert original is not None and original.content == "first" and original.ephemeral
        [second] = fake.followups(slow)
        assert second.content == "second" and second.custom_ids == ["knock:7"] and not second.ephemeral
    assert fake.spec_violations == []


async def test_autocomplete_button_modal_and_user_option(fake: FakeDiscord) -> None:
    alice, bob = fake.add_member("alice"), fake.add_member("bob", MODERATOR_PERMISSIONS)
    async with running(fake):
        typing = await fake.autocomplete("colour", by=alice, focused="name", name="re")
        await fake.wait_for(lambda: typing.choices is not None, what="choices")
        assert [c["value"] for c in typing.choices or []] == ["red", "green"]

        picked = await fake.slash("colour", by=alice, name="blue", who=bob)
        await fake.wait_for(lambda: fake.original(picked), what="the answer")
        assert fake.original(picked).content == "blue for bob"  # type: ignore[union-attr]

        slow = await fake.slash("slow", by=alice)
        [message] = await fake.wait_for(lambda: fake.followups(slow), what="the button message")
        knock = await fake.click(message, "knock:7", by=bob)
        modal = await fake.wait_for(lambda: knock.modal, what="the modal")
        assert modal["title"] == "Who is there?"
        submitted = await fake.submit_modal(knock, {"answer": "Bob"}, by=bob)
        reply = await fake.wait_for(lambda: fake.original(submitted), what="the modal's answer")
        assert reply.content == "hello Bob" and reply.ephemeral
    assert fake.spec_violations == []


async def test_channel_messages_with_files_and_injected_faults(fake: FakeDiscord) -> None:
    alice = fake.add_member("alice")
    async with running(fake) as bot:
        post = await fake.slash("post", by=alice, text="in the open")
        await fake.wait_for(lambda: fake.original(post) and fake.original(post).content == "done")  # type: ignore[union-attr]
        [message] = [m for m in fake.channel_messages(fake.channel) if m.interaction_id is None]
        assert message.content == "in the open" and message.attachments[0].filename == "proof.py"
        assert message.attachments[0].data == Path(__file__).read_bytes()

        fake.fail_next("POST /channels/{channel_id}/messages", 403, code=50013, message="Missing Permissions")
        denied = await fake.slash("post", by=alice, text="nope")
        await fake.wait_for(lambda: fake.original(denied) and fake.original(denied).content == "done")  # type: ignore[union-attr]
        assert isinstance(bot.errors[0], discord.Forbidden) and bot.errors[0].code == 50013

        fake.attachment_size_limit = 10
        too_big = await fake.slash("post", by=alice, text="big")
        await fake.wait_for(lambda: len(bot.errors) == 2, what="the 413")
        assert bot.errors[1].status == 413  # type: ignore[attr-defined]
    size = len(Path(__file__).read_bytes())
    assert fake.spec_violations == [f"uploaded 'proof.py' of {size} bytes, over the 10-byte limit"]
    assert too_big.callback is not None


async def test_a_repeated_nonce_is_answered_with_the_first_message_within_the_window(fake: FakeDiscord) -> None:
    """Create Message with `enforce_nonce` (discord.py sends it with every nonce), as Discord does."""
    async with running(fake) as bot:
        channel = bot.get_partial_messageable(fake.channel.id)
        first = await channel.send("one", nonce="video-abc")
        again = await channel.send("one, sent again", nonce="video-abc")
        other = await channel.send("two", nonce="video-xyz")
        assert again.id == first.id and again.content == "one" and other.id != first.id
        assert [m.content for m in fake.channel_messages(fake.channel)] == ["one", "two"]

        fake.messages[first.id].deleted = True  # someone deleted it: its nonce, sent again, is a 404
        with pytest.raises(discord.NotFound):
            await channel.send("one, a third time", nonce="video-abc")

        fake.nonce_window = 0.0  # Discord forgets a nonce after a few minutes
        later = await channel.send("two, much later", nonce="video-xyz")
        assert later.id != other.id
    assert [m.content for m in fake.channel_messages(fake.channel) if not m.deleted] == ["two", "two, much later"]
    assert fake.spec_violations == []


async def test_discord_rules_a_bot_only_meets_in_production(fake: FakeDiscord) -> None:
    alice = fake.add_member("alice")
    async with running(fake) as bot:
        fake.ack_deadline = 0.0  # every answer is now late
        late = await fake.slash("echo", by=alice, text="late")
        await fake.wait_for(lambda: fake.spec_violations, what="the late answer")
        assert "answered after" in fake.spec_violations[0] and fake.original(late) is None
        fake.spec_violations.clear()
        fake.ack_deadline = 3.0

        fake.token_lifetime = 0.0  # the token dies as soon as it is made
        expired = await fake.slash("slow", by=alice)
        await fake.wait_for(lambda: fake.spec_violations, what="the expired token")
        assert "token used" in fake.spec_violations[0] and expired.callback is not None
        fake.spec_violations.clear()

        channel = bot.get_channel(fake.channel.id)
        await channel.send("x" * 2001)  # type: ignore[union-attr]
        assert any("content is 2001 characters" in v for v in fake.spec_violations)
        fake.spec_violations.clear()

        dm = await bot.create_dm(discord.Object(alice.id))
        await dm.send("psst")
        [whisper] = fake.channel_messages(fake.dm_channel(alice))
        assert whisper.content == "psst"
    assert fake.spec_violations == []


def test_spec_checker_knows_routes_and_limits() -> None:
    button = {"type": 2, "style": 1, "label": "x", "custom_id": "c" * 101}
    problems = check_request("POST", "/channels/1/messages", {"components": [{"type": 1, "components": [button]}]})
    assert any("custom_id" in p for p in problems)
    modal = {"type": 9, "data": {"custom_id": "m", "title": "t" * 46, "components": [{"type": 10, "content": "x"}]}}
    assert any("title" in p for p in check_request("POST", "/interactions/1/abc/callback", modal))
    assert check_request("POST", "/nowhere") == ["POST /nowhere: no such path in the Discord API"]
    assert check_request("GET", "/users/@me") == []
    assert FakeUser(5, "x").mention == "<@5>"


class ShardedMiniBot(commands.AutoShardedBot):
    """A bot in shards, as discord.py runs them; the fake has no IDENTIFY rate limit to wait for."""

    def __init__(self, **shards: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            guild_ready_timeout=0.05,
            **shards,
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s between two shards' IDENTIFYs for the real Discord's sake


async def test_gateway_bot_recommends_the_shards_and_each_shard_gets_its_own_guilds() -> None:
    async with FakeDiscord(recommended_shards=2) as fake:
        on_shard = {shard: fake.add_guild(on_shard=(shard, 2)) for shard in (0, 1)}
        assert [shard_of(on_shard[shard], 2) for shard in (0, 1)] == [0, 1]
        async with ShardedMiniBot() as bot:  # no shard count: discord.py asks GET /gateway/bot
            await bot.login(fake.token)
            connection = asyncio.create_task(bot.connect())
            try:
                await asyncio.wait_for(bot.wait_until_ready(), 10)
                assert bot.shard_count == 2 and fake.connected_shards == [(0, 2), (1, 2)]
                for guild_id in fake.guild_ids:
                    guild = bot.get_guild(guild_id)
                    assert guild is not None and guild.shard_id == shard_of(guild_id, 2)
            finally:
                await bot.close()
                await connection
        [asked] = fake.requests_to("GET /gateway/bot")
        answer = fake._gateway_info()
        assert answer["shards"] == 2 and check_response("GET", asked.path, 200, answer) == []
        assert sorted(fake.shards_identified) == [(0, 2), (1, 2)]
        assert fake.spec_violations == []


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], "0,1"])
async def test_an_identify_with_an_impossible_shard_is_closed_as_discord_does(fake: FakeDiscord, shard: Any) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as socket:
        hello = await socket.receive_json()
        assert hello["op"] == 10
        identify = {"token": fake.token, "intents": 1, "properties": {}, "shard": shard}
        await socket.send_json({"op": 2, "d": identify})
        closed = await socket.receive()
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == CLOSE_INVALID_SHARD
    assert fake.identified == 0 and fake.connected_shards == []
    assert len(fake.spec_violations) == 1 and f"shard {shard!r}" in fake.spec_violations[0]


async def test_a_request_is_timed_when_it_arrives_not_after_the_fakes_own_work(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Latencies are measured to `CapturedRequest.at`: the fake's spec check (2 ms for a
    message with buttons) and a delay it was told to add must come after it, not inside it."""
    import tests.fakes.discord_api as fake_module

    checked_at: dict[str, float] = {}

    def timed_check(method: str, path: str, *args: Any, **kwargs: Any) -> list[str]:
        checked_at[path] = time.monotonic()
        return check_request(method, path, *args, **kwargs)

    monkeypatch.setattr(fake_module, "check_request", timed_check)
    alice = fake.add_member("alice")
    callback = "POST /interactions/{interaction_id}/{interaction_token}/callback"
    async with running(fake):
        fake.delay_next(callback, 0.3)
        echo = await fake.slash("echo", by=alice, text="slowly")
        await fake.wait_for(lambda: fake.original(echo), what="the echo")
        [request] = fake.requests_to(callback)
        assert request.at <= checked_at[request.path], "stamped after the fake's check"
        answered = time.monotonic()
        assert request.at - echo.dispatched_at < 0.3 <= answered - echo.dispatched_at
    assert fake.spec_violations == []
