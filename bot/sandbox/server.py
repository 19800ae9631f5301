"""Running a sandbox on a real socket: in tests, in the bot, and as a CLI command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bot.sandbox.config import SandboxConfig
from bot.sandbox.core import Sandbox
from bot.sandbox.web_support import API_PREFIX

log = logging.getLogger(__name__)


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Serve a sandbox on host:port (0: any free port) until the block ends.

    `sandbox.base_url` is its address, e.g. "http://127.0.0.1:54321"; clients append
    "/v2/pixverse/...".
    """
    sandbox = Sandbox(config)
    runner = web.AppRunner(sandbox.app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        sandbox.base_url = f"http://{_url_host(host)}:{bound_port}"
        yield sandbox
    finally:
        await runner.cleanup()


async def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Run a sandbox until cancelled (`pixverse-bot sandbox`)."""
    async with running_sandbox(config, host, port) as sandbox:
        emails = ", ".join(account.email for account in config.accounts)
        log.info(
            "PixVerse sandbox listening on %s%s/ with token %r (accounts: %s)",
            sandbox.base_url,
            API_PREFIX,
            config.token,
            emails,
        )
        await asyncio.Event().wait()


def _url_host(host: str) -> str:
    """A host a client can connect to, written as a URL needs it."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
