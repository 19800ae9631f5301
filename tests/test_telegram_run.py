"""`pixverse-bot run` with a Telegram token: the real process, polling FakeTelegram, stopped by SIGINT."""

from __future__ import annotations

import asyncio
import signal

from bot.delivery import SYNTHETIC_NOTE
from tests.fakes.telegram_fixtures import ALICE, ALICE_CHAT, fake_fixture, wait_videos  # noqa: F401 (a fixture)
from tests.harness import bot_env, start_bot


async def test_run_serves_telegram_and_stops_cleanly_on_sigint(tmp_path, fake) -> None:
    env = bot_env(
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE=fake.base_url,
        BOT_SANDBOX="true",
        SANDBOX_GENERATION_SECONDS="0.3",
        BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
        BOT_HTTP_HOST="127.0.0.1",
        BOT_HTTP_PORT="0",
    )
    process = await start_bot("--log-level", "DEBUG", "run", env=env, cwd=tmp_path)
    try:
        await fake.wait_for(lambda: fake.waiting_polls, timeout=30, what="the bot to poll")
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a red kite over a beach")
        [video] = await wait_videos(fake, ALICE_CHAT)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    log = stderr.decode()
    assert process.returncode == 0, log[-3000:]
    # BOT_SANDBOX=true serves chat members on purpose: said at WARNING, and under each video.
    assert "WARNING bot.bootstrap: BOT_SANDBOX=true: chat members get synthetic videos" in log, log[-3000:]
    assert video["caption"].endswith(SYNTHETIC_NOTE)
    assert "Traceback" not in log and "Unclosed" not in log, log[-3000:]
    assert fake.token.split(":", 1)[1] not in log  # the bot token stays out of the logs, even at DEBUG
    assert fake.spec_violations == []


async def test_sigterm_mid_job_stops_cleanly_and_the_job_resumes_on_the_next_start(tmp_path, fake) -> None:
    from bot.sandbox import SandboxConfig, running_sandbox

    async with running_sandbox(SandboxConfig(generation_seconds=2.0)) as sandbox:
        env = bot_env(
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            USEAPI_BASE_URL=sandbox.base_url,
            USEAPI_API_TOKEN=sandbox.config.token,
            POLL_INTERVAL="0.3",
            BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
            BOT_HTTP_HOST="127.0.0.1",
            BOT_HTTP_PORT="0",
        )

        async def start() -> asyncio.subprocess.Process:
            return await start_bot("run", env=env, cwd=tmp_path)

        first = await start()
        await fake.wait_for(lambda: fake.waiting_polls, timeout=30, what="the bot to poll")
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a red kite over a beach")
        await fake.wait_for(lambda: sandbox.videos, timeout=30, what="the job to reach PixVerse")
        first.send_signal(signal.SIGTERM)  # what `docker stop` sends
        _, stderr = await asyncio.wait_for(first.communicate(), timeout=30)
        assert first.returncode == 0 and "Traceback" not in stderr.decode(), stderr.decode()[-3000:]
        assert fake.calls_to("sendVideo") == []  # stopped while the video was still generating

        second = await start()
        try:
            await wait_videos(fake, ALICE_CHAT)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), timeout=30)
    assert len(fake.calls_to("sendVideo")) == 1 and len(sandbox.videos) == 1
    assert fake.spec_violations == []
