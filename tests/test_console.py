"""The console adapter end to end: in-process, and as the README's `pixverse-bot console --sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pty
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from adapters.console.app import run_console
from bot.bootstrap import open_core
from bot.domain import Platform, UserRef
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import bot_env, fast_settings, start_bot, tiny_png

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
            # One line was refused: the run says so in its exit code.
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1
            text = out.getvalue()
            done = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", text)
            assert len(done) == 2, text
            assert "--ar: '2:1' is not supported; use one of 16:9, 9:16, 1:1, 4:3, 3:4" in text
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
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="pleb") == 1
            text = out.getvalue()
            assert "Sorry, only admins can use this command." in text
            assert "blocked term “pineapple”" in text and "Strike 1 of 2" in text
            assert "Your quota: 3 of 3 videos left" in text


async def test_piped_commands_are_never_dropped_by_anti_flood(tmp_path):
    # Ten lines, more than RATE_LIMIT_COMMANDS (6) per window: the console is the operator's
    # own terminal, so every one runs and is answered, through the real process.
    lines = [f"/create_single kite number {n} --seed {n + 1}" for n in range(7)] + ["/jobs", "/quota", "/help"]
    process = await start_bot(
        "console", "--sandbox", env=bot_env(SANDBOX_GENERATION_SECONDS="0.2", QUOTA_PER_USER="20"), cwd=tmp_path
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(("\n".join(lines) + "\n").encode()), timeout=120)
    text = stdout.decode()
    assert process.returncode == 0, text + stderr.decode()
    assert "Slow down" not in text
    assert len(re.findall(r"✅ Done: ", text)) == 7
    assert "Your quota: 13 of 20 videos left" in text and "Make short videos with PixVerse." in text


async def test_status_shows_the_local_file_and_a_failed_line_fails_the_run(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        settings = fast_settings(tmp_path, sandbox)
        async with open_core(settings) as core:
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO("/create_single a dune\n"), out=out, user="t") == 0
            [(job_id, path)] = re.findall(r"\[(\w+)\] ✅ Done: (\S+\.mp4)", out.getvalue())
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO(f"/status {job_id}\n/status\n"), out=out, user="t") == 1
            text = out.getvalue()
            assert f"Video: {path}" in text and "http" not in text
            assert "job: is missing; e.g. /status abc123" in text and "''" not in text


class Pty:
    """A pseudo-terminal, so the real process sees an interactive console."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.output = b""
        self._changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other side closed
            chunk = b""
        if not chunk:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += chunk
        self._changed.set()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def wait_for(self, needle: str, timeout: float = 60) -> None:
        await self.wait_until(lambda text: needle in text, timeout)

    async def wait_until(self, seen: Callable[[str], bool], timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not seen(self.output.decode(errors="replace")):
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def _interactive_console(tmp_path, generation_seconds: str = "300"):
    terminal = Pty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        "--sandbox",
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        # Slow videos: the job is still running when the user leaves.
        env=bot_env(SANDBOX_GENERATION_SECONDS=generation_seconds, TERM="dumb"),
    )
    return terminal, process


async def test_ctrl_c_stops_at_once_and_says_what_resumes_later(tmp_path):
    terminal, process = await _interactive_console(tmp_path)
    try:
        await terminal.wait_for("pixverse> ")
        terminal.type("/create_single a slow fox\n")
        await terminal.wait_for("Started: a slow fox")
        terminal.type("half-typed")
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        terminal.close()
    text = terminal.output.decode(errors="replace")
    assert process.returncode == 130, text + stderr.decode()
    assert "Stopped. 1 job unfinished; they resume on the next start." in text
    assert "Traceback" not in text + stderr.decode()


