"""Secrets never reach logs, errors or `pixverse-bot check` output."""

from __future__ import annotations

import asyncio
import logging

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.discord_api import API_PREFIX, FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import RecordingNotifier, bot_env, eventually, fast_settings, requester, running_core, start_bot

SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123456:TELEGRAM-SECRET-abcdefghijklmnop",
    "DISCORD_BOT_TOKEN": "DISCORD.SECRET.tokenvalue-0123456789",
    "MODERATION_API_KEY": "sk-MODERATION-SECRET-42",
    "BOT_WEBHOOK_SECRET": "WEBHOOK-SECRET-feedfacecafebeef",
}
UPSTREAM_TOKEN = "USEAPI-SECRET-token-0123456789"


async def test_check_prints_masked_secrets_and_what_the_upstream_reports(tmp_path):
    # `check` asks every service about its token: here fakes that accept these ones.
    async with (
        running_sandbox(SandboxConfig(token=UPSTREAM_TOKEN)) as sandbox,
        FakeTelegram(token=SECRETS["TELEGRAM_BOT_TOKEN"]) as telegram,
        FakeDiscord(token=SECRETS["DISCORD_BOT_TOKEN"]) as discord,
    ):
        env = bot_env(
            **SECRETS,
            USEAPI_API_TOKEN=UPSTREAM_TOKEN,
            USEAPI_BASE_URL=sandbox.base_url,
            TELEGRAM_API_BASE=telegram.base_url,
            DISCORD_API_BASE=discord.base_url + API_PREFIX,
            BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
        )
        process = await start_bot("--log-level", "DEBUG", "check", env=env, cwd=tmp_path)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 0, output
    for secret in [*SECRETS.values(), UPSTREAM_TOKEN]:
        assert secret not in output
        assert f"{secret[:3]}…{secret[-3:]}" in output
    assert "alice@sandbox.local: 5/5 slots free" in output
    assert "Telegram: bot @" in output and "Discord: bot PixVerse Bot" in output


async def test_check_explains_a_wrong_token_without_showing_it(tmp_path):
    async with running_sandbox(SandboxConfig(token="the-right-one")) as sandbox:
        env = bot_env(USEAPI_API_TOKEN=UPSTREAM_TOKEN, USEAPI_BASE_URL=sandbox.base_url)
        process = await start_bot("check", env=env, cwd=tmp_path)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 1
    assert "token was rejected" in output and UPSTREAM_TOKEN not in output


async def test_a_whole_job_at_debug_logs_no_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with running_sandbox(SandboxConfig(token=UPSTREAM_TOKEN, generation_seconds=0.2)) as sandbox:
        settings = fast_settings(
            tmp_path,
            sandbox,
            moderation_api_key=SECRETS["MODERATION_API_KEY"],
            bot_webhook_secret=SECRETS["BOT_WEBHOOK_SECRET"],
        )
        notifier = RecordingNotifier()
        async with running_core(settings, notifier) as core:
            job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="a fox"))
            await eventually(lambda: _delivered(core, job.id))
            # Errors carry no token either.
            sandbox.config.token = "rotated"
            try:
                await core.upstream.features()
            except Exception as exc:  # noqa: BLE001 - the text is what is checked
                assert UPSTREAM_TOKEN not in f"{exc} {exc!r}"
    logged = caplog.text + repr(settings)
    for secret in [UPSTREAM_TOKEN, SECRETS["MODERATION_API_KEY"], SECRETS["BOT_WEBHOOK_SECRET"]]:
        assert secret not in logged


async def _delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job.state is JobState.DELIVERED
