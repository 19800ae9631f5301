"""Effects: /effects lists and pages the templates, /effect applies one (template_id, never a
model), two-picture effects from an album, image templates deliver a picture; through the
real aiogram and discord.py adapters, the console, and the sandbox's catalogue."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.console.app import run_console
from adapters.discord import running_discord
from bot.bootstrap import open_core
from bot.domain import JobKind, JobState, MediaType
from bot.effects import EffectsCatalogue
from bot.quota import QuotaUnit
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from bot.sandbox.routes_catalog import EFFECTS
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
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
from tests.harness import fast_settings, requester, tiny_png

SANDBOX_ALICE = "alice@sandbox.local"
RED, BLUE = tiny_png(rgb=(220, 30, 30)), tiny_png(rgb=(30, 30, 220))
SPIN = next(e for e in EFFECTS if e.name == "Sandbox Spin")  # one picture, a video, 20 credits
HUG = next(e for e in EFFECTS if e.name == "Sandbox Hug")  # two pictures, a video, 20 + 20 credits
ANIME = next(e for e in EFFECTS if e.name == "Anime Me")  # one picture, an image template


def uploaded(sandbox: Sandbox, path: str | None) -> bytes | None:
    upload = sandbox.uploads.get((path or "").removeprefix("upload/"))
    return upload.data if upload else None


# ------------------------------------------------------------------ the sandbox's catalogue


async def test_the_sandbox_offers_twenty_effects_of_both_kinds_with_previews_it_serves(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {sandbox.config.token}"}
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/", headers=headers) as api:
        items = (await api.get("videos/effects", params={"email": SANDBOX_ALICE})).json()["items"]
        assert len(items) >= 20
        assert {i["effect_type"] for i in items} == {"1", "2"}
        assert {i["template_type"] for i in items} == {1, 2}
        first = items[0]
        for field, magic in (("thumbnail_gif_path", b"GIF8"), ("thumbnail_video_path", b"ftyp")):
            assert first[field].startswith(sandbox.base_url)
            media = await api.get(first[field])
            assert media.status_code == 200 and magic in media.content[:8]

        # A template with a model, an unknown template, a two-picture one with one picture: 400s.
        path = (
            await api.post(
                "files/", params={"email": SANDBOX_ALICE}, content=RED, headers={"Content-Type": "image/png"}
            )
        ).json()["result"][0]["path"]
        base = {"email": SANDBOX_ALICE, "first_frame_path": path}
        for body, field in (
            ({"template_id": SPIN.template_id, "model": "v5"}, "model"),
            ({"template_id": 42}, "template_id"),
            ({"template_id": HUG.template_id}, "last_frame_path"),
        ):
            response = await api.post("videos/create", json=base | body)
            assert response.status_code == 400 and field in response.json()["error"], response.text
        assert sandbox.videos == {}
        image = await api.post("videos/create", json=base | {"template_id": ANIME.template_id})
        assert image.status_code == 200 and set(image.json()) == {"image_id"}


# ------------------------------------------------------------------ Telegram


async def test_telegram_effects_lists_searches_and_pages_with_previews(fake: FakeTelegram, bot: Any) -> None:
    asked = await fake.user_sends_text(ALICE_CHAT, ALICE, "/effects")
    listing = await wait_text_reply(fake, ALICE_CHAT, asked, "Effects on offer")
    assert f"{len(EFFECTS)} (page 1 of" in listing["text"]
    # The operator's unit here is videos: every effect costs one.
    assert "Sandbox Hug [hot] — two pictures, 5s video, 1 video" in listing["text"]
    data = buttons(listing)
    assert all(len(d.encode()) <= 64 for d in data)
    [next_page] = [d for d in data if d.startswith("fx:")]

    await fake.user_presses_button(ALICE_CHAT, ALICE, listing, next_page)
    paged = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(ALICE_CHAT) if "(page 2 of" in m.get("text", "")), None),
        what="page 2",
    )
    assert paged["message_id"] == listing["message_id"]  # the listing was edited in place
    assert "Sandbox Spin" not in paged["text"]

    # A preview button sends the effect's animation, fetched from the sandbox.
    preview = next(d for d in buttons(paged) if d.startswith("fxv:"))
    await fake.user_presses_button(ALICE_CHAT, ALICE, paged, preview)
    [animation] = await fake.wait_for(
        lambda: [m for m in fake.bot_messages(ALICE_CHAT) if "animation" in m] or None, what="an animation"
    )
    assert fake.file(animation["animation"]["file_id"]).data.startswith(b"GIF8")
    assert "/effect " in animation["caption"]

    search = await fake.user_sends_text(ALICE_CHAT, ALICE, "/effects portrait")
    found = await wait_text_reply(fake, ALICE_CHAT, search, "Effects matching")
    assert "Figurine Portrait" in found["text"] and "Couple Portrait" in found["text"]
    assert "Sandbox Hug" not in found["text"] and "2 (page 1 of 1)" in found["text"]
    assert fake.spec_violations == []


async def test_telegram_effect_on_a_photo_sends_its_template_and_no_model_and_charges_its_price(
    tmp_path: Path, fake: FakeTelegram, sandbox: Sandbox
) -> None:
    async with running_bot(telegram_settings(tmp_path, sandbox, fake, quota_unit="credits")) as bot:
        asked = await fake.user_sends_text(ALICE_CHAT, ALICE, "/effects hug")
        listing = await wait_text_reply(fake, ALICE_CHAT, asked, "Effects matching")
        assert "Sandbox Hug [hot] — two pictures, 5s video, 40 credits" in listing["text"]  # 20 + 20
        await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/effect sandbox spin")
        [video] = await wait_videos(fake, ALICE_CHAT)
        job = await bot.job(job_id_of(video))
        assert job.request.kind is JobKind.EFFECT and job.request.template_id == SPIN.template_id
        made = sandbox.videos[job.video_id or ""]
        # The sandbox refuses `model` with `template_id` (400): accepted means none was sent.
        assert made.model == f"template-{SPIN.template_id}" and made.cost == SPIN.credits
        assert uploaded(sandbox, job.request.image_path) == RED
        assert fake.file(video["video"]["file_id"]).data[4:8] == b"ftyp"
        assert "effect Sandbox Spin" in video["caption"]
        # No prompt: no remix. The template's model is not in the catalogue: no upscale; extend
        # runs on the catalogue's extend_fallback, modify on the models that modify.
        assert [b.split(":")[1] for b in buttons(video)] == ["reroll", "extend", "modify"]
        status, _ = await bot.core.quotas.status(user_ref(ALICE))
        assert status.unit is QuotaUnit.CREDITS and status.used == SPIN.credits == 20
        assert await bot.core.blobs.total_bytes() == 0

        # 🔄 makes the same effect on the same (already uploaded) picture again.
        uploads = sandbox.count("POST", "/v2/pixverse/files")
        await fake.user_presses_button(ALICE_CHAT, ALICE, video, buttons(video)[0])
        [_, again] = await wait_videos(fake, ALICE_CHAT, 2)
        rerolled = await bot.job(job_id_of(again))
        assert rerolled.request.template_id == SPIN.template_id and rerolled.request.seed != job.request.seed
        assert sandbox.count("POST", "/v2/pixverse/files") == uploads
        status, _ = await bot.core.quotas.status(user_ref(ALICE))
        assert status.used == 2 * SPIN.credits


async def test_telegram_two_picture_effect_from_an_album_sends_the_second_as_last_frame(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    first = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/effect Sandbox Hug", media_group_id="h1")
    await fake.user_sends_photo(ALICE_CHAT, ALICE, BLUE, media_group_id="h1")

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.job(job_id_of(video))
    assert [uploaded(sandbox, p) for p in job.request.image_paths] == [RED, BLUE]
    assert sandbox.videos[job.video_id or ""].cost == HUG.credits == 40
    assert video["reply_to_message"]["message_id"] == first["message_id"]

    # The same effect on one photo is refused, saying what it needs.
    sent = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/effect Sandbox Hug")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "needs")
    assert "the effect Sandbox Hug needs two pictures (got 1); send an album of two photos" in reply["text"]
    assert len(await bot.core.jobs.in_states(list(JobState))) == 1


async def test_telegram_image_template_delivers_a_picture(fake: FakeTelegram, bot: Any, sandbox: Sandbox) -> None:
    photo = await fake.user_sends_photo(ALICE_CHAT, ALICE, BLUE, "text")
    await fake.user_sends_text(ALICE_CHAT, ALICE, f"/effect {ANIME.template_id}", reply_to=photo)

    picture = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(ALICE_CHAT) if "photo" in m), None), what="a picture"
    )
    assert fake.calls_to("sendVideo") == []
    job = await bot.job(job_id_of(picture))
    assert job.request.makes is MediaType.PICTURE and "-image:" in (job.video_id or "")
    assert fake.file(picture["photo"][-1]["file_id"]).data.startswith(b"\xff\xd8")  # the sandbox's JPEG
    assert [b.split(":")[1] for b in buttons(picture)] == ["reroll"]


async def test_telegram_unknown_effect_is_refused_naming_effects(fake: FakeTelegram, bot: Any) -> None:
    sent = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/effect Moonwalk")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "effect")
    assert "there is no effect 'Moonwalk'; /effects lists them and /effects <words> searches them" in reply["text"]
    assert await bot.core.jobs.in_states(list(JobState)) == []
    assert fake.calls_to("getFile") == []  # refused before the photo was downloaded


# ------------------------------------------------------------------ Discord


async def test_discord_effects_pages_with_buttons_and_effect_autocompletes(tmp_path: Path, sandbox: Sandbox) -> None:
    async with FakeDiscord() as fake:
        settings = fast_settings(
            tmp_path, sandbox, discord_bot_token=SecretStr(fake.token), discord_guild_ids=[str(fake.guild_id)]
        )
        alice = fake.add_member("alice")
        async with open_core(settings) as core, running_discord(core, guild_ready_timeout=0.05, edit_interval=0.0):
            synced = {c["name"]: c for c in fake.commands[fake.guild_id]}
            options = {o["name"]: o for o in synced["effect"]["options"]}
            assert options["effect"]["required"] and options["effect"]["autocomplete"]
            assert options["image"]["required"] and not options["image2"].get("required")
            assert "model" not in options

            asked = await fake.slash("effects", by=alice)
            listing = await fake.wait_for(
                lambda: (m := fake.original(asked)) is not None and "Effects on offer" in m.content and m,
                what="the listing",
            )
            assert "(page 1 of 5)" in listing.content and len(listing.embeds) == 5
            assert listing.embeds[0]["image"]["url"].endswith(".gif")
            [_, next_id] = listing.custom_ids
            await fake.click(listing, next_id, by=alice)
            await fake.wait_for(lambda: "(page 2 of 5)" in listing.content or None, what="page 2")

            typing = await fake.autocomplete("effect", by=alice, focused="effect", effect="hug")
            choices = await fake.wait_for(lambda: typing.choices, what="the suggestions")
            assert [c["value"] for c in choices] == ["Sandbox Hug"] and "two pictures, 1 video" in choices[0]["name"]

            image = fake.upload("a.png", RED, "image/png")
            asked = await fake.slash("effect", by=alice, effect="Sandbox Spin", image=image)
            video = await fake.wait_for(
                lambda: next((m for m in fake.followups(asked) if m.custom_ids), None), what="the video"
            )
            job = await core.jobs.get(video.custom_ids[0].rsplit(":", 1)[1])
            assert job is not None and job.request.template_id == SPIN.template_id
            assert video.attachments[0].data[4:8] == b"ftyp"
        assert fake.spec_violations == []


# ------------------------------------------------------------------ console


async def test_console_effects_and_an_image_effect_written_as_a_picture(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(RED)
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = f"/effects hug\n/effect {tmp_path / 'a.png'} anime me\n/effect {tmp_path / 'a.png'} Nope\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            text = out.getvalue()
            assert "Sandbox Hug [hot] — two pictures" in text and "Sandbox Spin" not in text
            assert "there is no effect 'Nope'" in text
            [(job_id, path)] = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.jpg)", text)
            assert Path(path).read_bytes().startswith(b"\xff\xd8")

            # A picture offers only 🔄: extending or upscaling it, typed (or a forged
            # callback), is refused before anything is made or charged.
            before = len(await core.service.recent_jobs(requester("tester").user, 50))
            out = io.StringIO()
            script = f"/extend {job_id}\n/upscale {job_id}\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            assert out.getvalue().count("A picture made by an effect can only be made again (🔄 reroll).") == 2
            assert len(await core.service.recent_jobs(requester("tester").user, 50)) == before


async def test_the_effect_example_in_help_and_the_readme_works_in_the_console_sandbox(tmp_path: Path) -> None:
    # A newcomer types the example /help and the README give; in the sandbox it must make a video.
    from bot.kinds.effect import EFFECT

    name = EFFECT.example.removeprefix("effect ")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"Console: `/effect me.png you.png {name}`" in readme
    for picture in ("me.png", "you.png"):
        (tmp_path / picture).write_bytes(RED)
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = f"/effect {tmp_path / 'me.png'} {tmp_path / 'you.png'} {name}\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0, out.getvalue()
            assert re.search(rf"✅ Done: \S+\.mp4\neffect {name} ", out.getvalue()), out.getvalue()


# ------------------------------------------------------------------ the cache


async def test_the_effects_list_is_fetched_again_after_an_hour_and_kept_when_a_refresh_fails(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    async with open_core(fast_settings(tmp_path, sandbox), start=False) as core:
        now = [0.0]
        catalogue = EffectsCatalogue(lambda: core.upstream.effects(email=SANDBOX_ALICE), clock=lambda: now[0])
        listings = lambda: sandbox.count("GET", "/v2/pixverse/videos/effects")  # noqa: E731

        assert len(await catalogue.all()) == len(EFFECTS) and listings() == 1
        now[0] = 3599.0
        assert (await catalogue.find("sandbox hug")).template_id == HUG.template_id and listings() == 1
        now[0] = 3600.0
        await catalogue.search("hug")
        assert listings() == 2

        sandbox.config.token = "revoked"  # the next refresh is refused: the list held stays
        now[0] = 7200.0
        assert len(await catalogue.all()) == len(EFFECTS) and listings() == 3


async def test_telegram_effect_name_is_moderated_before_it_is_looked_up(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    sent = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/effect nude dance")
    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "refused")
    assert "blocked term" in reply["text"] and "there is no effect" not in reply["text"]
    assert sandbox.count("GET", "/v2/pixverse/videos/effects") == 0
    assert await bot.core.jobs.in_states(list(JobState)) == []