async def test_an_upscale_after_a_restart_never_takes_another_video_made_since(tmp_path):
    # The console's in-process sandbox forgets its videos when the console stops. A video
    # made after the restart must not answer to an earlier video's id (PixVerse never
    # reuses one): the old job's upscale fails as "not found" instead of upscaling the new video.
    first = await start_bot("console", "--sandbox", env=bot_env(SANDBOX_GENERATION_SECONDS="0.2"), cwd=tmp_path)
    stdout, stderr = await asyncio.wait_for(first.communicate(b"/create_single a red fox\n"), timeout=60)
    assert first.returncode == 0, stderr.decode()[-2000:]
    [old_job] = re.findall(r"\[(\w+)\] ✅ Done", stdout.decode())

    terminal, process = await _interactive_console(tmp_path, generation_seconds="0.2")
    try:
        await terminal.wait_for("pixverse> ")
        terminal.type("/create_single a blue whale\n")
        await terminal.wait_for("✅ Done")
        terminal.type(f"/upscale {old_job}\n")
        await terminal.wait_until(lambda text: "❌" in text or text.count("✅ Done") == 2)
        terminal.type("/quit\n")
        await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        terminal.close()
    text = terminal.output.decode(errors="replace")
    assert text.count("✅ Done") == 1, text
    assert "❌ That video was not found at the video service." in text


async def test_quit_leaves_at_once_and_progress_keeps_the_prompt(tmp_path):
    terminal, process = await _interactive_console(tmp_path)
    try:
        await terminal.wait_for("pixverse> ")
        terminal.type("/create_single a slow owl\n")
        await terminal.wait_for("Started: a slow owl")
        # Each progress line is followed by the prompt again, so typing is never mangled.
        assert re.search(rb"Started: a slow owl\r?\n(pixverse> )", terminal.output)
        terminal.type("/quit\n")
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        terminal.close()
    text = terminal.output.decode(errors="replace")
    assert process.returncode == 1, text + stderr.decode()
    assert "1 job unfinished; they resume on the next start." in text


