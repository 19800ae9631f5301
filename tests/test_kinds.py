"""Generation kinds declared once (bot.kinds) and models as data (bot/data/models.json):
/frames through Telegram (an album), Discord and the console; the catalogue through the
real adapters; the sandbox's create-frames."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.console.app import run_console
from adapters.discord import running_discord
from bot.bootstrap import open_core
from bot.catalogue import Catalogue, shipped_catalogue
from bot.domain import JobKind, JobState
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from bot.upstream.models import VideoCreated
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    bot_fixture,
    fake_fixture,
    job_id_of,
    running_bot,
    telegram_settings,
    wait_text_reply,
    wait_videos,
)
from tests.harness import fast_settings, tiny_png

SANDBOX_ALICE = "alice@sandbox.local"
RED, BLUE = tiny_png(rgb=(220, 30, 30)), tiny_png(rgb=(30, 30, 220))


def uploaded(sandbox: Sandbox, path: str | None) -> bytes | None:
    upload = sandbox.uploads.get((path or "").removeprefix("upload/"))
    return upload.data if upload else None


# ------------------------------------------------------------------ /frames on Telegram


async def test_frames_from_a_two_photo_album_uploads_both_and_delivers_the_video(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    # An album: two messages sharing a media_group_id, the command in the first one's caption.
    first = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/frames the sky turns blue", media_group_id="a1")
    await fake.user_sends_photo(ALICE_CHAT, ALICE, BLUE, media_group_id="a1")

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.job(job_id_of(video))
    assert job.request.kind is JobKind.FRAMES and job.request.user_prompt == "the sky turns blue"
    first_path, last_path = job.request.image_paths
    assert (uploaded(sandbox, first_path), uploaded(sandbox, last_path)) == (RED, BLUE)
    assert video["reply_to_message"]["message_id"] == first["message_id"]
    assert fake.file(video["video"]["file_id"]).data[4:8] == b"ftyp"  # the sandbox's real MP4
    assert len(await bot.core.jobs.in_states(list(JobState))) == 1  # one job for the whole album
    assert await bot.core.blobs.total_bytes() == 0  # the pictures are gone once uploaded
    assert fake.spec_violations == []


async def test_frames_on_a_one_photo_album_is_refused_naming_the_two_pictures(fake: FakeTelegram, bot: Any) -> None:
    sent = await fake.user_sends_photo(ALICE_CHAT, ALICE, RED, "/frames a sunrise", media_group_id="solo")

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "image")
    assert "image: /frames needs exactly 2 pictures (the first frame and the last frame); got 1" in reply["text"]
    assert await bot.core.jobs.in_states(list(JobState)) == []
    assert fake.calls_to("getFile") == []  # refused before any download


# ------------------------------------------------------------------ the catalogue through Telegram


async def test_a_model_the_catalogue_does_not_know_is_refused_with_the_known_ones(fake: FakeTelegram, bot: Any) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v6")

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "model")
    assert "--model: 'v6' is not supported; use one of v5.6, v5.5, v5, v5-fast" in reply["text"]


def catalogue_with_v6(tmp_path: Path) -> Path:
    """The shipped catalogue plus a `v6` entry, as the README tells an operator to add one."""
    table = json.loads((Path(__file__).parents[1] / "bot/data/models.json").read_text("utf-8"))
    table["models"]["v6"] = table["models"]["v5.6"] | {"description": "A newer model"}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table), "utf-8")
    return path


async def test_an_operators_models_file_adds_a_model_users_may_ask_for(
    tmp_path: Path, fake: FakeTelegram, sandbox: Sandbox
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake, models_file=catalogue_with_v6(tmp_path))
    sandbox.config.catalogue = settings.catalogue()  # the upstream offers v6 too
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v6 --audio")
        [video] = await wait_videos(fake, ALICE_CHAT)
        job = await bot.job(job_id_of(video))
        assert job.request.model == "v6" and sandbox.videos[job.video_id or ""].model == "v6"
        help_ = await fake.user_sends_text(ALICE_CHAT, ALICE, "/help")
        assert "v5.6|v5.5|v5|v5-fast|v6" in (await wait_text_reply(fake, ALICE_CHAT, help_, "Models"))["text"]


def test_a_malformed_models_file_or_an_unknown_default_model_stops_the_start(tmp_path: Path) -> None:
    from bot.settings import SettingsError, load_settings

    broken = tmp_path / "broken.json"
    broken.write_text('{"models": {"v6": {"durations": [1]}}}', "utf-8")
    with pytest.raises(SettingsError, match="MODELS_FILE"):
        load_settings(_env_file=None, models_file=broken)
    with pytest.raises(SettingsError, match="DEFAULT_MODEL: .*'v6' is not supported; use one of v5.6"):
        load_settings(_env_file=None, default_model="v6")
    assert (
        load_settings(_env_file=None, models_file=catalogue_with_v6(tmp_path), default_model="V6").default_model == "v6"
    )


# ------------------------------------------------------------------ Discord


async def test_discord_frames_takes_two_attachments_and_choices_come_from_the_catalogue(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    async with FakeDiscord() as fake:
        settings = fast_settings(
            tmp_path,
            sandbox,
            discord_bot_token=SecretStr(fake.token),
            discord_guild_ids=[str(fake.guild_id)],
            models_file=catalogue_with_v6(tmp_path),
        )
        sandbox.config.catalogue = settings.catalogue()
        alice = fake.add_member("alice")
        async with open_core(settings) as core, running_discord(core, guild_ready_timeout=0.05, edit_interval=0.0):
            synced = {c["name"]: c for c in fake.commands[fake.guild_id]}
            for name in ("create_single", "animate", "frames"):
                [model] = [o for o in synced[name]["options"] if o["name"] == "model"]
                assert [c["value"] for c in model["choices"]] == ["v5.6", "v5.5", "v5", "v5-fast", "v6"]
            frames_options = {o["name"]: o for o in synced["frames"]["options"]}
            assert frames_options["image"]["required"] and frames_options["image2"]["required"]

            first, last = fake.upload("a.png", RED, "image/png"), fake.upload("b.png", BLUE, "image/png")
            asked = await fake.slash("frames", by=alice, prompt="red to blue", image=first, image2=last)
            video = await fake.wait_for(
                lambda: next((m for m in fake.followups(asked) if m.custom_ids), None), what="the video"
            )
            job = await core.jobs.get(video.custom_ids[0].rsplit(":", 1)[1])
            assert job is not None and job.request.kind is JobKind.FRAMES
            assert [uploaded(sandbox, p) for p in job.request.image_paths] == [RED, BLUE]
            assert video.attachments[0].data[4:8] == b"ftyp"
        assert fake.spec_violations == []


# ------------------------------------------------------------------ console


async def test_console_frames_takes_two_picture_paths(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(RED)
    (tmp_path / "b.png").write_bytes(BLUE)
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = (
                f"/frames {tmp_path / 'a.png'} {tmp_path / 'b.png'} a red dawn turns blue -d 4\n"
                f"/frames {tmp_path / 'a.png'} only one picture\n"
                f"/frames {tmp_path / 'a.png'} {tmp_path / 'b.png'} too long --duration 9\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            text = out.getvalue()
            [(job_id, path)] = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", text)
            assert "image: /frames needs exactly 2 pictures (the first frame and the last frame); got 1" in text
            assert "--duration: 9 is out of range for /frames; use 1 to 8 seconds" in text
            job = await core.jobs.get(job_id)
            assert job is not None and job.request.duration == 4
            assert [uploaded(sandbox, p) for p in job.request.image_paths] == [RED, BLUE]
            assert Path(path).read_bytes()[4:8] == b"ftyp"


# ------------------------------------------------------------------ the sandbox's create-frames


async def _upload(api: httpx.AsyncClient, data: bytes) -> str:
    response = await api.post(
        "files/", params={"email": SANDBOX_ALICE}, content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["result"][0]["path"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_frame_path": None}, "first_frame_path"),  # None: left out
        ({"last_frame_path": None}, "last_frame_path"),
        ({"duration": 9}, "duration"),
        ({"model": "v9"}, "model"),
        ({"model": "v5", "audio": True}, "audio"),
        ({"first_frame_path": "upload/nothing.png"}, "first_frame_path"),
    ],
)
async def test_sandbox_create_frames_answers_400_naming_the_field(
    sandbox: Sandbox, body: dict[str, Any], field: str
) -> None:
    headers = {"Authorization": f"Bearer {sandbox.config.token}"}
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/", headers=headers) as api:
        paths = {"FIRST": await _upload(api, RED), "LAST": await _upload(api, BLUE)}
        payload = {"email": SANDBOX_ALICE, "first_frame_path": "FIRST", "last_frame_path": "LAST"} | body
        payload = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in payload.items() if v is not None}
        response = await api.post("videos/create-frames", json=payload)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]
        assert sandbox.videos == {}
        good = await api.post(
            "videos/create-frames",
            json={"email": SANDBOX_ALICE, "first_frame_path": paths["FIRST"], "last_frame_path": paths["LAST"]},
        )
        assert good.status_code == 200 and VideoCreated.model_validate(good.json()).id


def test_the_shipped_catalogue_follows_the_model_capabilities_page() -> None:
    catalogue = shipped_catalogue()
    assert catalogue.names == ("v5.6", "v5.5", "v5", "v5-fast")
    assert Catalogue.load(None) is catalogue
    from bot.catalogue import Feature

    assert catalogue.having(Feature.FRAMES) == catalogue.names
    assert catalogue.having(Feature.EXTEND) == ("v5.5", "v5")
    assert catalogue.having(Feature.FUSION) == ("v5",)
    assert catalogue.get("v5").max_duration("1080p") == 8
