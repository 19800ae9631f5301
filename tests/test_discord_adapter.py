"""The Discord adapter end to end: real discord.py against the fake Discord, the core against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord import running_discord
from adapters.discord.cogs.admin import filter_mode_args
from adapters.discord.responder import APOLOGY, fit
from bot.bootstrap import Core, open_core
from bot.domain import Job, JobState, Platform, ResultAction, UserRef
from bot.errors import InvalidInput
from bot.sandbox import Sandbox
from bot.settings import Settings
from bot.upstream.models import Video
from tests.fakes.discord_api import (
    ADMIN_PERMISSIONS,
    DEFERRED_CHANNEL_MESSAGE,
    EPHEMERAL,
    MODERATOR_PERMISSIONS,
    CapturedRequest,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
    FakeUser,
)
from tests.harness import eventually, fast_settings, tiny_png


@dataclass
class World:
    """The fake Discord with its people, the settings, and (while running) the core and the bot."""

    fake: FakeDiscord
    settings: Settings
    alice: FakeUser  # a member
    bob: FakeUser  # another member
    mod: FakeUser  # Manage Messages
    admin: FakeUser  # Manage Server
    operator: FakeUser  # in BOT_ADMIN_IDS
    _core: Core | None = None

    @property
    def core(self) -> Core:
        assert self._core is not None, "only while running()"
        return self._core

    @contextlib.asynccontextmanager
    async def running(self, **options: Any) -> AsyncIterator[World]:
        """Core and adapter up (on the same database each time), down on exit."""
        options = {"guild_ready_timeout": 0.05, "edit_interval": 0.0, **options}
        async with open_core(self.settings) as core, running_discord(core, **options):
            self._core = core
            try:
                yield self
            finally:
                self._core = None

    async def video(self, interaction: FakeInteraction, *, timeout: float = 15.0) -> FakeMessage:
        """The public message with the finished video that answers `interaction`."""
        return await self.fake.wait_for(
            lambda: next((m for m in self.fake.followups(interaction) if m.custom_ids), None),
            timeout=timeout,
            what=f"the video answering interaction {interaction.id}",
        )

    async def reply(self, interaction: FakeInteraction) -> str:
        """The ephemeral answer to `interaction`, once it is more than a placeholder."""

        def answered() -> FakeMessage | None:
            message = self.fake.original(interaction)
            return message if message is not None and not message.loading else None

        message = await self.fake.wait_for(answered, what=f"the answer to interaction {interaction.id}")
        assert message.ephemeral, message
        return message.content

    async def job_of(self, message: FakeMessage) -> Job:
        """The job whose result `message` shows (its buttons name it)."""
        job = await self.core.jobs.get(message.custom_ids[0].rsplit(":", 1)[1])
        assert job is not None
        return job


@pytest.fixture
async def world(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        operator = fake.add_member("operator")
        settings = fast_settings(
            tmp_path,
            sandbox,
            discord_bot_token=SecretStr(fake.token),
            discord_guild_ids=[str(fake.guild_id)],
            bot_admin_ids=[f"discord:{operator.id}"],
        )
        yield World(
            fake,
            settings,
            alice=fake.add_member("alice"),
            bob=fake.add_member("bob"),
            mod=fake.add_member("mod", MODERATOR_PERMISSIONS),
            admin=fake.add_member("admin", ADMIN_PERMISSIONS),
            operator=operator,
        )
        assert fake.spec_violations == []
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftover == [], "tasks left running after the bot and the core stopped"


async def test_create_single_from_slash_command_to_video_with_buttons(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    caplog.set_level(logging.DEBUG)
    async with world.running():
        assert {c["name"] for c in fake.commands[fake.guild_id]} >= {"create_single", "animate", "jobs", "setquota"}
        asked = await fake.slash(
            "create_single", by=world.alice, prompt="a fox in the snow", aspect_ratio="9:16", seed=42
        )
        video = await world.video(asked)

        assert asked.callback == {"type": DEFERRED_CHANNEL_MESSAGE, "data": {"flags": EPHEMERAL}}
        progress = fake.original(asked)
        assert progress is not None and progress.ephemeral and progress.content.startswith("✅ Done")
        assert not video.ephemeral and video.attachments[0].filename.endswith(".mp4")
        assert video.attachments[0].data[4:8] == b"ftyp"
        job = await world.job_of(video)
        assert video.content.startswith("a fox in the snow\n") and f"job {job.id}" in video.content
        assert "9:16" in video.content and "seed 42" in video.content
        assert video.custom_ids == [f"px:{a}:{job.id}" for a in ("reroll", "remix", "upscale", "extend", "modify")]
        assert job.state is JobState.DELIVERED
        edits = fake.requests_to("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
        shown = [(r.body or {}).get("content", "") for r in edits]
        assert shown[0] == "⏳ Queued — #1 in line: a fox in the snow" and shown[-1].startswith("✅ Done")
        assert any(text.startswith("🎬") for text in shown)
    assert fake.token not in caplog.text


async def test_animate_reads_the_attachment_and_refuses_what_cannot_be_animated(world: World) -> None:
    fake = world.fake
    world.settings = world.settings.model_copy(update={"max_image_bytes": 1000})
    async with world.running():
        photo = fake.upload("cat.png", tiny_png(), "image/png")
        asked = await fake.slash("animate", by=world.alice, image=photo, prompt="smiling", motion=7, hd_quality="Yes")
        video = await world.video(asked)
        job = await world.job_of(video)
        assert job.request.motion == 7 and job.request.quality == "720p" and job.request.image_blob_id
        assert video.attachments[0].data[4:8] == b"ftyp"
        assert fake.downloads == [photo.id]

        text = fake.upload("notes.txt", b"not a picture", "text/plain")
        refused = await fake.slash("animate", by=world.alice, image=text)
        assert (await world.reply(refused)).startswith("image: is text/plain; send a JPEG, PNG, WebP or GIF picture")
        huge = fake.upload("huge.png", tiny_png(64, 64) + b"\0" * 1000, "image/png")
        too_big = await fake.slash("animate", by=world.alice, image=huge)
        assert (await world.reply(too_big)).startswith("image: is 0.0 MB; the limit is 0.0 MB")
        assert fake.downloads == [photo.id]  # refused before anything was fetched
        assert len(await world.core.service.recent_jobs(job.user)) == 1


async def test_animate_takes_a_quality_like_create_single_and_refuses_one_that_contradicts_hd(
    world: World, sandbox: Sandbox
) -> None:
    fake = world.fake
    async with world.running():
        photo = fake.upload("cat.png", tiny_png(), "image/png")
        asked = await fake.slash("animate", by=world.alice, image=photo, quality="1080p")
        job = await world.job_of(await world.video(asked))
        assert job.request.quality == sandbox.videos[job.video_id or ""].quality == "1080p"

        clash = await fake.slash("animate", by=world.alice, image=photo, hd_quality="Yes", quality="360p")
        assert (await world.reply(clash)).startswith("quality: 360p contradicts hd_quality yes (which means 720p here)")
        assert len(await world.core.service.recent_jobs(job.user)) == 1


async def test_each_button_works_also_after_a_restart(world: World) -> None:
    fake = world.fake
    async with world.running():
        first = await world.video(await fake.slash("create_single", by=world.alice, prompt="a red kite"))
        parent = await world.job_of(first)

        rerolled = await world.video(await fake.click(first, f"px:reroll:{parent.id}", by=world.alice))
        reroll_job = await world.job_of(rerolled)
        assert reroll_job.parent_id == parent.id and reroll_job.request.seed != parent.request.seed
        assert rerolled.content.startswith("a red kite\n")

        upscaled = await world.video(await fake.click(first, f"px:upscale:{parent.id}", by=world.alice))
        upscale_job = await world.job_of(upscaled)
        assert upscale_job.request.kind.value == "upscale" and upscale_job.parent_id == parent.id
        assert [c.split(":")[1] for c in upscaled.custom_ids] == ["reroll", "extend", "modify"]

    async with world.running():  # a new process: no view objects, same database
        press = await fake.click(first, f"px:extend:{parent.id}", by=world.alice)
        extended = await world.video(press)
        extend_job = await world.job_of(extended)
        assert extend_job.request.kind.value == "extend" and extend_job.parent_id == parent.id
        assert extended.attachments[0].data[4:8] == b"ftyp"
        assert (await world.reply(press)).startswith("✅ Done")
    assert fake.identified == 2


async def test_remix_opens_a_dialog_and_only_the_requester_or_a_moderator_may_press(world: World) -> None:
    fake = world.fake
    async with world.running():
        video = await world.video(await fake.slash("create_single", by=world.alice, prompt="a quiet lake"))
        parent = await world.job_of(video)

        stranger = await fake.click(video, f"px:reroll:{parent.id}", by=world.bob)
        assert await world.reply(stranger) == "Only the person who asked for this video can use its buttons."
        nosy = await fake.click(video, f"px:remix:{parent.id}", by=world.bob)
        assert await world.reply(nosy) == "Only the person who asked for this video can use its buttons."
        assert nosy.modal is None

        opened = await fake.click(video, f"px:remix:{parent.id}", by=world.alice)
        dialog = await fake.wait_for(lambda: opened.modal, what="the remix dialog")
        assert dialog["title"] == "🔀 Remix with a new prompt"
        assert dialog["components"][0]["component"]["value"] == "a quiet lake"
        submitted = await fake.submit_modal(opened, {"prompt": "a stormy lake"}, by=world.alice)
        remixed = await world.video(submitted)
        remix_job = await world.job_of(remixed)
        assert remix_job.action is ResultAction.REMIX and remix_job.request.user_prompt == "a stormy lake"
        assert remixed.content.startswith("a stormy lake\n")

        moderated = await fake.click(video, f"px:upscale:{parent.id}", by=world.mod)
        await world.video(moderated)
        assert (await world.job_of(fake.followups(moderated)[0])).user.user_id == str(world.mod.id)


async def test_result_after_the_token_lifetime_is_posted_where_it_was_asked(world: World, sandbox: Sandbox) -> None:
    fake = world.fake
    thread = fake.add_channel("sunrises", thread_of=fake.channel)
    sandbox.config.generation_seconds = 1.0
    fake.token_lifetime = 1.0  # Discord's side: any use of the token later is a violation
    async with world.running(token_lifetime=timedelta(seconds=0.3)):
        asked = await fake.slash("create_single", by=world.alice, channel=thread, prompt="@everyone a slow sunrise")
        posted = await fake.wait_for(
            lambda: next((m for m in fake.channel_messages(thread) if m.interaction_id is None), None),
            what="the post in the thread",
        )
        job = await world.job_of(posted)
        assert (job.chat.chat_id, job.chat.thread_id) == (str(fake.channel.id), str(thread.id))
        assert posted.content.startswith(f"{world.alice.mention}\n@everyone a slow sunrise")
        assert posted.mentions == [world.alice.id]  # the requester is pinged, @everyone is not
        assert posted.attachments[0].data[4:8] == b"ftyp" and len(posted.custom_ids) == 5
        assert fake.followups(asked) == []


async def test_a_video_over_the_upload_limit_goes_out_as_a_link(world: World) -> None:
    fake = world.fake
    fake.attachment_size_limit = 2000  # the sandbox's videos are a few kB
    async with world.running():
        video = await world.video(await fake.slash("create_single", by=world.alice, prompt="a big wave"))
        job = await world.job_of(video)
        assert video.attachments == []
        assert job.result_url is not None and job.result_url.endswith(".mp4")
        assert video.embeds[0]["url"] == job.result_url


async def test_a_channel_closed_to_the_bot_is_reported_and_not_retried(world: World) -> None:
    fake = world.fake
    fake.fail_next("POST /channels/{channel_id}/messages", 403, code=50013, message="Missing Permissions")
    async with world.running(token_lifetime=timedelta(0)):
        await fake.slash("create_single", by=world.alice, prompt="a locked door")
        [note] = await fake.wait_for(lambda: fake.channel_messages(fake.dm_channel(world.alice)), what="the DM")
        assert "not allowed to post in that channel" in note.content
        [job] = await eventually(lambda: world.core.jobs.in_states([JobState.DELIVERED]), what="given up")
        assert job.outcome is JobState.COMPLETED
        assert len(fake.requests_to("POST /channels/{channel_id}/messages")) == 2  # the refused post, the DM


@pytest.mark.parametrize(
    ("route", "token_lifetime"),
    [
        # While the interaction lives the video is a followup through its webhook …
        ("POST /webhooks/{webhook_id}/{webhook_token}", timedelta(minutes=15)),
        # … after it, a channel message.
        ("POST /channels/{channel_id}/messages", timedelta(0)),
    ],
)
async def test_a_rate_limited_post_waits_as_told_and_arrives_once(
    world: World, route: str, token_lifetime: timedelta
) -> None:
    fake = world.fake
    fake.rate_limit_next(route, retry_after=0.3)
    async with world.running(token_lifetime=token_lifetime):
        await fake.slash("create_single", by=world.alice, prompt="a hummingbird at a feeder")
        [job] = await eventually(lambda: world.core.jobs.in_states([JobState.DELIVERED]), what="the delivery")
        posts = [r for r in fake.requests_to(route) if r.files]
        assert [r.status for r in posts] == [429, 200]
        assert posts[1].at - posts[0].at >= 0.3  # discord.py waited the retry_after it was given
        shown = [m for m in fake.messages.values() if job.id in " ".join(m.custom_ids)]
        assert len(shown) == 1 and shown[0].attachments[0].filename.endswith(".mp4")


async def test_a_dismissed_progress_message_does_not_stop_the_video(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    async with world.running():
        asked = await fake.slash("create_single", by=world.alice, prompt="a paper boat on a canal")
        progress = await fake.wait_for(
            lambda: (message := fake.original(asked)) is not None and not message.loading and message,
            what="the first progress text",
        )
        fake.dismiss(progress)
        video = await world.video(asked)
        job = await world.job_of(video)
        await eventually(lambda: world.core.jobs.in_states([JobState.DELIVERED]), what="the delivery")
    edits = fake.requests_to("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
    assert edits[-1].status == 404  # the "Done" edit found no message, and nothing minded
    assert [m for m in fake.followups(asked) if m.custom_ids] == [video]
    assert job.id in video.content
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_member_who_blocks_direct_messages_costs_one_try(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    # The channel is closed to the bot, and the member does not take DMs from it either.
    fake.fail_next("POST /channels/{channel_id}/messages", 403, code=50013, message="Missing Permissions")
    fake.fail_next("POST /channels/{channel_id}/messages", 403, code=50007, message="Cannot send messages to this user")
    async with world.running(token_lifetime=timedelta(0)):
        await fake.slash("create_single", by=world.alice, prompt="a closed gate")
        [job] = await eventually(lambda: world.core.jobs.in_states([JobState.DELIVERED]), what="given up")
        await asyncio.sleep(0.3)  # several scheduler and delivery passes
    assert job.outcome is JobState.COMPLETED
    assert [r.status for r in fake.requests_to("POST /channels/{channel_id}/messages")] == [403, 403]
    assert "could not tell discord:" in caplog.text and "50007" in caplog.text


async def test_admin_commands_and_their_refusals(world: World) -> None:
    fake, alice, bob = world.fake, world.alice, world.bob
    async with world.running():
        assert (await world.reply(await fake.slash("quota", by=alice))).startswith("Your quota: unlimited")
        refused = await fake.slash("setquota", by=alice, amount="5")
        assert await world.reply(refused) == "Sorry, only admins can use this command."
        set_by_operator = await fake.slash("setquota", by=world.operator, amount="5", user=bob)
        assert await world.reply(set_by_operator) == "bob's quota is now 5 videos per daily window."
        bad_amount = await fake.slash("setquota", by=world.admin, amount="lots")
        assert (await world.reply(bad_amount)) == (
            "quota: 'lots' is not a whole number between 0 and 1000000, or 'unlimited'"
        )

        banned = await fake.slash("ban", by=world.admin, user=bob)
        assert await world.reply(banned) == "bob is banned from the bot in this group."
        shut_out = await fake.slash("create_single", by=bob, prompt="a cat")
        assert await world.reply(shut_out) == "You are not allowed to use this bot here."

        added = await fake.slash("filter", by=world.admin, action="add", text="dragon")
        assert await world.reply(added) == "Added “dragon”."
        blocked = await fake.slash("create_single", by=alice, prompt="a dragon over the hills")
        assert (await world.reply(blocked)).startswith(
            "Your prompt was refused: it contains the blocked term “dragon”."
        )
        log = await world.reply(await fake.slash("modlog", by=world.admin))
        assert "alice — rejected by blocklist “dragon”" in log

        mode = await fake.slash("filtermode", by=world.admin, mode="strike", strike_limit=2)
        assert (await world.reply(mode)).startswith("Updated. Mode: strike (2 refusals in 24 h")
        credits = await world.reply(await fake.slash("credits", by=world.operator))
        assert credits.startswith("PixVerse accounts:\n• ")
        stats = await world.reply(await fake.slash("stats", by=world.admin, days=7))
        assert stats.startswith("No jobs in the last 7 days") or stats.startswith("Last 7 days")


async def test_bad_input_is_answered_ephemerally_naming_the_field(world: World) -> None:
    fake = world.fake
    async with world.running():
        wrong = await fake.slash("create_single", by=world.alice, prompt="a cat", style="Realistic", character="hutao")
        assert await world.reply(wrong) == "character: only works with style Anime (the style here is Realistic)"
        odd = await fake.slash("create_single", by=world.alice, prompt="a cat", quality="1080p", duration=10)
        assert "duration 10s is too long for 1080p" in await world.reply(odd)
        missing = await fake.slash("status", by=world.alice, job="nope")
        assert await world.reply(missing) == "No job 'nope' found. /jobs lists your recent jobs."
        assert await world.core.jobs.in_states(list(JobState)) == []


async def test_progress_edits_are_throttled_but_the_outcome_is_not_held_back(world: World) -> None:
    fake = world.fake
    async with world.running(edit_interval=60.0):
        asked = await fake.slash("create_single", by=world.alice, prompt="a paper boat")
        await world.video(asked)
        edits = fake.requests_to("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
        # Started and Generating came within the minute after Queued: coalesced, then dropped for the outcome.
        assert [r.body["content"][:9] for r in edits] == ["⏳ Queued ", "✅ Done — "]


async def test_a_stale_generating_report_leaves_the_delivered_answer_alone(world: World) -> None:
    fake = world.fake
    async with world.running():
        asked = await fake.slash("create_single", by=world.alice, prompt="a paper boat")
        job = await world.job_of(await world.video(asked))
        delivered = await eventually(lambda: _delivered(world.core, job.id), what=f"job {job.id} recorded as delivered")
        edit_route = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
        edits = len(fake.requests_to(edit_route))

        # The job as a poll (or a replayed progress callback) read it before it completed.
        stale = delivered.evolve(state=JobState.GENERATING, outcome=None)
        still_running = Video.model_validate(
            {"video_id": job.video_id, "video_status_name": "GENERATING", "video_status_final": False}
        )
        await world.core.tracker.apply(stale, still_running)
        await world.core.progress.idle()

        assert len(fake.requests_to(edit_route)) == edits
        original = fake.original(asked)
        assert original is not None and original.content.startswith("✅ Done")


async def _delivered(core: Core, job_id: str) -> Job | None:
    job = await core.jobs.get(job_id)
    return job if job is not None and job.state is JobState.DELIVERED else None


async def test_lookups_help_and_autocomplete(world: World) -> None:
    fake, alice = world.fake, world.alice
    async with world.running():
        assert await world.reply(await fake.slash("jobs", by=alice)) == "No videos yet. Try /create_single."
        video = await world.video(await fake.slash("create_single", by=alice, prompt="a green door"))
        job = await world.job_of(video)
        assert (await world.reply(await fake.slash("jobs", by=alice))).startswith(f"{job.id} · done · a green door")
        details = await world.reply(await fake.slash("status", by=alice, job=job.id))
        assert details.startswith(f"Job {job.id}: done\nPrompt: a green door")
        someone_elses = await fake.slash("status", by=world.bob, job=job.id)
        assert await world.reply(someone_elses) == f"No job {job.id!r} found. /jobs lists your recent jobs."

        help_text = await world.reply(await fake.slash("help", by=alice))
        assert "/create_single — Make a short video from a text prompt" in help_text
        assert "🔄 Reroll · 🔀 Remix · ⬆️ Upscale · ➕ Extend" in help_text
        assert help_text.index("/quota") < help_text.index("For server admins:") < help_text.index("/setquota")

        typing = await fake.autocomplete("create_single", by=alice, focused="character", prompt="x", style="Anime")
        await fake.wait_for(lambda: typing.choices is not None, what="character choices")
        assert [c["value"] for c in typing.choices or []] == world.settings.anime_characters
        narrowed = await fake.autocomplete("create_single", by=alice, focused="character", character="HU")
        await fake.wait_for(lambda: narrowed.choices is not None, what="narrowed choices")
        assert [c["value"] for c in narrowed.choices or []] == ["hutao"]
        ids = await fake.autocomplete("status", by=alice, focused="job", job="")
        await fake.wait_for(lambda: ids.choices is not None, what="job choices")
        assert [c["value"] for c in ids.choices or []] == [job.id]


async def test_silent_refusals_leave_no_trace_and_bugs_get_an_apology(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    async with world.running():
        switched_off = await fake.slash("bot", by=world.admin, enabled=False)
        assert (await world.reply(switched_off)).startswith("The bot is off in this group")
        ignored = await fake.slash("jobs", by=world.alice)
        await fake.wait_for(lambda: (m := fake.original(ignored)) is not None and m.deleted, what="the withdrawn reply")
        assert (
            await world.reply(await fake.slash("bot", by=world.admin, enabled=True)) == "The bot is on in this group."
        )

        async def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(world.core.service, "recent_jobs", broken)
        with caplog.at_level(logging.ERROR, logger="adapters.discord.responder"):
            assert await world.reply(await fake.slash("jobs", by=world.alice)) == APOLOGY
        [record] = [r for r in caplog.records if r.name == "adapters.discord.responder"]
        assert record.exc_info is not None and "a bug" in str(record.exc_info[1])


async def test_operator_alerts_arrive_as_direct_messages(world: World) -> None:
    async with world.running():
        await world.core.progress.alert_operator("Account alice@sandbox.local is out of credits.")
        [alert] = world.fake.channel_messages(world.fake.dm_channel(world.operator))
        assert alert.content == "⚠️ Account alice@sandbox.local is out of credits."


def test_long_answers_are_cut_to_fit_a_message() -> None:
    log_lines = "\n".join(f"entry {n}: " + "x" * 60 for n in range(100))
    cut = fit(log_lines)
    assert len(cut) <= 2000 and cut.endswith("…") and cut[:-1].endswith("x" * 60)
    assert fit("short") == "short"


def test_filter_mode_options_become_the_cores_words() -> None:
    assert filter_mode_args(None, None, None, None) == []
    assert filter_mode_args("exempt off", None, None, None) == ["exempt", "off"]
    assert filter_mode_args("strike", 3, 12.0, None) == ["strike", "3", "12"]
    with pytest.raises(InvalidInput, match="window_hours: is needed too when mute_minutes is set"):
        filter_mode_args("strike", 3, None, 30.0)
    with pytest.raises(InvalidInput, match="strike_limit: only goes with mode strike"):
        filter_mode_args("reject", 3, None, None)


async def test_a_failed_video_is_explained_to_the_requester(world: World) -> None:
    fake = world.fake
    async with world.running():
        asked = await fake.slash("create_single", by=world.alice, prompt="watch it explode")

        def failure() -> FakeMessage | None:
            message = fake.original(asked)
            return message if message is not None and message.content.startswith("❌") else None

        explained = await fake.wait_for(failure, what="the failure")
        assert explained.content.startswith("❌ No video for “watch it explode”: PixVerse could not make")
        assert explained.ephemeral
        assert fake.followups(asked) == []


ADMIN_COMMANDS_AS_MEMBER = [
    ("setquota", {"amount": "5"}),
    ("resetquota", {}),
    ("ban", {"user": "bob"}),
    ("unban", {"user": "bob"}),
    ("unmute", {"user": "bob"}),
    ("filter", {"action": "list"}),
    ("filtermode", {"mode": "strike"}),
    ("modlog", {}),
    ("stats", {}),
    ("credits", {}),
    ("bot", {"enabled": False}),
]


@pytest.mark.parametrize(("command", "options"), ADMIN_COMMANDS_AS_MEMBER, ids=[c for c, _ in ADMIN_COMMANDS_AS_MEMBER])
async def test_every_admin_command_refuses_a_plain_member(world: World, command: str, options: dict) -> None:
    options = {k: (world.bob if v == "bob" else v) for k, v in options.items()}
    async with world.running():
        refused = await world.fake.slash(command, by=world.alice, **options)
        assert await world.reply(refused) == "Sorry, only admins can use this command."


async def test_resetquota_unban_and_switching_the_bot_off(world: World) -> None:
    fake, bob = world.fake, world.bob
    async with world.running():
        await world.reply(await fake.slash("setquota", by=world.operator, amount="1", user=bob))
        await world.video(await fake.slash("create_single", by=bob, prompt="a cat"))
        over = await fake.slash("create_single", by=bob, prompt="another cat")
        assert "quota of 1 video does not have room for this request (1 video)" in await world.reply(over)
        reset = await fake.slash("resetquota", by=world.operator, user=bob)
        assert await world.reply(reset) == "bob's usage was reset for this window."
        await world.video(await fake.slash("create_single", by=bob, prompt="a third cat"))

        await world.reply(await fake.slash("ban", by=world.admin, user=bob))
        unbanned = await fake.slash("unban", by=world.admin, user=bob)
        assert await world.reply(unbanned) == "bob is no longer banned."

        off = await fake.slash("bot", by=world.admin, enabled=False)
        assert "The bot is off in this group" in await world.reply(off)
        ignored = await fake.slash("quota", by=bob)
        # Silent: acknowledged (Discord requires it), then the placeholder is removed, nothing said.
        await fake.wait_for(lambda: (m := fake.original(ignored)) is not None and m.deleted, what="the silent refusal")
        on = await fake.slash("bot", by=world.admin, enabled=True)
        assert await world.reply(on) == "The bot is on in this group."


async def test_unmute_lifts_a_strike_mute_and_a_muted_admin_still_runs_the_server(world: World) -> None:
    fake, alice, admin = world.fake, world.alice, world.admin
    async with world.running():
        await world.reply(await fake.slash("filter", by=admin, action="add", text="dragon"))
        await world.reply(await fake.slash("filtermode", by=admin, mode="strike", strike_limit=1))
        await world.reply(await fake.slash("filtermode", by=admin, mode="exempt off"))
        for member in (alice, admin):
            muted = await fake.slash("create_single", by=member, prompt="a dragon")
            assert "you are muted from the bot here for 60 min" in await world.reply(muted)
        still_muted = await fake.slash("create_single", by=alice, prompt="a cat")
        assert (await world.reply(still_muted)).startswith("You are muted from the bot here")

        # Muted too, the admin still runs the server's moderation.
        log = await world.reply(await fake.slash("modlog", by=admin))
        assert "alice — muted by blocklist “dragon”" in log and "admin — muted by blocklist" in log
        refused = await fake.slash("unmute", by=alice, user=alice)
        assert await world.reply(refused) == "Sorry, only admins can use this command."
        unmuted = await fake.slash("unmute", by=admin, user=alice)
        assert await world.reply(unmuted) == "alice is no longer muted here; their strikes were cleared."
        await world.video(await fake.slash("create_single", by=alice, prompt="a cat"))
        again = await fake.slash("unmute", by=admin, user=alice)
        assert await world.reply(again) == "alice was not muted here; any strikes were cleared."


async def test_admin_numbers_out_of_range_are_refused_naming_the_range(world: World) -> None:
    fake = world.fake
    async with world.running():
        # Discord itself holds typed numbers to the same ranges the core checks.
        declared = {
            o["name"]: o for o in next(c for c in fake.commands[fake.guild_id] if c["name"] == "filtermode")["options"]
        }
        assert (declared["window_hours"]["min_value"], declared["window_hours"]["max_value"]) == (0.1, 720)
        assert (declared["mute_minutes"]["min_value"], declared["mute_minutes"]["max_value"]) == (1, 525600)

        for amount in ("1000001", "inf", "-3"):
            too_much = await fake.slash("setquota", by=world.admin, amount=amount)
            assert await world.reply(too_much) == (
                f"quota: {amount!r} is not a whole number between 0 and 1000000, or 'unlimited'"
            )
        # Should a client send what Discord would not, the core still refuses it.
        odd = await fake.slash("filtermode", by=world.admin, mode="strike", strike_limit=3, window_hours=1e6)
        assert await world.reply(odd) == "window hours: '1000000' is not a number between 0.1 and 720"
        shown = await world.reply(await fake.slash("filtermode", by=world.admin))
        assert shown.startswith("Mode: reject")
        pool = await fake.slash("setquota", by=world.admin, amount="1000000")
        assert await world.reply(pool) == "This group's shared pool is now 1000000 videos per daily window."


async def test_a_made_video_that_could_not_be_posted_is_not_called_no_video(world: World) -> None:
    """Given up after DELIVERY_MAX_ATTEMPTS: the requester reads that the video was made
    (with its link), not "No video for …"."""
    fake = world.fake
    world.settings = world.settings.model_copy(update={"delivery_max_attempts": 2, "delivery_retry_initial": 0.1})
    route = "POST /channels/{channel_id}/messages"
    fake.fail_next(route, 503, times=2)  # Discord down for both tries (posted in the channel: token expired)
    async with world.running(token_lifetime=timedelta(0)):
        await fake.slash("create_single", by=world.alice, prompt="a hummingbird at a feeder")
        [job] = await eventually(lambda: world.core.jobs.in_states([JobState.DELIVERED]), what="the give-up")
        [video_tries, video_again, told] = fake.requests_to(route)
        assert (video_tries.status, video_again.status, told.status) == (503, 503, 200)
        [message] = [m for m in fake.messages.values() if "The video was made" in m.content]
        assert str(job.result_url) in message.content and f"<@{world.alice.id}>" in message.content
        assert "No video" not in message.content and "⚠️" in message.content


async def test_id_names_the_user_the_channel_and_the_server_as_the_settings_take_them(world: World) -> None:
    fake, alice = world.fake, world.alice
    async with world.running():
        answer = await world.reply(await fake.slash("id", by=alice))
        assert answer.splitlines() == [
            f"Your id: discord:{alice.id} (as BOT_ADMIN_IDS takes it: BOT_ADMIN_IDS=discord:{alice.id})",
            f"This channel: {fake.channel.id}",
            f"This server: {fake.guild_id} (as DISCORD_GUILD_IDS takes it)",
            "You are not an operator: the bot's owner adds your id to BOT_ADMIN_IDS and restarts it.",
        ]
        operator = await world.reply(await fake.slash("id", by=world.operator))
        assert "You are an operator of this bot." in operator
        help_text = await world.reply(await fake.slash("help", by=alice))
        assert help_text.index("/id — ") < help_text.index("For server admins:")


PROGRESS_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"


def _edits(fake: FakeDiscord, interaction: FakeInteraction) -> list[CapturedRequest]:
    """The edits of `interaction`'s response, progress and outcome."""
    return [r for r in fake.requests_to(PROGRESS_EDIT) if interaction.token in r.path and r.status == 200]


