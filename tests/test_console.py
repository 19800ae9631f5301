"""The console adapter end to end: in-process, and as the README's `pixverse-bot console --sandbox`."""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

from adapters.console.app import run_console
from bot.bootstrap import open_core
from bot.domain import Platform, UserRef
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


async def test_invisible_prompts_are_refused_free_and_control_characters_never_get_through(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, quota_per_user="3")
        async with open_core(settings) as core:
            out = io.StringIO()
            script = (
                "/create_single \u200b\u2060\ufeff\u00ad\n"  # zero-width characters only
                "/create_single \x1b[31m\x1b[0m\u202e\x07 --ar 9:16\n"  # escapes, a bidi override, a bell
                "/quota\n"
                "/create_single a fox\x1b[2J\x07 in\x00 the\x7f snow\x1b]0;pwned\x07 \u202edusk"
                " --neg dark\x1b[5m\x08ness\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0
            text = out.getvalue()
            assert text.count("prompt: is missing") == 2, text
            assert "Your quota: 3 of 3 videos left" in text  # nothing charged for them
            [done] = re.findall(r"\[(\w+)\] ✅ Done", text)
            assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text

            job = await core.service.job_status(UserRef(Platform.CONSOLE, "tester"), done)
            assert (job.request.user_prompt, job.request.negative_prompt) == ("a fox in the snow dusk", "darkness")
            [sent] = [video.prompt for video in sandbox.videos.values()]
            assert sent.startswith("a fox in the snow dusk") and sent.endswith("Avoid: darkness")

            out = io.StringIO()
            script = f"/remix {done} \u200b\u200d\ufe0f\n/remix {done} a wolf\x1b[1m in\tthe\x00 rain\n/quota\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 0
            text = out.getvalue()
            assert "prompt: is empty; remix needs the new prompt to use" in text
            remixes = [
                job for job in await core.service.recent_jobs(UserRef(Platform.CONSOLE, "tester")) if job.id != done
            ]
            assert [job.request.user_prompt for job in remixes] == ["a wolf in the rain"]
            assert "Your quota: 1 of 3 videos left" in text
