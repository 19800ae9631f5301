"""The console adapter end to end: in-process, and as the README's `pixverse-bot console --sandbox`."""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

from adapters.console.app import run_console
from bot.bootstrap import open_core
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import fast_settings, start_bot, tiny_png

REPO = Path(__file__).resolve().parents[1]


async def test_console_runs_commands_presses_a_button_and_exits_when_done(tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(tiny_png())
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox)
        async with open_core(settings) as core:
            out = io.StringIO()
            script = (
                "/create_single a fox running through snow --ar 9:16 --seed 42\n"
                f"/animate {image} smiling --motion 7 --hd yes\n"
                "/create_single --ar 2:1 oops\n"
                "/jobs\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0
            text = out.getvalue()
            done = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", text)
            assert len(done) == 2, text
            assert "aspect_ratio: '2:1' is not supported; use one of 16:9, 9:16, 1:1, 4:3, 3:4" in text
            first_job = done[0][0]
            assert f"/reroll {first_job} · /remix {first_job} <new prompt> · /upscale {first_job}" in text

            out = io.StringIO()
            script = f"/remix {first_job} a wolf instead\n/status {first_job}\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0
            assert "✅ Done" in out.getvalue() and f"Job {first_job}: done" in out.getvalue()
    for _, path in done:
        assert Path(path).read_bytes()[4:8] == b"ftyp"


async def test_readme_run_command_works_offline_with_no_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USEAPI_", "TELEGRAM_", "DISCORD_", "BOT_"))} | {
        "BOT_DATABASE": str(tmp_path / "bot.sqlite3"),
        "CONSOLE_OUTPUT_DIR": str(tmp_path / "videos"),
        "SANDBOX_GENERATION_SECONDS": "0.3",
    }
    process = await start_bot("console", "--sandbox", env=env, cwd=tmp_path)
    stdout, stderr = await asyncio.wait_for(
        process.communicate(b"/create_single a red kite over a beach\n"), timeout=60
    )
    assert process.returncode == 0, stderr.decode()[-2000:]
    [path] = re.findall(r"✅ Done: (\S+\.mp4)", stdout.decode())
    assert Path(path).stat().st_size > 0


async def test_console_admin_commands_for_the_operator_and_refusal_for_others(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:boss"], quota_per_user="3")
        async with open_core(settings) as core:
            out = io.StringIO()
            script = (
                "/setquota telegram:42 7\n/quota\n/filter add pineapple\n/filter test pineapple pizza\n"
                "/filtermode strike 2\n/ban telegram:42\n/stats 7\n/credits\n/modlog\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="boss") == 0
            text = out.getvalue()
            assert "telegram:42's quota is now 7 videos per daily window." in text
            assert "Your quota: unlimited" in text  # operators are not limited
            assert "Would be refused: matches “pineapple”." in text
            assert "Mode: strike (2 refusals" in text
            assert "telegram:42 is banned from the bot everywhere." in text
            assert "alice@sandbox.local" in text and "The moderation log is empty." in text

            out = io.StringIO()
            script = "/setquota telegram:42 100\n/create_single pineapple pizza\n/quota\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="pleb") == 0
            text = out.getvalue()
            assert "Sorry, only admins can use this command." in text
            assert "blocked term “pineapple”" in text and "Strike 1 of 2" in text
            assert "Your quota: 3 of 3 videos left" in text


async def test_console_admin_numbers_out_of_range_are_refused_naming_the_range(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:boss"])
        async with open_core(settings) as core:
            out = io.StringIO()
            script = "/stats 1e400\n/modlog 0\n/filtermode strike 3 inf\n/setquota telegram:42 nan\n/filtermode\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="boss") == 0
            text = out.getvalue()
            assert "days: '1e400' is not a whole number between 1 and 3650" in text
            assert "limit: '0' is not a whole number between 1 and 50" in text
            assert "window hours: 'inf' is not a number between 0.1 and 720" in text
            assert "quota: 'nan' is not a whole number between 0 and 1000000, or 'unlimited'" in text
            assert "Mode: reject" in text