def _progress_edits(fake: FakeDiscord, interaction: FakeInteraction) -> list[CapturedRequest]:
    """The edits of `interaction`'s response that showed progress (not its outcome)."""
    return [r for r in _edits(fake, interaction) if not r.body["content"].startswith(("✅", "❌", "⚠️"))]


async def test_a_busy_channel_does_not_hold_back_a_new_members_first_answer(world: World, sandbox: Sandbox) -> None:
    """Each job's progress edits its own requester's response (an interaction webhook,
    limited per interaction): other jobs' progress in the channel must not queue it."""
    fake = world.fake
    gap = 2.0
    sandbox.config.generation_seconds = 5.0  # the others stay busy, their progress changing every second
    async with world.running(edit_interval=gap):
        busy = [
            await fake.slash("create_single", by=fake.add_member(f"busy{n}"), prompt=f"a busy fox {n}")
            for n in range(4)
        ]
        await fake.wait_for(lambda: _progress_edits(fake, busy[0]), what="the first busy job answered")
        # The channel is busy: every job has news waiting (its first answer, elapsed seconds).
        newcomer = fake.add_member("newcomer")
        asked = await fake.slash("create_single", by=newcomer, prompt="a quiet fox")
        first = (await fake.wait_for(lambda: _edits(fake, asked), what="the newcomer's first answer"))[0]
        # One channel budget would have made it wait behind the others' edits (2 s apart each).
        assert first.at - asked.dispatched_at < 1.0, (first.at - asked.dispatched_at, first.body)
        assert first.body["content"].startswith(("⏳ Queued", "🚀", "🎬")), first.body

        for interaction in [*busy, asked]:
            await world.video(interaction, timeout=30)
        # Each response was still edited at most every `gap` seconds.
        for interaction in [*busy, asked]:
            times = [r.at for r in _progress_edits(fake, interaction)]
            assert len(times) >= 2, times
            assert all(later - earlier >= gap * 0.95 for earlier, later in zip(times, times[1:], strict=False)), times


CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


async def test_the_gate_checks_while_the_deferral_is_on_its_way_and_answers_after_it(world: World) -> None:
    """The gate runs while Discord has not yet answered the deferral: a refusal still edits the
    deferred answer, after it; a deferral Discord refuses queues nothing, checked or not."""
    fake = world.fake
    async with world.running():
        await world.reply(await fake.slash("ban", by=world.admin, user=world.bob))
        fake.delay_next(CALLBACK, 0.3)
        refused = await fake.slash("create_single", by=world.bob, prompt="a banned fox")
        assert await world.reply(refused) == "You are not allowed to use this bot here."
        assert refused.callback_type == DEFERRED_CHANNEL_MESSAGE
        [deferral] = [r for r in fake.requests_to(CALLBACK) if r.at >= refused.dispatched_at]
        [refusal] = [r for r in fake.requests if r.method == "PATCH" and refused.token in r.path]
        assert refusal.at - refused.dispatched_at >= 0.3 and refusal.at > deferral.at

        fake.fail_next(CALLBACK, 404, code=10062, message="Unknown interaction")
        lost = await fake.slash("create_single", by=world.alice, prompt="a fox nobody acknowledged")
        # The bot's apology is its second try at answering: Discord took that one.
        assert await world.reply(lost) == APOLOGY
        assert await world.core.jobs.in_states(list(JobState)) == []
        # Alice's next command is not held back by anything the lost one left behind.
        queued = await fake.slash("create_single", by=world.alice, prompt="a fox, again")
        assert (await world.reply(queued)).startswith(("⏳ Queued", "🚀", "🎬"))


