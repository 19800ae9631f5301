"""The Discord bot: the core's services behind slash commands, result buttons and the remix dialog."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta

import discord
from discord.ext import commands

from adapters.discord.cogs.admin import AdminCog
from adapters.discord.cogs.generation import GenerationCog
from adapters.discord.context import DEFAULT_TOKEN_LIFETIME
from adapters.discord.responder import Responder
from adapters.discord.views import CancelButton, ResultActions, ResultButton
from bot.admin import AdminService
from bot.cancellation import JobControl
from bot.gate import Gatekeeper
from bot.service import GenerationService
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def guild_ids(settings: Settings) -> list[int]:
    """DISCORD_GUILD_IDS as numbers (servers to register the commands in instantly)."""
    try:
        return [int(raw) for raw in settings.discord_guild_ids]
    except ValueError:
        raise SettingsError(f"DISCORD_GUILD_IDS: {settings.discord_guild_ids} should be server ids (numbers)") from None


@contextlib.contextmanager
def discord_api_base(settings: Settings) -> Iterator[None]:
    """Send discord.py's REST calls to DISCORD_API_BASE (a proxy) while inside, when it is set.

    discord.py keeps the base URL in a class attribute, so it is set for the process and put
    back on the way out. The gateway (websocket) is not affected.
    """
    if not settings.discord_api_base:
        yield
        return
    saved = discord.http.Route.BASE
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    try:
        yield
    finally:
        discord.http.Route.BASE = saved


def operator_ids(settings: Settings) -> list[int]:
    """The Discord user ids among BOT_ADMIN_IDS (`discord:<id>`)."""
    return [int(key.partition(":")[2]) for key in settings.bot_admin_ids if key.startswith("discord:")]


class PixverseBot(commands.AutoShardedBot):
    """The bot on the shards DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT (by default all of Discord's count).

    Discord sends a server's events, its interactions included, only to the shard that
    server belongs to, so each interaction is answered by the process running that shard.
    Everything said later about a job (progress, the video, a failure) goes out over
    REST by the ids the job keeps, so any process may deliver any job.
    """

    def __init__(
        self,
        *,
        service: GenerationService,
        control: JobControl,
        admin: AdminService,
        gate: Gatekeeper,
        settings: Settings,
        token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            # Slash commands only: no message content, members or presences are needed.
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=discord.Intents(guilds=True),
            # Captions carry users' prompts: nothing in them may ping anyone unless a post says so.
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            shard_count=settings.discord_shard_count,
            # None runs every shard of the count; discord.py reads it so, though its stubs say a list.
            shard_ids=settings.discord_shard_ids or None,  # type: ignore[arg-type]
        )
        self.service = service
        self.control = control
        self.admin = admin
        self.settings = settings
        self.responder = Responder(gate, token_lifetime=token_lifetime)
        self.result_actions = ResultActions(service, control, self.responder)

    async def setup_hook(self) -> None:
        await self.add_cog(GenerationCog(self.service, self.control, self.responder, self.settings, self.tree))
        await self.add_cog(AdminCog(self.admin, self.responder))
        # Registered here, before any event: presses on buttons posted before a restart still work.
        self.add_dynamic_items(ResultButton, CancelButton)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Publish the slash commands: to DISCORD_GUILD_IDS at once, else globally (Discord may take a while)."""
        try:
            targets = guild_ids(self.settings)
            for guild_id in targets:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("registered %d commands in server %s", len(synced), guild_id)
            if not targets:
                synced = await self.tree.sync()
                log.info("registered %d commands globally", len(synced))
        except discord.HTTPException as exc:
            # The commands registered last time still work; the bot is still useful.
            log.warning("could not register the slash commands (%s); was the bot invited with their scope?", exc)
