"""Admin slash commands: quotas, bans, mutes, prompt filters, the moderation log, usage and credits.

Who may do what is the core's decision (`bot.admin`): server admins (Manage Server)
for their server, operators (BOT_ADMIN_IDS) everywhere. The commands are also hidden
from members without Manage Server by default (server owners can change that in
Server Settings → Integrations), which keeps the command list short for everyone else.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from adapters.discord.responder import Responder, Work, user_ref
from bot.admin import AdminService
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.ranges import MODLOG_ENTRIES, MUTE_MINUTES, STATS_DAYS, STRIKE_LIMIT, STRIKE_WINDOW_HOURS

admin_only = app_commands.default_permissions(manage_guild=True)
FILTER_ACTIONS = [Choice(name=a, value=a) for a in ("add", "remove", "list", "test")]
FILTER_MODES = [Choice(name=m, value=m) for m in ("reject", "strike", "exempt on", "exempt off")]


def filter_mode_args(
    mode: str | None, strike_limit: int | None, window_hours: float | None, mute_minutes: float | None
) -> list[str]:
    """The core's `/filtermode` words from typed options (its strike numbers are positional)."""
    numbers = {"strike_limit": strike_limit, "window_hours": window_hours, "mute_minutes": mute_minutes}
    given = [name for name, value in numbers.items() if value is not None]
    if mode != "strike":
        if given:
            raise InvalidInput(given[0], "only goes with mode strike")
        return mode.split() if mode else []
    args = ["strike"]
    for name, value in numbers.items():
        if value is None:
            later = given[len(args) - 1 :]
            if later:
                raise InvalidInput(name, f"is needed too when {later[0]} is set")
            break
        args.append(f"{value:.15g}")  # as typed: no exponent for a large number
    return args


class AdminCog(commands.Cog, name="Admin"):
    def __init__(self, admin: AdminService, responder: Responder) -> None:
        self._admin = admin
        self._responder = responder

    async def _run_admin(self, interaction: discord.Interaction, work: Work, *, toggles_bot: bool = False) -> None:
        """Run an admin command: who may is the core's call; a mute never stands in the way."""
        await self._responder.run(interaction, work, toggles_bot=toggles_bot, admin_command=True)

    @app_commands.command(name="id", description="Your id and this server's (for BOT_ADMIN_IDS, DISCORD_GUILD_IDS)")
    async def id_(self, interaction: discord.Interaction) -> None:
        async def ids(requester: Requester) -> str:
            return self._admin.ids(requester)

        await self._responder.run(interaction, ids)

    @app_commands.command(description="How much you (and this server) have left to spend")
    async def quota(self, interaction: discord.Interaction) -> None:
        await self._responder.run(interaction, self._admin.quota)

    @app_commands.command(description="Set a member's quota, or without a member this server's shared pool")
    @app_commands.describe(
        amount="A whole number, or 'unlimited'", user="Whose quota (leave empty for the server pool)"
    )
    @admin_only
    async def setquota(
        self, interaction: discord.Interaction, amount: Range[str, 1, 20], user: discord.User | None = None
    ) -> None:
        target = user_ref(user) if user else None
        await self._run_admin(interaction, lambda r: self._admin.set_quota(r, target, amount))

    @app_commands.command(description="Start a member's (or the server pool's) usage from zero")
    @app_commands.describe(user="Whose usage (leave empty for the server pool)")
    @admin_only
    async def resetquota(self, interaction: discord.Interaction, user: discord.User | None = None) -> None:
        target = user_ref(user) if user else None
        await self._run_admin(interaction, lambda r: self._admin.reset_quota(r, target))

    @app_commands.command(description="Stop a member from using the bot in this server")
    @app_commands.describe(user="Who to ban")
    @admin_only
    async def ban(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self._run_admin(interaction, lambda r: self._admin.ban(r, user_ref(user)))

    @app_commands.command(description="Let a banned member use the bot again")
    @app_commands.describe(user="Who to unban")
    @admin_only
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self._run_admin(interaction, lambda r: self._admin.unban(r, user_ref(user)))

    @app_commands.command(description="Lift a member's strike mute and clear their strikes")
    @app_commands.describe(user="Who to unmute")
    @admin_only
    async def unmute(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self._run_admin(interaction, lambda r: self._admin.unmute(r, user_ref(user)))

    @app_commands.command(name="filter", description="Words or phrases prompts may not contain here")
    @app_commands.describe(action="What to do", text="The word or phrase (not needed for list)")
    @app_commands.choices(action=FILTER_ACTIONS)
    @admin_only
    async def filter_(self, interaction: discord.Interaction, action: str, text: Range[str, 1, 200] = "") -> None:
        await self._run_admin(interaction, lambda r: self._admin.filter(r, action, text))

    @app_commands.command(description="How refused prompts are handled; without options, shows the current way")
    @app_commands.describe(
        mode="reject: refuse the prompt; strike: also count strikes and mute; exempt: whether admins are checked",
        strike_limit="strike mode: refusals that mute a member",
        window_hours="strike mode: hours in which those refusals count",
        mute_minutes="strike mode: how long the mute lasts",
    )
    @app_commands.choices(mode=FILTER_MODES)
    @admin_only
    async def filtermode(
        self,
        interaction: discord.Interaction,
        mode: str | None = None,
        strike_limit: Range[int, STRIKE_LIMIT.low, STRIKE_LIMIT.high] | None = None,
        window_hours: Range[float, STRIKE_WINDOW_HOURS.low, STRIKE_WINDOW_HOURS.high] | None = None,
        mute_minutes: Range[float, MUTE_MINUTES.low, MUTE_MINUTES.high] | None = None,
    ) -> None:
        async def change(requester: Requester) -> str:
            return await self._admin.filter_mode(
                requester, filter_mode_args(mode, strike_limit, window_hours, mute_minutes)
            )

        await self._run_admin(interaction, change)

    @app_commands.command(description="Recently refused prompts and what followed")
    @app_commands.describe(limit="How many entries (newest first)")
    @admin_only
    async def modlog(
        self, interaction: discord.Interaction, limit: Range[int, MODLOG_ENTRIES.low, MODLOG_ENTRIES.high] = 20
    ) -> None:
        await self._run_admin(interaction, lambda r: self._admin.modlog(r, limit))

    @app_commands.command(description="Videos made and credits spent, per member")
    @app_commands.describe(days="How many days back")
    @admin_only
    async def stats(
        self, interaction: discord.Interaction, days: Range[int, STATS_DAYS.low, STATS_DAYS.high] = 30
    ) -> None:
        await self._run_admin(interaction, lambda r: self._admin.stats(r, days))

    @app_commands.command(description="PixVerse credits and free slots of each account (operators)")
    @admin_only
    async def credits(self, interaction: discord.Interaction) -> None:
        await self._run_admin(interaction, self._admin.credits)

    @app_commands.command(name="bot", description="Switch the bot on or off in this server")
    @app_commands.describe(enabled="On or off")
    @admin_only
    async def switch(self, interaction: discord.Interaction, enabled: bool) -> None:
        await self._run_admin(interaction, lambda r: self._admin.set_bot_enabled(r, enabled), toggles_bot=True)