async def test_the_command_is_checked_while_the_deferral_is_on_its_way(world: World) -> None:
    """Parsing, moderation and the request's checks do not wait for Discord's answer to the
    deferral (only queueing the job does, as it answers through the deferred response): a
    blocked prompt is recorded while the deferral is still unanswered, and told after it."""
    fake = world.fake
    async with world.running():
        assert await world.reply(await fake.slash("filter", by=world.admin, action="add", text="dragon")) == (
            "Added “dragon”."
        )
        group = f"discord:{fake.guild_id}"
        fake.delay_next(CALLBACK, 1.5)
        blocked = await fake.slash("create_single", by=world.alice, prompt="a dragon over the hills")
        [entry] = await eventually(lambda: world.core.moderation.log(group), what="the refusal recorded")
        # Ordering, not timing: the moderation ran before the deferral was answered.
        assert blocked.callback is None, "the deferral was answered before the prompt was moderated"
        assert entry.rule == "dragon" and entry.user_key == f"discord:{world.alice.id}"
        assert (await world.reply(blocked)).startswith(
            "Your prompt was refused: it contains the blocked term “dragon”."
        )
        assert blocked.callback_type == DEFERRED_CHANNEL_MESSAGE
        [deferral] = [r for r in fake.requests_to(CALLBACK) if r.at >= blocked.dispatched_at]
        [refusal] = [r for r in fake.requests if r.method == "PATCH" and blocked.token in r.path]
        assert refusal.at > deferral.at


