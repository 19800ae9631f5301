"""The Discord adapter: slash commands and buttons in, progress and videos out.

`running_discord(core)` is all a composition root needs:

    async with open_core(settings) as core, running_discord(core):
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from adapters.discord.bot import PixverseBot, discord_api_base, operator_ids
from adapters.discord.context import DEFAULT_TOKEN_LIFETIME
from adapters.discord.notifier import DEFAULT_EDIT_INTERVAL, DiscordNotifier
from bot.bootstrap import Core
from bot.domain import Platform
from bot.settings import SettingsError

__all__ = ["DiscordNotifier", "PixverseBot", "running_discord"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running_discord(
    core: Core,
    *,
    token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    edit_interval: float = DEFAULT_EDIT_INTERVAL,
    ready_timeout: float = 60.0,
    guild_ready_timeout: float = 2.0,
) -> AsyncIterator[PixverseBot]:
    """Log in, connect and wait until ready (at most `ready_timeout` s per shard); disconnect on exit.

    The gateway runs as a task on the caller's loop (not `bot.run`, which would own the
    loop and the signals). The bot's notifier is registered with the core once ready.
    """
    token = core.settings.discord_bot_token
    if token is None:
        raise SettingsError("DISCORD_BOT_TOKEN is not set")
    bot = PixverseBot(
        service=core.service,
        control=core.control,
        admin=core.admin,
        gate=core.gate,
        settings=core.settings,
        token_lifetime=token_lifetime,
        guild_ready_timeout=guild_ready_timeout,
    )
    notifier = DiscordNotifier(bot, operator_ids=operator_ids(core.settings), edit_interval=edit_interval)
    with discord_api_base(core.settings):
        async with bot:
            await bot.login(token.get_secret_value())
            gateway = asyncio.create_task(bot.connect(), name="discord-gateway")
            gateway.add_done_callback(_report_gateway_end)
            try:
                await _until_ready(bot, gateway, ready_timeout)
                log.info(
                    "connected to Discord as %s, running shards %s of %s", bot.user, sorted(bot.shards), bot.shard_count
                )
                core.notifiers.register(Platform.DISCORD, notifier)
                # Results that finished while the bot was away go out now, not at the next retry tick.
                await core.deliverer.deliver_pending()
                yield bot
            finally:
                core.notifiers.unregister(Platform.DISCORD)
                await notifier.close()
                await bot.close()
                # Stopped while shards were still connecting, discord.py would go on launching the
                # rest on the closed session, retrying every 5 s for ever: nothing is left to wait for.
                gateway.cancel()
                await asyncio.gather(gateway, return_exceptions=True)


async def _until_ready(bot: PixverseBot, gateway: asyncio.Task[None], timeout: float) -> None:
    """Wait until every shard of this process is ready, giving up after `timeout` s without progress.

    discord.py connects a process's shards one after another, 5 s apart (Discord's limit
    on new sessions), so a process with many shards needs longer than any fixed deadline:
    each shard that connects or gets ready starts the clock again.
    """
    progress = asyncio.Event()

    async def on_progress(_shard_id: int) -> None:
        progress.set()

    events = ("on_shard_connect", "on_shard_ready")
    for event in events:
        bot.add_listener(on_progress, event)
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        while True:
            progress.clear()
            moved = asyncio.create_task(progress.wait())
            try:
                done, _ = await asyncio.wait(
                    {ready, gateway, moved}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                moved.cancel()
            if gateway in done:
                gateway.result()  # raises what ended the connection
                raise ConnectionError("the Discord gateway closed before the bot was ready")
            if ready in done:
                return
            if not done:
                raise TimeoutError(f"Discord did not get ready: for {timeout:g} s no shard connected or got ready")
    finally:
        ready.cancel()
        for event in events:
            bot.remove_listener(on_progress, event)


def _report_gateway_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the Discord connection ended: %r", task.exception())
