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


async def _finish(*args: str, cwd, **settings: str) -> tuple[int, str, str]:
    process = await start_bot(*args, env=bot_env(**settings), cwd=cwd)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_version_is_printed(tmp_path):
    from importlib import metadata

    code, out, _ = await _finish("--version", cwd=tmp_path)
    assert code == 0 and out.strip() == f"pixverse-bot {metadata.version('pixverse-bot')}"


async def test_global_options_work_after_the_subcommand_too(tmp_path):
    # An unknown level is refused by the logging setup, before or after the subcommand alike:
    # proof that the option after the subcommand is read, not ignored.
    for args in (("--log-format", "json", "check"), ("check", "--log-format", "json")):
        code, out, _ = await _finish(*args, cwd=tmp_path)
        assert code == 0 and "Effective configuration:" in out
    code, _, err = await _finish("check", "--log-format", "xml", cwd=tmp_path)
    assert code == 2 and "invalid choice: 'xml'" in err
    code, _, err = await _finish("check", "--log-level", "LOUD", cwd=tmp_path)
    assert code != 0 and "LOUD" in err


async def test_log_level_and_format_are_read_from_dot_env_like_every_setting(tmp_path):
    # README: every setting in the Configuration table may be in `.env`, LOG_LEVEL and LOG_FORMAT too.
    (tmp_path / ".env").write_text("LOG_LEVEL=LOUD\n")
    code, _, err = await _finish("check", cwd=tmp_path)
    assert code != 0 and "LOUD" in err, err
    (tmp_path / ".env").write_text("LOG_FORMAT=json\nLOG_LEVEL=DEBUG\n")
    code, _, err = await _finish("check", cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 0 and lines and all(line.startswith('{"time": ') for line in lines), err
    assert '"level": "DEBUG"' in err, err


async def test_check_shows_a_database_url_without_its_password(tmp_path):
    url = "postgresql://bot:hunter2-secret@127.0.0.1:1/bot"
    _, out, err = await _finish("check", cwd=tmp_path, BOT_DATABASE=url)
    assert "BOT_DATABASE = postgresql://bot:***@127.0.0.1:1/bot" in out, out
    assert "hunter2-secret" not in out + err


async def test_backup_refuses_a_postgresql_database(tmp_path):
    code, _, err = await _finish("backup", str(tmp_path / "copy"), cwd=tmp_path, BOT_DATABASE="postgresql://bot@h/db")
    assert code == 1 and "pg_dump" in err, err


async def test_backup_copies_the_live_database_and_never_overwrites(tmp_path):
    from bot.domain import GenerationRequest, Job, JobKind, JobState, new_job_id
    from storage import SqlJobStore, open_database
    from tests.harness import requester

    live = tmp_path / "data" / "bot.sqlite3"
    db = await open_database(live)
    try:
        job = Job(id=new_job_id(), requester=requester(), request=GenerationRequest(kind=JobKind.CREATE))
        await SqlJobStore(db).add(job)
        # The bot keeps its database open while the backup runs.
        code, out, err = await _finish("backup", "copy.sqlite3", cwd=tmp_path, BOT_DATABASE=str(live))
    finally:
        await db.close()
    assert code == 0, err
    assert "Backed up" in out
    copy = await open_database(tmp_path / "copy.sqlite3")
    try:
        restored = await SqlJobStore(copy).get(job.id)
    finally:
        await copy.close()
    assert restored is not None and restored.state is JobState.QUEUED

    code, _, err = await _finish("backup", "copy.sqlite3", cwd=tmp_path, BOT_DATABASE=str(live))
    assert code == 1 and "already exists" in err
    code, _, err = await _finish("backup", "other.sqlite3", cwd=tmp_path, BOT_DATABASE=str(tmp_path / "none.db"))
    assert code == 1 and "there is no database at" in err and not (tmp_path / "other.sqlite3").exists()


async def test_healthcheck_follows_bot_http_port(tmp_path):
    from aiohttp import web

    from bot.bootstrap import serving_http

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    async with serving_http(app, "127.0.0.1", 0) as url:
        port = url.rsplit(":", 1)[1]
        code, _, err = await _finish("healthcheck", cwd=tmp_path, BOT_HTTP_PORT=port)
        assert code == 0, err
    # The server is gone: the same port now fails the check.
    code, _, err = await _finish("healthcheck", cwd=tmp_path, BOT_HTTP_PORT=port)
    assert code == 1 and "unhealthy" in err


async def test_without_the_sandbox_extra_the_sandbox_says_how_to_get_it(tmp_path):
    import sys

    # As if installed with `pip install .` alone: numpy cannot be imported (PyAV is a main
    # dependency: the bot checks the videos users send and converts voice notes with it).
    hide_numpy = "import sys; sys.modules['numpy'] = None; from bot.__main__ import main; sys.exit(main(sys.argv[1:]))"
    for args in (("console", "--sandbox"), ("sandbox", "--port", "0")):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            hide_numpy,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env=bot_env(),
        )
        _, stderr = await asyncio.wait_for(process.communicate(b"/help\n"), timeout=60)
        assert process.returncode == 2
        assert "pip install 'pixverse-bot[sandbox]'" in stderr.decode() and "Traceback" not in stderr.decode()