async def test_console_unmute_lifts_a_mute_and_a_mute_never_blocks_admin_commands(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:boss"], admins_exempt=False)
        async with open_core(settings) as core:

            async def run(user: str, script: str) -> str:
                out = io.StringIO()
                code = await run_console(core, stdin=io.StringIO(script), out=out, user=user)
                # Exit code 1 exactly when a line was refused (here: the muted prompts).
                assert code == (1 if "⚠️" in out.getvalue() else 0), out.getvalue()
                return out.getvalue()

            text = await run("boss", "/filter add pineapple\n/filtermode strike 1\n/create_single pineapple\n")
            assert "you are muted from the bot here for 60 min" in text
            text = await run("boss", "/create_single a kiwi\n/filtermode\n/unmute pleb\n")
            assert "You are muted from the bot here" in text  # prompts wait out the mute …
            assert "Mode: strike (1 refusals" in text  # … admin commands do not
            assert "pleb was not muted anywhere" in text

            text = await run("pleb", "/create_single pineapple pizza\n/create_single a kiwi\n")
            assert "You are muted from the bot here" in text
            text = await run("boss", "/unmute pleb\n/unmute boss\n")
            assert "pleb is no longer muted anywhere; their strikes were cleared." in text
            assert "boss is no longer muted anywhere" in text
            text = await run("pleb", "/create_single a kiwi\n")
            assert "✅ Done" in text


async def test_bot_off_on_the_console_says_it_works_in_groups_not_unknown_command(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:op"])
        async with open_core(settings) as core:
            out = io.StringIO()
            script = "/bot off\n/bot maybe\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="op") == 1
            text = out.getvalue()
            assert "⚠️ bot: /bot on|off works in groups" in text, text
            assert "⚠️ bot: use /bot on or /bot off" in text, text
            assert "Unknown command" not in text


async def test_console_admin_numbers_out_of_range_are_refused_naming_the_range(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:boss"])
        async with open_core(settings) as core:
            out = io.StringIO()
            script = "/stats 1e400\n/modlog 0\n/filtermode strike 3 inf\n/setquota telegram:42 nan\n/filtermode\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="boss") == 1  # refusals
            text = out.getvalue()
            assert "days: '1e400' is not a whole number between 1 and 3650" in text
            assert "limit: '0' is not a whole number between 1 and 50" in text
            assert "window hours: 'inf' is not a number between 0.1 and 720" in text
            assert "quota: 'nan' is not a whole number between 0 and 1000000, or 'unlimited'" in text
            assert "Mode: reject" in text


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
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1  # refused lines
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
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="tester") == 1  # refused lines
            text = out.getvalue()
            assert "prompt: is empty; remix needs the new prompt to use" in text
            remixes = [
                job for job in await core.service.recent_jobs(UserRef(Platform.CONSOLE, "tester")) if job.id != done
            ]
            assert [job.request.user_prompt for job in remixes] == ["a wolf in the rain"]
            assert "Your quota: 1 of 3 videos left" in text


async def test_one_picture_too_many_is_refused_not_read_as_the_prompt(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(tiny_png())
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = (
                f"/transition {a} {b} {a} {b} {a} {b} {a} {b} the sky darkens --model v5\n"
                f"/fusion {a} {b} {a} {b} @pic1 hugs @pic2\n"
                f"/animate {a} {b} smiling\n"
            )
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="t") == 1
            text = out.getvalue()
            assert "image: /transition needs 2 to 7 pictures; got 8" in text, text
            assert "image: /fusion needs 1 to 3 pictures; got 4" in text, text
            assert "image: /animate needs one picture (the picture); got 2" in text, text
            assert await core.service.recent_jobs(UserRef(Platform.CONSOLE, "t")) == []


async def test_fusion_refuses_audio_it_cannot_make_instead_of_charging_and_captioning_it(tmp_path):
    (tmp_path / "a.png").write_bytes(tiny_png())
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            script = f"/fusion {tmp_path / 'a.png'} @pic1 waves --audio\n"
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="t") == 1
            # /fusion has no --audio option at all (create-fusion makes no sound).
            assert "⚠️ --audio: is not an option here" in out.getvalue(), out.getvalue()
            assert await core.service.recent_jobs(UserRef(Platform.CONSOLE, "t")) == []


async def test_a_picture_command_without_anything_says_the_picture_is_missing(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO("/animate\n/frames  \n"), out=out, user="t") == 1
            text = out.getvalue()
            assert "⚠️ image: is missing; e.g. /animate picture1.png smiling and blinking" in text, text
            assert "⚠️ image: is missing; e.g. /frames picture1.png picture2.png the flower opens" in text, text
            assert "cannot read" not in text


async def test_a_mistyped_job_id_is_not_found_not_called_deleted(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO("/reroll nosuchjob\n"), out=out, user="t") == 1
            assert "No job 'nosuchjob' found. /jobs lists your recent jobs." in out.getvalue()
            assert "older than" not in out.getvalue()


async def test_a_mistyped_video_or_audio_file_is_refused_as_unreadable_never_spoken_or_taken_for_a_job(tmp_path):
    from tests.videos import clip

    (tmp_path / "clip.mp4").write_bytes(clip(2))
    missing_video, missing_audio = tmp_path / "clp.mp4", tmp_path / "speeh.ogg"
    async with running_sandbox(SandboxConfig(generation_seconds=0.1)) as sandbox:
        async with open_core(fast_settings(tmp_path, sandbox)) as core:
            script = (
                f"/modify {missing_video} make it snow\n"
                f"/extend {missing_video} the camera pulls back\n"
                f"/lipsync {missing_video} Ahoy there\n"
                f"/lipsync {tmp_path / 'clip.mp4'} {missing_audio}\n"
                f"/modify {tmp_path / 'clip.mp4'}\n"
            )
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO(script), out=out, user="t") == 1
            text = out.getvalue()
            assert text.count(f"⚠️ video: cannot read {missing_video}: No such file or directory") == 3, text
            assert f"⚠️ audio: cannot read {missing_audio}: No such file or directory" in text, text
            # The missing change is named as the README and Discord name it, with the file as typed.
            assert f"⚠️ change: is missing; e.g. /modify {tmp_path / 'clip.mp4'} make it snow" in text, text
            assert "No job" not in text
            # Nothing was queued: the mistyped audio file's name was not taken for the words.
            assert await core.service.recent_jobs(UserRef(Platform.CONSOLE, "t")) == []
