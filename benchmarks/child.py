"""The processes the benchmarks measure, each started on its own: `python -m benchmarks.child MODE …`.

- `pixverse`: the real bot, `pixverse-bot run`, configured by its environment as in
  production. When BENCH_DISCORD_BASE is set, discord.py's REST and gateway URLs point
  at that fake Discord first (the one thing the bot cannot be told by a setting; a
  test does the same with `FakeDiscord.start`, which can only patch its own process).
- `aiogram-floor API_BASE TOKEN`: the bare aiogram bot everyone would start from: one
  handler that replies to /create_single with one sendMessage.
- `discord-floor TOKEN` (with BENCH_DISCORD_BASE): the bare discord.py bot doing what any
  slash-command bot that needs more than 3 s must do: defer, then edit the answer in.

The floors freeze their startup heap as `pixverse-bot run` does, so both sides collect
garbage alike. Each runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

QUEUED_ACK = "⏳ Queued"


def _point_discord_at_fake() -> None:
    base = os.environ.get("BENCH_DISCORD_BASE")
    if not base:
        return
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = base + "/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http://", "ws://") + "/gateway")


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def aiogram_floor(api_base: str, token: str) -> None:
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.filters import Command
    from aiogram.types import Message

    from bot.bootstrap import freeze_startup_heap

    router = Router()

    @router.message(Command("create_single"))
    async def acknowledge(message: Message) -> None:
        await message.reply(f"{QUEUED_ACK}: {message.text}")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)),
        default=DefaultBotProperties(allow_sending_without_reply=True),
    )
    dispatcher.startup.register(freeze_startup_heap)
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, close_bot_session=True, allowed_updates=dispatcher.resolve_used_update_types()
        )
    )
    await _until_terminated()
    await dispatcher.stop_polling()
    await polling


async def discord_floor(token: str) -> None:
    import discord
    from discord import app_commands

    from bot.bootstrap import freeze_startup_heap

    client = discord.Client(intents=discord.Intents(guilds=True))
    tree = app_commands.CommandTree(client)

    @tree.command(name="create_single", description="Make a short video from a text prompt")
    async def create_single(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content=f"{QUEUED_ACK}: {prompt}")

    @client.event
    async def setup_hook() -> None:
        await tree.sync()

    async with client:
        await client.login(token)
        gateway = asyncio.create_task(client.connect())
        await client.wait_until_ready()
        freeze_startup_heap()
        await _until_terminated()
        await client.close()
        await asyncio.gather(gateway, return_exceptions=True)


def main(argv: list[str]) -> int:
    mode, *args = argv
    _point_discord_at_fake()
    if mode == "pixverse":
        from bot.__main__ import main as pixverse_bot

        return pixverse_bot(["run", *args])
    if mode == "aiogram-floor":
        asyncio.run(aiogram_floor(*args))
        return 0
    if mode == "discord-floor":
        asyncio.run(discord_floor(*args))
        return 0
    print(f"unknown mode {mode!r}: pixverse, aiogram-floor or discord-floor", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
