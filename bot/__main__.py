"""`pixverse-bot`: run the bot, the console chat, the sandbox, or a configuration check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.logs import configure_logging
from bot.preflight import Finding, Verdict, check_useapi, default_conflicts, without_secret
from bot.settings import Settings, SettingsError, load_settings, mask_secret

log = logging.getLogger("bot")


class _LoggingSettings(BaseSettings):
    """LOG_LEVEL and LOG_FORMAT from the environment or `.env`, read the way every other
    setting is, but before the settings are loaded: logging is set up first."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")
    log_level: str | None = None
    log_format: str | None = None


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--log-level and --log-format, before or after the subcommand.

    The subcommands declare them again with no default of their own (SUPPRESS), so a
    value given after the subcommand wins and one given before it is kept.
    """
    parser.add_argument(
        "--log-level",
        default=(_LoggingSettings().log_level or "INFO") if defaults else argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING … (env LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=(_LoggingSettings().log_format or "text") if defaults else argparse.SUPPRESS,
        help="text lines, or one JSON object per line for log collectors (env LOG_FORMAT)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixverse-bot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _add_global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        subcommand = sub.add_parser(name, help=help, description=help)
        _add_global_options(subcommand, defaults=False)
        return subcommand

    command("run", "run the chat bot (Telegram and/or Discord, by which tokens are set)")
    console = command("console", "chat with the bot in this terminal")
    console.add_argument(
        "--sandbox", action="store_true", help="use the built-in offline sandbox even if USEAPI_API_TOKEN is set"
    )
    console.add_argument("--user", help="the name to act as (default: your login); quotas and /jobs are kept per name")
    sandbox = command("sandbox", "serve the offline PixVerse v2 sandbox API")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--token", default="sandbox-token", help="the API token clients must send")
    sandbox.add_argument("--generation-seconds", type=float, default=5.0, help="how long each video takes")
    command("check", "print the effective configuration and what the upstream reports")
    backup = command("backup", "copy the database to PATH while the bot runs (SQLite online backup)")
    backup.add_argument("path", type=Path, help="the new backup file (must not exist yet)")
    command("healthcheck", "exit 0 when the running bot answers GET /healthz on BOT_HTTP_PORT (for Docker)")
    migrate_db = command("migrate-db", "copy a SQLite database's whole state into an empty PostgreSQL database")
    migrate_db.add_argument("--from", dest="source", type=Path, required=True, help="the SQLite file (BOT_DATABASE)")
    migrate_db.add_argument("--to", dest="target", required=True, help="postgresql://user:password@host/database")
    return parser


def _log_level_chosen(argv: Sequence[str] | None) -> bool:
    words = sys.argv[1:] if argv is None else argv
    return _LoggingSettings().log_level is not None or any(word.split("=", 1)[0] == "--log-level" for word in words)


def _version() -> str:
    try:
        return metadata.version("pixverse-bot")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level
    if args.command == "console" and sys.stdin.isatty() and not _log_level_chosen(argv):
        # Someone is typing at the prompt: routine INFO lines would only get in the way.
        level = "WARNING"
    configure_logging(level, args.log_format)
    try:
        if args.command == "sandbox":
            return asyncio.run(_serve_sandbox(args))
        if args.command == "migrate-db":
            return asyncio.run(_migrate_db(args.source, args.target))
        try:
            overrides = {"bot_sandbox": True} if getattr(args, "sandbox", False) else {}
            settings = load_settings(**overrides)
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.command in {"check", "run", "console"} and (conflicts := default_conflicts(settings)):
            print(SettingsError.heading + "\n".join(f"  {line}" for line in conflicts), file=sys.stderr)
            return 2
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "console":
            return asyncio.run(_console(settings, args.user))
        if args.command == "backup":
            return _backup(settings, args.path)
        if args.command == "healthcheck":
            return _healthcheck(settings)
        return asyncio.run(_run(settings))
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name not in {"av", "numpy"}:
            raise
        # The sandbox extra is missing: one line that says how to get it.
        print(f"pixverse-bot: {exc}", file=sys.stderr)
        return 2


async def _migrate_db(source: Path, target: str) -> int:
    from storage.migrate_db import MigrateError, copy_sqlite_to_postgres
    from storage.postgres import without_password

    try:
        copied = await copy_sqlite_to_postgres(source, target)
    except MigrateError as exc:
        print(f"pixverse-bot migrate-db: {exc}", file=sys.stderr)
        return 1
    print(f"Copied {source} to {without_password(target)}:")
    for table, rows in copied.rows.items():
        print(f"  {table}: {rows} rows")
    print("Now set BOT_DATABASE to the PostgreSQL URL and start the bot.")
    return 0


def _backup(settings: Settings, target: Path) -> int:
    from storage.database import BackupError, backup_database
    from storage.postgres import is_postgresql

    if is_postgresql(settings.bot_database):
        print("pixverse-bot backup: BOT_DATABASE is PostgreSQL: back it up with pg_dump", file=sys.stderr)
        return 1
    try:
        pages = backup_database(settings.bot_database, target)
    except BackupError as exc:
        print(f"pixverse-bot backup: {exc}", file=sys.stderr)
        return 1
    print(f"Backed up {settings.bot_database} to {target} ({pages} pages).")
    return 0


def _healthcheck(settings: Settings) -> int:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{settings.bot_http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 (a fixed loopback URL)
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


async def _serve_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox import SandboxConfig, serve
    from bot.sandbox.config import numbers_after_earlier_runs

    config = SandboxConfig(
        token=args.token,
        generation_seconds=args.generation_seconds,
        first_video_number=numbers_after_earlier_runs(),
    )
    await _until_signalled(serve(config, args.host, args.port))
    return 0


async def _console(settings: Settings, user: str | None) -> int:
    from adapters.console.app import run_console
    from bot.bootstrap import open_core

    async with open_core(settings) as core:
        return await run_console(core, user=user, handle_signals=True)


class AdapterStartError(Exception):
    """A chat platform could not be started; `str()` is the one line the operator reads."""


async def _run(settings: Settings) -> int:
    from bot.bootstrap import freeze_startup_heap, open_core, serving_http, tune_garbage_collection

    if not (settings.telegram_bot_token or settings.discord_bot_token):
        print(
            "No chat platform is configured: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(see README.md), or try the bot in this terminal with `pixverse-bot console --sandbox`.",
            file=sys.stderr,
        )
        return 2
    if settings.useapi_api_token is None and not settings.bot_sandbox:
        print(NO_UPSTREAM_FOR_CHATS, file=sys.stderr)
        return 2
    chats, upstream = await _chat_token_findings(settings), await check_useapi(settings)
    # A refused token, or a chat platform out of reach: the bot cannot start as configured.
    stops = [finding for finding in chats if finding.is_problem] + (
        upstream.findings if upstream.token_rejected else []
    )
    for finding in stops:
        print(f"pixverse-bot run: {finding.text}", file=sys.stderr)
    if stops:
        # 2: a setting to fix, starting again as it is would fail again; 1: worth a retry.
        return 2 if any(finding.verdict is Verdict.WRONG for finding in stops) else 1
    try:
        async with open_core(settings, serves_chats=True) as core, contextlib.AsyncExitStack() as adapters:
            # Adapters first: the Telegram webhook adds its route before the HTTP server starts.
            if settings.telegram_bot_token:
                from adapters.telegram import running_telegram

                await _start_adapter(adapters, "Telegram", running_telegram(core), settings)
            if settings.discord_bot_token:
                from adapters.discord import running_discord

                await _start_adapter(adapters, "Discord", running_discord(core), settings)
            for finding in upstream.findings:
                if finding.is_problem:
                    # The bot runs, but not as configured (an account it cannot use, useapi.net
                    # down for now): loud in the log, and the operators hear it in their chats.
                    await core.progress.alert_operator(finding.text)
            async with serving_http(core.http_app, settings.bot_http_host, settings.bot_http_port) as url:
                log.info("HTTP server on %s (healthz, webhooks)", url)
                freeze_startup_heap()
                tune_garbage_collection()
                await _until_signalled(asyncio.Event().wait())
    except AdapterStartError as exc:
        print(f"pixverse-bot run: {exc}", file=sys.stderr)
        return 1
    return 0


NO_UPSTREAM_FOR_CHATS = (
    "pixverse-bot run: USEAPI_API_TOKEN is not set, so chat members would get synthetic videos from the "
    'built-in sandbox. Set USEAPI_API_TOKEN (README, "Setting it up for real"), or set BOT_SANDBOX=true '
    "to serve sandbox videos on purpose (for a trial; their captions say they are synthetic)."
)


async def _chat_token_findings(settings: Settings) -> list[Finding]:
    """What Telegram and Discord say about their tokens (only platforms with a token are asked)."""
    findings: list[Finding | None] = []
    if settings.telegram_bot_token:
        from adapters.telegram.preflight import check_telegram_token

        findings.append(await check_telegram_token(settings))
    if settings.discord_bot_token:
        from adapters.discord.preflight import check_discord_token

        findings.append(await check_discord_token(settings))
    return [finding for finding in findings if finding is not None]


async def _start_adapter(
    stack: contextlib.AsyncExitStack,
    platform: str,
    adapter: contextlib.AbstractAsyncContextManager[object],
    settings: Settings,
) -> None:
    """Enter a platform's `running_*` context; a failure becomes one line (the traceback only at DEBUG)."""
    try:
        await stack.enter_async_context(adapter)
    except Exception as exc:
        log.debug("%s could not start", platform, exc_info=True)
        said = f"{type(exc).__name__}: {exc}"
        for secret in (settings.telegram_bot_token, settings.discord_bot_token):
            said = without_secret(said, secret)
        raise AdapterStartError(f"{platform} could not start ({said})") from None


