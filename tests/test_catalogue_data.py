"""The catalogue as the one source of model facts: an operator's model (MODELS_FILE)
carries its prices, which credit quotas charge and the sandbox bills, and its features,
which decide the buttons under its videos — through the real Telegram adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.catalogue import Catalogue, CatalogueError
from bot.domain import ResultAction
from bot.errors import ActionUnavailable
from bot.pricing import Pricing
from bot.sandbox import Sandbox
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
    wait_videos,
)

SHIPPED = Path(__file__).parents[1] / "bot/data/models.json"
QUALITIES = ("360p", "540p", "720p", "1080p")


def shipped_table() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text("utf-8"))


def v7(features: list[str]) -> dict[str, Any]:
    """An operator's model with prices of its own: 11 credits a clip, audio 4 more."""
    return {
        "description": "An operator's model",
        "durations": [1, 10],
        "max_duration_1080p": 8,
        "qualities": list(QUALITIES),
        "aspect_ratios": ["16:9", "9:16", "1:1"],
        "features": features,
        "prices": {
            "create": {q: {"10": 11} for q in QUALITIES},
            "audio_extra": {q: {"10": 4} for q in QUALITIES},
        },
    }


def models_file(tmp_path: Path, table: dict[str, Any]) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table), "utf-8")
    return path


def pressable(video: dict[str, Any]) -> list[str]:
    """The actions of the buttons under a posted video (`px:<action>:<job>` → action)."""
    return [data.split(":")[1] for data in buttons(video)]


# ------------------------------------------------------------------ prices


async def test_an_operators_model_is_charged_its_own_prices_in_credits_mode(
    tmp_path: Path, fake: FakeTelegram, sandbox: Sandbox
) -> None:
    table = shipped_table()
    table["models"]["v7"] = v7(["audio", "upscale"])
    settings = telegram_settings(
        tmp_path, sandbox, fake, models_file=models_file(tmp_path, table), quota_unit="credits", quota_per_user="30"
    )
    sandbox.config.catalogue = settings.catalogue()  # the upstream offers v7, at the same prices
    account = sandbox.config.accounts[0]
    before = account.credits
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v7 --audio --quality 720p")
        [video] = await wait_videos(fake, ALICE_CHAT)
        job = await bot.delivered(job_id_of(video))
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))
    assert job.request.model == "v7"
    assert mine.used == 11 + 4  # v7's own create and audio prices, not the shipped models'
    assert sandbox.videos[job.video_id or ""].cost == 15 and account.credits == before - 15


def test_shipped_prices_follow_the_overview_and_unpublished_models_are_priced_as_v5_5() -> None:
    from bot.domain import GenerationRequest, JobKind

    pricing = Pricing.load()

    def cost(**fields: Any) -> int:
        return pricing.credits(GenerationRequest(kind=JobKind.CREATE, **fields))

    assert cost(model="v5.5", quality="540p", duration=5) == 30
    assert cost(model="v5.5", quality="1080p", duration=8, audio=True) == 200
    assert cost(model="v5", quality="720p", duration=8) == 120
    assert cost(model="v5.6", quality="720p", duration=5, audio=True) == 50  # priced_as v5.5
    assert cost(model="v5.5", quality="540p", duration=8, off_peak=True) == 30
    assert pricing.credits(GenerationRequest(kind=JobKind.UPSCALE, duration=8)) == 60


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.pop("prices"), 'v7: give its "prices" or name a model it is "priced_as"'),
        (lambda m: m["prices"]["create"].pop("1080p"), "v7: no 1080p prices"),
        (lambda m: m["prices"].update(create={q: {"5": 11} for q in QUALITIES}), "v7: 360p prices stop at 5s"),
        (lambda m: m.pop("prices") and m.update(priced_as="v5.6"), "priced_as 'v5.6' is not a model with its own"),
    ],
)
def test_a_model_without_a_price_for_what_it_offers_is_refused_naming_the_gap(change: Any, problem: str) -> None:
    table = shipped_table()
    table["models"]["v7"] = v7(["audio"])
    change(table["models"]["v7"])
    with pytest.raises(CatalogueError, match=problem.replace("(", r"\(")):
        Catalogue(table)


# ------------------------------------------------------------------ buttons


async def press(fake: FakeTelegram, message: dict[str, Any], action: str) -> dict[str, Any]:
    query = await fake.user_presses_button(ALICE_CHAT, ALICE, message, f"px:{action}:{job_id_of(message)}")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers, what=f"the answer to pressing {action}")
    return fake.callback_answers[query["id"]]


async def test_a_video_from_a_model_without_extend_or_upscale_gets_neither_button(
    tmp_path: Path, fake: FakeTelegram, sandbox: Sandbox
) -> None:
    table = shipped_table()
    table["models"]["v7"] = v7(["audio"])  # no extend, no upscale
    del table["extend_fallback"]  # and no model to extend its videos with
    settings = telegram_settings(tmp_path, sandbox, fake, models_file=models_file(tmp_path, table))
    sandbox.config.catalogue = settings.catalogue()
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v7")
        [video] = await wait_videos(fake, ALICE_CHAT)
        assert pressable(video) == ["reroll", "remix", "modify"]  # modify runs on v5.5, whoever made it
        # Asked for anyway (a button under a message older than the catalogue): refused, naming who can.
        job = await bot.job(job_id_of(video))
        with pytest.raises(ActionUnavailable, match="made with v7 cannot be extended; models that extend: v5.5, v5"):
            await bot.core.service.press(job.requester, job.id, ResultAction.EXTEND)
        with pytest.raises(ActionUnavailable, match="v7 cannot be upscaled; models that can: v5.6, v5.5, v5, v5-fast"):
            await bot.core.service.press(job.requester, job.id, ResultAction.UPSCALE)
        assert len(await bot.core.jobs.recent_for_user(user_ref(ALICE), 10)) == 1  # nothing was made or charged
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))
        assert mine.used == 1


async def test_extend_follows_the_fallback_and_upscales_and_extensions_offer_no_remix(
    fake: FakeTelegram, bot: Any
) -> None:
    # v5.6 has no extend of its own; the shipped catalogue's extend_fallback (v5.5) extends it.
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox --model v5.6")
    [first] = await wait_videos(fake, ALICE_CHAT)
    assert pressable(first) == ["reroll", "remix", "upscale", "extend", "modify"]

    assert (await press(fake, first, "upscale"))["text"] == "Upscaling…"
    upscaled = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    assert pressable(upscaled) == ["reroll", "extend", "modify"]  # not upscaled twice; no prompt of its own to remix

    assert (await press(fake, first, "extend"))["text"] == "Extending…"
    extended = (await wait_videos(fake, ALICE_CHAT, 3))[-1]
    assert pressable(extended) == ["reroll", "upscale", "extend", "modify"]  # an extension is not remixed
