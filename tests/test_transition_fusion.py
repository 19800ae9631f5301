"""/transition and /fusion (issue 15): through Telegram (albums), Discord (attachments) and
the console, against the real sandbox's create-transition and create-fusion."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.console.app import run_console
from adapters.discord import running_discord
from bot.bootstrap import open_core
from bot.commands import parse_command
from bot.domain import GenerationRequest, JobKind, JobState
from bot.kinds import TRANSITION as TRANSITION_KIND
from bot.pricing import Pricing
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from bot.upstream.models import VideoCreated
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    wait_text_reply,
    wait_videos,
)
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core, tiny_png

SANDBOX_ALICE = "alice@sandbox.local"
RED, GREEN, BLUE = tiny_png(rgb=(220, 30, 30)), tiny_png(rgb=(30, 220, 30)), tiny_png(rgb=(30, 30, 220))


def uploaded(sandbox: Sandbox, path: object) -> bytes | None:
    upload = sandbox.uploads.get(str(path or "").removeprefix("upload/"))
    return upload.data if upload else None


async def send_album(
    fake: FakeTelegram, group: str, command: str, *photos: bytes, captions: tuple[str, ...] = ()
) -> Any:
    """An album as Telegram sends it: one message per photo, the command in the first caption."""
    first = await fake.user_sends_photo(ALICE_CHAT, ALICE, photos[0], command, media_group_id=group)
    for n, photo in enumerate(photos[1:]):
        caption = captions[n] if n < len(captions) else None
        await fake.user_sends_photo(ALICE_CHAT, ALICE, photo, caption, media_group_id=group)
    return first


async def no_job_and_no_download(fake: FakeTelegram, bot: Any) -> None:
    assert await bot.core.jobs.in_states(list(JobState)) == []
    assert fake.calls_to("getFile") == []


# ------------------------------------------------------------------ /transition on Telegram


async def test_transition_of_a_three_photo_album_sends_the_documented_body_and_delivers_the_video(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    first = await send_album(fake, "t1", '/transition --durations 3,2 --prompts "a|b"', RED, GREEN, BLUE)

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.job(job_id_of(video))
    assert job.request.kind is JobKind.TRANSITION
    body = sandbox.bodies[job.video_id or ""]
    assert {k: v for k, v in body.items() if k.startswith(("duration", "prompt", "model"))} == {
        "model": "v5",  # 3 pictures: the default model cannot, so the one that can
        "duration_1_to_2": "3",
        "duration_2_to_3": "2",
        "prompt_1_to_2": "a",
        "prompt_2_to_3": "b",
    }
    assert [uploaded(sandbox, body[f"frame_{n}_path"]) for n in (1, 2, 3)] == [RED, GREEN, BLUE]
    assert "frame_4_path" not in body and "audio" not in body and body["replyRef"] == job.id
    assert job.request.duration == 5  # 3 + 2, as the caption and the price read it
    assert video["reply_to_message"]["message_id"] == first["message_id"]
    assert fake.file(video["video"]["file_id"]).data[4:8] == b"ftyp"
    assert len(await bot.core.jobs.in_states(list(JobState))) == 1
    assert await bot.core.blobs.total_bytes() == 0
    assert fake.spec_violations == []


async def test_transition_takes_the_albums_captions_as_the_transitions_prompts(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    await send_album(fake, "t2", "/transition --model v5", RED, GREEN, BLUE, captions=("dawn breaks", "night falls"))

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.job(job_id_of(video))
    body = sandbox.bodies[job.video_id or ""]
    assert (body["prompt_1_to_2"], body["prompt_2_to_3"]) == ("dawn breaks", "night falls")


async def test_transition_of_three_pictures_on_a_model_without_it_names_the_models_that_can(
    fake: FakeTelegram, bot: Any
) -> None:
    sent = await send_album(fake, "t3", "/transition --model v5.5", RED, GREEN, BLUE)

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "model")
    assert "a transition of 3 or more pictures is not available on v5.5; models that have it: v5" in reply["text"]
    await no_job_and_no_download(fake, bot)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            "--durations 3",
            "--durations: gives 1 lengths for the 2 transitions of 3 pictures; give one per transition,"
            " e.g. --durations 3,3",
        ),
        (
            '--prompts "a|b|c"',
            "--prompts: gives 3 prompts for the 2 transitions of 3 pictures; give one per transition, separated by |",
        ),
        ("--durations 3,9", "--durations: 9 is out of range; each transition lasts 1 to 8 seconds"),
    ],
)
async def test_transition_lengths_or_prompts_that_do_not_match_the_pictures_are_refused(
    fake: FakeTelegram, bot: Any, options: str, expected: str
) -> None:
    sent = await send_album(fake, "t4", f"/transition {options}", RED, GREEN, BLUE)

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "--")
    assert expected in reply["text"]
    assert await bot.core.jobs.in_states(list(JobState)) == []


async def test_a_blocked_word_in_one_transitions_prompt_is_refused(fake: FakeTelegram, bot: Any) -> None:
    sent = await send_album(fake, "t5", '/transition --prompts "a calm sea|hentai"', RED, GREEN, BLUE)

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "refused")
    assert "blocked term “hentai”" in reply["text"]
    assert await bot.core.jobs.in_states(list(JobState)) == []


async def test_a_transitions_buttons_reroll_and_remix_it_one_prompt_per_transition(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    await send_album(fake, "t6", '/transition --durations 2,3 --prompts "rain|sun"', RED, GREEN, BLUE)
    [first] = await wait_videos(fake, ALICE_CHAT)
    assert first["caption"].startswith("rain | sun\n")  # each transition's prompt shows
    # Three pictures run on v5, whose videos take 🗣 lip-sync too.
    assert [b.split(":")[1] for b in buttons(first)] == ["reroll", "remix", "upscale", "extend", "modify", "lipsync"]

    await fake.user_presses_button(ALICE_CHAT, ALICE, first, f"px:remix:{job_id_of(first)}")
    question = await wait_text_reply(fake, ALICE_CHAT, first, "Remix of job")
    await fake.user_sends_text(ALICE_CHAT, ALICE, "snow|fog", reply_to=question)
    remix = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    job = await bot.job(job_id_of(remix))
    body = sandbox.bodies[job.video_id or ""]
    assert (body["prompt_1_to_2"], body["prompt_2_to_3"], body["duration_2_to_3"]) == ("snow", "fog", "3")

    wrong = await fake.user_presses_button(ALICE_CHAT, ALICE, first, f"px:remix:{job_id_of(first)}")
    await fake.wait_for(lambda: wrong["id"] in fake.callback_answers, what="the remix question")
    question = await wait_text_reply(fake, ALICE_CHAT, first, "Remix of job")
    answer = await fake.user_sends_text(ALICE_CHAT, ALICE, "a|b|c", reply_to=question)
    reply = await wait_text_reply(fake, ALICE_CHAT, answer, "prompt")
    assert "gives 3 prompts for the 2 transitions of 3 pictures" in reply["text"]


# ------------------------------------------------------------------ /fusion on Telegram


async def test_fusion_of_two_photos_sends_the_documented_body_on_v5(
    fake: FakeTelegram, bot: Any, sandbox: Sandbox
) -> None:
    await send_album(fake, "f1", "/fusion @pic1 hugs @pic2", RED, BLUE)

    [video] = await wait_videos(fake, ALICE_CHAT)
    job = await bot.job(job_id_of(video))
    assert job.request.kind is JobKind.FUSION
    body = sandbox.bodies[job.video_id or ""]
    assert (body["prompt"], body["model"]) == ("@pic1 hugs @pic2", "v5")
    assert [uploaded(sandbox, body["frame_1_path"]), uploaded(sandbox, body["frame_2_path"])] == [RED, BLUE]
    assert "frame_3_path" not in body and "audio" not in body
    assert 1 <= body["seed"] <= 999_999
    assert fake.file(video["video"]["file_id"]).data[4:8] == b"ftyp"
    assert fake.spec_violations == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "/fusion @pic1 hugs @pic2 --seed 1000000",
            "--seed: 1000000 is out of range for /fusion; use 0 (random) to 999999",
        ),
        ("/fusion @pic1 hugs @pic3", "prompt: names @pic3, but 2 pictures came; name them @pic1, @pic2"),
        ("/fusion @pic1 hugs @pic2 --model v5.5", "/fusion is not available on v5.5; models that have it: v5"),
    ],
)
async def test_fusion_refuses_a_seed_a_picture_or_a_model_it_cannot_take(
    fake: FakeTelegram, bot: Any, command: str, expected: str
) -> None:
    sent = await send_album(fake, "f2", command, RED, BLUE)

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, ":")
    assert expected in reply["text"]
    await no_job_and_no_download(fake, bot)


# ------------------------------------------------------------------ Discord


async def test_discord_transition_and_fusion_take_attachments(tmp_path: Path, sandbox: Sandbox) -> None:
    async with FakeDiscord() as fake:
        settings = fast_settings(
            tmp_path, sandbox, discord_bot_token=SecretStr(fake.token), discord_guild_ids=[str(fake.guild_id)]
        )
        alice = fake.add_member("alice")
        async with open_core(settings) as core, running_discord(core, guild_ready_timeout=0.05, edit_interval=0.0):
            synced = {c["name"]: {o["name"]: o for o in c["options"]} for c in fake.commands[fake.guild_id]}
            assert synced["transition"]["image"]["required"] and synced["transition"]["image2"]["required"]
            assert not synced["transition"]["image7"]["required"] and "image8" not in synced["transition"]
            assert synced["fusion"]["prompt"]["required"] and not synced["fusion"]["image2"]["required"]

            async def video_of(asked: Any) -> Any:
                message = await fake.wait_for(
                    lambda: next((m for m in fake.followups(asked) if m.custom_ids), None), what="the video"
                )
                assert message.attachments[0].data[4:8] == b"ftyp"
                job = await core.jobs.get(message.custom_ids[0].rsplit(":", 1)[1])
                assert job is not None
                return job

            red, blue, green = (
                fake.upload(f"{n}.png", d, "image/png") for n, d in (("r", RED), ("b", BLUE), ("g", GREEN))
            )
            asked = await fake.slash(
                "transition", by=alice, image=red, image2=green, image3=blue, durations="2,4", prompts="up|down"
            )
            job = await video_of(asked)
            body = sandbox.bodies[job.video_id or ""]
            assert (body["duration_1_to_2"], body["duration_2_to_3"], body["prompt_2_to_3"]) == ("2", "4", "down")
            assert [uploaded(sandbox, p) for p in job.request.image_paths] == [RED, GREEN, BLUE]

            red, blue = fake.upload("r.png", RED, "image/png"), fake.upload("b.png", BLUE, "image/png")
            asked = await fake.slash("fusion", by=alice, prompt="@pic2 chases @pic1", image=red, image2=blue)
            job = await video_of(asked)
            assert job.request.kind is JobKind.FUSION and sandbox.bodies[job.video_id or ""]["model"] == "v5"
        assert fake.spec_violations == []


# ------------------------------------------------------------------ console


async def test_console_transition_and_fusion_take_picture_paths_and_fusion_rerolls_in_its_seed_range(
    tmp_path: Path,
) -> None:
    for name, data in (("a.png", RED), ("b.png", GREEN), ("c.png", BLUE)):
        (tmp_path / name).write_bytes(data)
    a, b, c = (tmp_path / n for n in ("a.png", "b.png", "c.png"))
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = (
                f"/transition {a} {b} {c} the seasons change --durations 2,2\n"
                f"/fusion {a} {b} @pic1 meets @pic2 --seed 42\n"
                f"/transition {a} only one picture\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            text = out.getvalue()
            assert "image: /transition needs 2 to 7 pictures; got 1" in text
            done = dict(re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", text))
            jobs = {job.request.kind: job for job in [await core.jobs.get(i) for i in done] if job}
            transition, fusion = jobs[JobKind.TRANSITION], jobs[JobKind.FUSION]
            assert transition.request.segment_prompts == () and transition.request.prompt == "the seasons change"
            body = sandbox.bodies[transition.video_id or ""]
            assert (body["prompt_1_to_2"], body["prompt_2_to_3"]) == ("the seasons change",) * 2
            assert fusion.request.seed == 42 and sandbox.bodies[fusion.video_id or ""]["seed"] == 42
            # Transition and fusion videos differ: each picture is drawn from its own inputs.
            assert Path(done[transition.id]).read_bytes() != Path(done[fusion.id]).read_bytes()

            # A reroll picks its new seed in fusion's range (1…999999), not the general one.
            rerolls = io.StringIO()
            script = "".join(f"/reroll {fusion.id}\n" for _ in range(3))
            assert await run_console(core, stdin=io.StringIO(script), out=rerolls, user="tester") == 0
            again = re.findall(r"\[(\w+)\] ✅ Done", rerolls.getvalue())
            assert len(again) == 3, rerolls.getvalue()
            for job_id in again:
                job = await core.jobs.get(job_id)
                assert job is not None and job.request.kind is JobKind.FUSION and 1 <= job.request.seed <= 999_999


# ------------------------------------------------------------------ the sandbox's endpoints


async def _upload(api: httpx.AsyncClient, data: bytes) -> str:
    response = await api.post(
        "files/", params={"email": SANDBOX_ALICE}, content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["result"][0]["path"])


TRANSITION = {"frame_1_path": "P1", "frame_2_path": "P2"}
FUSION = {"prompt": "@pic1 and @pic2", "frame_1_path": "P1", "frame_2_path": "P2"}


@pytest.mark.parametrize(
    ("endpoint", "good", "bad", "field"),
    [
        ("create-transition", TRANSITION, {"frame_2_path": None}, "frame_2_path"),
        ("create-transition", TRANSITION, {"frame_4_path": "P3"}, "frame_3_path"),
        ("create-transition", TRANSITION, {"duration_1_to_2": "9"}, "duration_1_to_2"),
        ("create-transition", TRANSITION, {"prompt_2_to_3": "x"}, "prompt_2_to_3"),
        ("create-transition", TRANSITION, {"frame_3_path": "P3", "model": "v5.6"}, "3 or more frames"),
        ("create-transition", TRANSITION, {"frame_3_path": "P3", "audio": True}, "audio"),
        ("create-transition", TRANSITION, {"model": "v5-fast"}, "create-transition works with models"),
        ("create-transition", TRANSITION, {"frame_2_path": "upload/nothing.png"}, "frame_2_path"),
        ("create-fusion", FUSION, {"prompt": None}, "prompt"),
        ("create-fusion", FUSION, {"prompt": "@pic3 waves"}, "@pic3"),
        ("create-fusion", FUSION, {"seed": 1_000_000}, "seed"),
        ("create-fusion", FUSION, {"model": "v5.5"}, "create-fusion works with models v5"),
        ("create-fusion", FUSION, {"frame_2_path": None, "frame_3_path": "P3", "prompt": "x"}, "frame_2_path"),
        ("create-fusion", FUSION, {"quality": "1080p", "duration": 10}, "1080p"),
    ],
)
async def test_sandbox_transition_and_fusion_answer_400_naming_the_problem(
    sandbox: Sandbox, endpoint: str, good: dict[str, Any], bad: dict[str, Any], field: str
) -> None:
    headers = {"Authorization": f"Bearer {sandbox.config.token}"}
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/", headers=headers) as api:
        paths = {name: await _upload(api, data) for name, data in (("P1", RED), ("P2", GREEN), ("P3", BLUE))}

        def body(fields: dict[str, Any]) -> dict[str, Any]:
            return {"email": SANDBOX_ALICE} | {
                k: paths.get(v, v) if isinstance(v, str) else v for k, v in fields.items() if v is not None
            }

        response = await api.post(f"videos/{endpoint}", json=body(good | bad))
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]
        assert sandbox.videos == {}
        accepted = await api.post(f"videos/{endpoint}", json=body(good))
        assert accepted.status_code == 200 and VideoCreated.model_validate(accepted.json()).id


async def test_sandbox_draws_a_different_video_for_different_pictures(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {sandbox.config.token}"}
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/", headers=headers) as api:
        first, second, third = [await _upload(api, data) for data in (RED, GREEN, BLUE)]
        made = []
        for frames in ((first, second), (first, third)):
            fields = {"frame_1_path": frames[0], "frame_2_path": frames[1], "seed": 7, "email": SANDBOX_ALICE}
            response = await api.post("videos/create-transition", json=fields)
            made.append(sandbox.videos[response.json()["video_id"]])
        assert made[0].picture != made[1].picture


# ------------------------------------------------------------------ price, quota and refund


async def test_a_transition_is_charged_what_its_transitions_cost_and_refunded_when_refused_upstream(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    one_clip = Pricing.load().credits(
        GenerationRequest(kind=JobKind.TRANSITION, model="v5", quality="540p", duration=8)
    )
    settings = fast_settings(tmp_path, sandbox, quota_unit="credits", quota_per_user=str(3 * one_clip))
    async with running_core(settings, RecordingNotifier()) as core:
        # "forbidden" is the sandbox's trigger word for a 422 at create (not on the bot's list).
        command = parse_command(
            TRANSITION_KIND.command, durations="8,8", prompts="a forbidden sea|calm", quality="540p"
        )
        job = await core.service.generate(requester("payer"), TRANSITION_KIND, command, [RED, GREEN, BLUE])
        mine, _ = await core.quotas.status(requester("payer").user)
        assert mine.reserved == 2 * one_clip  # two 8-second transitions, each priced as a clip

        async def delivered() -> Any:
            found = await core.jobs.get(job.id)
            return found if found is not None and found.state is JobState.DELIVERED else None

        done = await eventually(delivered, timeout=15)
        mine, _ = await core.quotas.status(requester("payer").user)
    assert done.outcome is JobState.MODERATED
    assert (mine.reserved, mine.used) == (0, 0)


async def test_fusion_takes_no_audio_option_since_create_fusion_sends_none(fake: FakeTelegram, bot: Any) -> None:
    # create-fusion has no audio field: a --audio the bot accepted would be dropped on the
    # way up, yet shown in the caption (and, on a model with audio prices, charged).
    sent = await send_album(fake, "f3", "/fusion @pic1 hugs @pic2 --audio", RED, BLUE)

    reply = await wait_text_reply(fake, ALICE_CHAT, sent, "audio")
    assert "--audio" in reply["text"]
    await no_job_and_no_download(fake, bot)
