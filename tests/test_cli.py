"""The command line: clear configuration errors, the sandbox server, run without a platform."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx
import pytest

from bot.settings import SettingsError, load_settings
from tests.harness import eventually


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("USEAPI_", "TELEGRAM_", "DISCORD_", "BOT_"))}
    return keep | extra


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"quota_window": "hourly"}, "QUOTA_WINDOW: Value error, 'hourly' is not one of daily, weekly, monthly, total"),
        ({"bot_admin_ids": "alice"}, "BOT_ADMIN_IDS: Value error, 'alice' should look like telegram:123"),
        ({"quota_timezone": "Mars/Olympus"}, "QUOTA_TIMEZONE: Value error, 'Mars/Olympus' is not a time zone"),
        ({"default_duration": 12}, "DEFAULT_DURATION: Input should be less than or equal to 10"),
        ({"default_style": "Oil"}, "DEFAULT_STYLE: Value error, must be one of Realistic, Anime, 3D Animation"),
    ],
)
def test_bad_settings_say_what_is_wrong_and_how_to_fix_it(overrides, expected):
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **overrides)
    assert expected in str(caught.value)


async def test_bad_settings_stop_the_process_with_the_message(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "check", cwd=tmp_path, env=clean_env(QUOTA_UNIT="euros"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "QUOTA_UNIT: Value error, 'euros' is not one of videos, credits" in stderr.decode()


async def test_run_without_a_chat_platform_points_to_the_console(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and "pixverse-bot console --sandbox" in stderr.decode()


async def test_sandbox_command_serves_the_api_until_terminated(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--port", str(port), "--token", "t0ken", cwd=tmp_path,
        env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v2/pixverse/") as http:

            async def answers():
                try:
                    return await http.get("scheduler/available", headers={"Authorization": "Bearer t0ken"})
                except httpx.TransportError:
                    return None

            response = await eventually(answers, timeout=30, what="the sandbox to listen")
            assert response.status_code == 200 and response.json()["available"]
            assert (await http.get("scheduler/available")).status_code == 401
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
    assert process.returncode == 0
