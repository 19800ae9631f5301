"""The command line: clear configuration errors, the sandbox server, run without a platform."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from bot.settings import SettingsError, load_settings
from tests.harness import bot_env, eventually, start_bot


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
    process = await start_bot("check", env=bot_env(QUOTA_UNIT="euros"), cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "QUOTA_UNIT: Value error, 'euros' is not one of videos, credits" in stderr.decode()


async def test_run_without_a_chat_platform_points_to_the_console(tmp_path):
    process = await start_bot("run", env=bot_env(), cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and "pixverse-bot console --sandbox" in stderr.decode()


async def test_sandbox_command_serves_the_api_until_terminated(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = await start_bot("sandbox", "--port", str(port), "--token", "t0ken", env=bot_env(), cwd=tmp_path)
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
