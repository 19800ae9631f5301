"""`pixverse-bot check` and `run` before anything starts: tokens asked of their services, defaults that
cannot work together, accounts useapi.net does not know, and no synthetic videos by accident.

Each test runs the real process against the fake Telegram / Discord servers and the sandbox.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.discord_api import API_PREFIX, FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import ALICE, ALICE_CHAT, OPERATOR, OPERATOR_CHAT
from tests.harness import bot_env, start_bot

# Well-formed, but not the fakes' token.
OTHER_TELEGRAM_TOKEN = "987654321:AAOtherTelegramTokenNobodyKnowsAbout_1"
OTHER_DISCORD_TOKEN = "T3RoZXItYm90.other-discord.token-nobody-knows-about"


async def _finish(*args: str, cwd: Path, timeout: float = 60, **settings: str) -> tuple[int, str, str]:
    process = await start_bot(*args, env=bot_env(BOT_DATABASE=str(cwd / "bot.sqlite3"), **settings), cwd=cwd)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("problem: ")]


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once the socket is closed


# ---------------------------------------------------------------- check: the chat tokens


async def test_check_refuses_a_telegram_token_that_is_no_token_without_asking_anyone(tmp_path):
    # TELEGRAM_API_BASE points nowhere: a network call would be a different problem line.
    code, out, err = await _finish(
        "check", cwd=tmp_path, TELEGRAM_BOT_TOKEN="notatoken", TELEGRAM_API_BASE=_closed_port_url(), BOT_SANDBOX="true"
    )
    assert code != 0
    [problem] = _problems(err)
    assert problem.startswith("problem: TELEGRAM_BOT_TOKEN does not look like a bot token"), err
    assert "notatoken" not in out + err


async def test_check_reports_a_telegram_token_telegram_rejects(tmp_path):
    async with FakeTelegram() as fake:
        code, out, err = await _finish(
            "check",
            cwd=tmp_path,
            TELEGRAM_BOT_TOKEN=OTHER_TELEGRAM_TOKEN,
            TELEGRAM_API_BASE=fake.base_url,
            BOT_SANDBOX="true",
        )
    assert code == 1
    [problem] = _problems(err)
    assert f"TELEGRAM_BOT_TOKEN was rejected by {fake.base_url}" in problem
    assert OTHER_TELEGRAM_TOKEN.split(":")[1] not in out + err


async def test_check_says_when_telegram_cannot_be_reached(tmp_path):
    nowhere = _closed_port_url()
    code, out, err = await _finish(
        "check", cwd=tmp_path, TELEGRAM_BOT_TOKEN=OTHER_TELEGRAM_TOKEN, TELEGRAM_API_BASE=nowhere, BOT_SANDBOX="true"
    )
    assert code == 1
    [problem] = _problems(err)
    assert f"TELEGRAM_BOT_TOKEN could not be checked: cannot reach {nowhere}" in problem
    assert "Traceback" not in err and OTHER_TELEGRAM_TOKEN.split(":")[1] not in out + err


async def test_check_passes_a_telegram_token_telegram_accepts(tmp_path):
    async with FakeTelegram() as fake:
        code, out, err = await _finish(
            "check", cwd=tmp_path, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE=fake.base_url, BOT_SANDBOX="true"
        )
    assert code == 0, err
    assert f"Telegram: bot @{fake.bot_user['username']} (id {fake.bot_id})" in out
    assert _problems(err) == []


async def test_check_asks_discord_about_its_token(tmp_path):
    async with FakeDiscord() as fake:
        base = fake.base_url + API_PREFIX

        async def check(token: str) -> tuple[int, str, str]:
            return await _finish(
                "check", cwd=tmp_path, DISCORD_BOT_TOKEN=token, DISCORD_API_BASE=base, BOT_SANDBOX="true"
            )

        code, out, err = await check(fake.token)
        assert code == 0, err
        assert f"Discord: bot PixVerse Bot (id {fake.application_id})" in out

        code, out, err = await check(OTHER_DISCORD_TOKEN)
        assert code == 1
        assert _problems(err) == [
            f"problem: DISCORD_BOT_TOKEN was rejected by {base}: reset the token in the Developer Portal"
        ]
        asked = len(fake.requests)

        code, out, err = await check(f"Bot {fake.token}")
        assert code == 1
        [problem] = _problems(err)
        assert "DISCORD_BOT_TOKEN does not look like a bot token" in problem and "leave out the 'Bot '" in problem
        assert len(fake.requests) == asked  # refused without asking Discord
        assert fake.token not in out + err


async def test_check_says_when_discord_cannot_be_reached(tmp_path):
    nowhere = _closed_port_url() + "/api/v10"
    code, _, err = await _finish(
        "check", cwd=tmp_path, DISCORD_BOT_TOKEN=OTHER_DISCORD_TOKEN, DISCORD_API_BASE=nowhere, BOT_SANDBOX="true"
    )
    assert code == 1
    [problem] = _problems(err)
    assert f"DISCORD_BOT_TOKEN could not be checked: cannot reach {nowhere}" in problem


async def test_check_says_a_chat_bot_without_useapi_token_would_not_start(tmp_path):
    async with FakeTelegram() as fake:
        code, _, err = await _finish(
            "check", cwd=tmp_path, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE=fake.base_url
        )
    assert code == 1
    [problem] = _problems(err)
    assert "USEAPI_API_TOKEN is not set" in problem and "BOT_SANDBOX=true" in problem


# ---------------------------------------------------------------- the defaults


@pytest.mark.parametrize("command", ["check", "run"])
async def test_contradictory_defaults_stop_check_and_run_naming_both_settings(tmp_path, command):
    code, _, err = await _finish(
        command,
        cwd=tmp_path,
        DEFAULT_DURATION="10",
        DEFAULT_QUALITY="1080p",
        TELEGRAM_BOT_TOKEN=OTHER_TELEGRAM_TOKEN,
        TELEGRAM_API_BASE=_closed_port_url(),
        BOT_SANDBOX="true",
    )
    assert code == 2
    assert "DEFAULT_DURATION=10 and DEFAULT_QUALITY=1080p cannot be used together" in err
    assert "1080p allows at most 8 seconds" in err
    assert "Traceback" not in err


def test_every_contradiction_among_the_defaults_is_found_by_the_request_validation():
    from bot.preflight import default_conflicts
    from bot.settings import load_settings

    def conflicts(**defaults: object) -> list[str]:
        return default_conflicts(load_settings(_env_file=None, **defaults))

    assert conflicts() == []
    assert conflicts(default_quality="1080p", default_duration=8, default_audio=True) == []
    [hd] = conflicts(default_hd_quality="1080p", default_duration=9)
    assert hd.startswith("DEFAULT_DURATION=9 and DEFAULT_HD_QUALITY=1080p cannot be used together")
    assert hd.endswith("every plain /animate --hd yes would be refused")
    # The operator's audio default yields to a model without audio: no conflict there.
    assert conflicts(default_model="v5", default_audio=True) == []
    # Two conflicts at once: both are named, each with its own pair of settings.
    both = conflicts(default_quality="1080p", default_hd_quality="1080p", default_duration=10)
    assert [line.split(" cannot")[0] for line in both] == [
        "DEFAULT_DURATION=10 and DEFAULT_QUALITY=1080p",
        "DEFAULT_DURATION=10 and DEFAULT_HD_QUALITY=1080p",
    ]


# ---------------------------------------------------------------- run: tokens and the sandbox


def _run_env(fake: FakeTelegram, tmp_path: Path, **settings: str) -> dict[str, str]:
    return bot_env(
        TELEGRAM_API_BASE=fake.base_url,
        BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
        BOT_HTTP_HOST="127.0.0.1",
        BOT_HTTP_PORT="0",
        SANDBOX_GENERATION_SECONDS="0.3",
        **settings,
    )


async def test_run_with_a_rejected_telegram_token_says_so_in_one_line(tmp_path):
    async with FakeTelegram() as fake:
        env = _run_env(fake, tmp_path, TELEGRAM_BOT_TOKEN=OTHER_TELEGRAM_TOKEN, BOT_SANDBOX="true")
        process = await start_bot("run", env=env, cwd=tmp_path)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    err = stderr.decode()
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        f"pixverse-bot run: TELEGRAM_BOT_TOKEN was rejected by {fake.base_url}: "
        "ask @BotFather for the bot's current token"
    ]


async def test_run_with_an_unreachable_telegram_says_so_in_one_line(tmp_path):
    env = bot_env(
        TELEGRAM_BOT_TOKEN=OTHER_TELEGRAM_TOKEN,
        TELEGRAM_API_BASE=_closed_port_url(),
        BOT_SANDBOX="true",
        BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
    )
    process = await start_bot("run", env=env, cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 1
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN could not be checked: cannot reach" in lines[0], lines


async def test_run_turns_a_failed_adapter_start_into_one_line_and_the_traceback_into_debug(tmp_path):
    # getMe works (the token is fine), then Telegram fails the bot's next call at start.
    async with FakeTelegram() as fake:
        for level in ("INFO", "DEBUG"):
            fake.fail_next("setMyCommands", 500, description="Internal Server Error: restart")
            env = _run_env(fake, tmp_path, TELEGRAM_BOT_TOKEN=fake.token, BOT_SANDBOX="true")
            process = await start_bot("--log-level", level, "run", env=env, cwd=tmp_path)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
            err = stderr.decode()
            assert process.returncode == 1, err
            [line] = [line for line in err.splitlines() if line.startswith("pixverse-bot run:")]
            assert line == (
                "pixverse-bot run: Telegram could not start "
                "(RestartingTelegram: Telegram server says - Internal Server Error: restart)"
            )
            assert ("Traceback" in err) is (level == "DEBUG"), err
            assert fake.token.split(":")[1] not in err


async def test_run_with_a_rejected_discord_token_says_so_in_one_line(tmp_path):
    async with FakeDiscord() as fake:
        base = fake.base_url + API_PREFIX
        env = bot_env(
            DISCORD_BOT_TOKEN=OTHER_DISCORD_TOKEN,
            DISCORD_API_BASE=base,
            BOT_SANDBOX="true",
            BOT_DATABASE=str(tmp_path / "bot.sqlite3"),
        )
        process = await start_bot("run", env=env, cwd=tmp_path)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert stderr.decode().strip().splitlines() == [
        f"pixverse-bot run: DISCORD_BOT_TOKEN was rejected by {base}: reset the token in the Developer Portal"
    ]


async def test_run_never_falls_back_to_the_sandbox_silently(tmp_path):
    async with FakeTelegram() as fake:
        process = await start_bot("run", env=_run_env(fake, tmp_path, TELEGRAM_BOT_TOKEN=fake.token), cwd=tmp_path)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    err = stderr.decode()
    assert process.returncode == 2
    assert "USEAPI_API_TOKEN is not set" in err and "BOT_SANDBOX=true" in err
    assert fake.calls_to("getUpdates") == []  # nobody was served


# ---------------------------------------------------------------- accounts useapi.net does not know


async def test_check_refuses_an_account_useapi_does_not_know(tmp_path):
    async with running_sandbox(SandboxConfig(token="t0ken")) as sandbox:
        code, out, err = await _finish(
            "check",
            cwd=tmp_path,
            USEAPI_API_TOKEN="t0ken",
            USEAPI_BASE_URL=sandbox.base_url,
            USEAPI_ACCOUNTS="nobody@x.com",
        )
    assert code == 1
    [problem] = _problems(err)
    assert "USEAPI_ACCOUNTS lists nobody@x.com, which useapi.net does not know" in problem
    assert "alice@sandbox.local" in problem  # what it does know


async def test_run_with_an_unknown_account_alerts_the_operator_and_tells_waiting_users_why(tmp_path):
    async with running_sandbox(SandboxConfig(token="t0ken", generation_seconds=0.3)) as sandbox, FakeTelegram() as fake:
        env = _run_env(
            fake,
            tmp_path,
            TELEGRAM_BOT_TOKEN=fake.token,
            USEAPI_API_TOKEN="t0ken",
            USEAPI_BASE_URL=sandbox.base_url,
            USEAPI_ACCOUNTS="nobody@x.com",
            BOT_ADMIN_IDS=f"telegram:{OPERATOR.id}",
            SCHEDULER_INTERVAL="0.2",
            CAPACITY_REFRESH_INTERVAL="0.2",
            PROGRESS_INTERVAL="0",
        )
        # The operator has talked to the bot before (Telegram lets a bot write only to such people).
        await fake.user_sends_text(OPERATOR_CHAT, OPERATOR, "/start")
        process = await start_bot("run", env=env, cwd=tmp_path)
        try:
            await fake.wait_for(lambda: fake.waiting_polls, timeout=30, what="the bot to poll")
            await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a red kite over a beach")
            waiting = await fake.wait_for(
                lambda: next((m for m in fake.bot_messages(ALICE_CHAT) if "not known" in m.get("text", "")), None),
                timeout=30,
                what="the waiting note",
            )
            alert = await fake.wait_for(
                lambda: next(
                    (m for m in fake.bot_messages(OPERATOR_CHAT) if "nobody@x.com" in m.get("text", "")), None
                ),
                timeout=30,
                what="the operator's alert",
            )
            assert "USEAPI_ACCOUNTS lists nobody@x.com, which useapi.net does not know" in alert["text"]
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert waiting["text"] == (
        "⏸ Waiting: The bot's PixVerse account(s) nobody@x.com are not known to useapi.net. "
        "Your request stays in the queue; the operator has been told."
    )
    log = stderr.decode()
    assert process.returncode == 0, log[-3000:]
    assert "USEAPI_ACCOUNTS lists nobody@x.com" in log and "Traceback" not in log
    assert sandbox.videos == {}  # nothing was sent to an account that does not exist


async def test_run_with_a_rejected_useapi_token_says_so_in_one_line(tmp_path):
    async with running_sandbox(SandboxConfig(token="the-right-one")) as sandbox, FakeTelegram() as fake:
        env = _run_env(
            fake,
            tmp_path,
            TELEGRAM_BOT_TOKEN=fake.token,
            USEAPI_API_TOKEN="a-wrong-one",
            USEAPI_BASE_URL=sandbox.base_url,
        )
        process = await start_bot("run", env=env, cwd=tmp_path)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    [line] = stderr.decode().strip().splitlines()
    assert process.returncode == 2
    assert line.startswith(f"pixverse-bot run: USEAPI_API_TOKEN: the token was rejected by {sandbox.base_url}")
    assert "a-wrong-one" not in line