async def _until_signalled(work) -> None:
    """Run `work` until it ends or SIGINT/SIGTERM arrives; then let cleanups run."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _check(settings: Settings) -> int:
    from storage.postgres import without_password

    print("Effective configuration:")
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        is_secret = "SecretStr" in str(field.annotation)  # every secret, present or future
        # A URL may carry a password (BOT_DATABASE=postgresql://user:password@host/db).
        shown = mask_secret(value) if is_secret else without_password(value) if isinstance(value, str) else value
        print(f"  {name.upper()} = {shown}")
    print("\nChecking the tokens with their services …")
    findings = await _chat_token_findings(settings)
    if settings.uses_sandbox:
        chats = bool(settings.telegram_bot_token or settings.discord_bot_token)
        if chats and not settings.bot_sandbox:
            findings.append(Finding(Verdict.WRONG, NO_UPSTREAM_FOR_CHATS.removeprefix("pixverse-bot run: ")))
        else:
            why = "BOT_SANDBOX=true" if settings.bot_sandbox else "USEAPI_API_TOKEN is not set"
            print(f"  {why}: the bot will use the built-in sandbox (synthetic videos).")
    else:
        findings.extend((await check_useapi(settings)).findings)
    for finding in findings:
        if not finding.is_problem:
            print(f"  {finding.text}")
    problems = [finding.text for finding in findings if finding.is_problem]
    for problem in problems:  # one line each, on stderr
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