async def test_a_prepared_command_whose_deferral_discord_refuses_is_neither_queued_nor_charged(world: World) -> None:
    """The request is checked and its quota reservation worked out while the deferral is on its
    way; a deferral Discord refuses leaves no job, nothing reserved or used, and the quota whole."""
    fake = world.fake
    async with world.running():
        alice = UserRef(Platform.DISCORD, str(world.alice.id), "alice")
        fake.delay_next(CALLBACK, 0.5)  # time enough for the checks to finish before the refusal
        fake.fail_next(CALLBACK, 404, code=10062, message="Unknown interaction")
        lost = await fake.slash("create_single", by=world.alice, prompt="a fox nobody acknowledged")
        assert await world.reply(lost) == APOLOGY
        assert await world.core.jobs.in_states(list(JobState)) == []
        mine, _pool = await world.core.quotas.status(alice)
        assert (mine.used, mine.reserved) == (0, 0)

        queued = await fake.slash("create_single", by=world.alice, prompt="a fox, again")
        assert (await world.reply(queued)).startswith(("⏳ Queued", "🚀", "🎬"))
        [job] = await world.core.jobs.in_states(list(JobState))
        mine, _pool = await world.core.quotas.status(alice)
        assert mine.used + mine.reserved == world.core.quotas.cost(job)  # charged once, for the job that runs
