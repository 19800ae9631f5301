"""One way to handle every interaction: acknowledge, admit, run the work, answer or explain.

Replies to commands are ephemeral: only the person who asked sees their progress,
the answers and the refusals; finished videos are the only public messages. Every
handler goes through `Responder.run`, so refusals, bad input and bugs are answered
the same way everywhere:
- `BotError` (bad input, moderation, quota, upstream trouble): its text, ephemerally;
- a silent refusal (flood after its warning, bot switched off here): no visible trace —
  the ephemeral "thinking…" placeholder is deleted, a button press is acknowledged
  without any change (Discord needs every interaction answered);
- anything else is a bug: logged with its traceback, answered with a short apology.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import discord

from adapters.discord.context import InteractionContext
from bot.domain import ChatRef, Platform, Requester, UserRef
from bot.errors import BotError
from bot.gate import Gatekeeper

log = logging.getLogger(__name__)

CONTENT_LIMIT = 2000
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."
# Who counts as a group admin (`Requester.is_group_admin`), per kind of handler:
# Manage Server for the admin commands and the moderation exemptions that go with them,
# Manage Messages for pressing the result buttons under another member's video.
GROUP_ADMIN = discord.Permissions(manage_guild=True)
MESSAGE_MODERATOR = discord.Permissions(manage_messages=True)

Work = Callable[[Requester], Awaitable[str | None]]
# The first step of a two-step handler (`Responder.run_prepared`): given who asked, it returns
# the work to run once the interaction is deferred.
Prepare = Callable[[Requester], Awaitable[Work]]


def user_ref(user: discord.abc.User) -> UserRef:
    return UserRef(Platform.DISCORD, str(user.id), user.display_name)


def fit(text: str, limit: int = CONTENT_LIMIT) -> str:
    """`text` cut to Discord's message limit, at a line break where one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    line_end = cut.rfind("\n")
    return (cut[:line_end] if line_end > limit // 2 else cut) + "…"


class Responder:
    def __init__(self, gate: Gatekeeper, *, token_lifetime: timedelta) -> None:
        self._gate = gate
        self._token_lifetime = token_lifetime

    async def run(
        self,
        interaction: discord.Interaction,
        work: Work,
        *,
        admin_if: discord.Permissions = GROUP_ADMIN,
        acknowledge: bool = True,
        toggles_bot: bool = False,
        admin_command: bool = False,
    ) -> None:
        """Handle `interaction` with `work`; what `work` returns is shown to the user.

        With `acknowledge` the interaction is deferred first (Discord allows 3 s, the core
        may take longer); without it `work` must answer the interaction itself (a modal
        cannot follow a deferral) and must be quick. An `admin_command` is not blocked by
        a mute; `toggles_bot` (/bot) also runs while the bot is off.
        """

        async def at_once(_requester: Requester) -> Work:
            return work

        await self.run_prepared(
            interaction,
            at_once,
            admin_if=admin_if,
            acknowledge=acknowledge,
            toggles_bot=toggles_bot,
            admin_command=admin_command,
        )

    async def run_prepared(
        self,
        interaction: discord.Interaction,
        prepare: Prepare,
        *,
        admin_if: discord.Permissions = GROUP_ADMIN,
        acknowledge: bool = True,
        toggles_bot: bool = False,
        admin_command: bool = False,
    ) -> None:
        """`run`, for work in two steps: `prepare` (checks and reads, nothing that a deferral
        Discord refuses would have to undo) runs once the gate admits the requester, while the
        deferral is on its way; the work it returns runs once the interaction is deferred, with
        the deferred response to answer through. A refusal from either is told after the deferral.
        """
        try:
            requester = self._requester(interaction, admin_if=admin_if)

            async def admitted_and_prepared() -> Work:
                await self._gate.admit(requester, toggles_bot=toggles_bot, admin_command=admin_command)
                return await prepare(requester)

            original_id = None
            if acknowledge:
                # The deferral goes out first; the gate's checks and the preparation (database
                # reads, moderation) run while it is on its way instead of after Discord's answer,
                # so the first answer is not held back by both one after the other.
                preparing = asyncio.ensure_future(admitted_and_prepared())
                try:
                    original_id = await self._defer(interaction)
                except BaseException:
                    preparing.cancel()  # nothing to prepare for an interaction that cannot be answered
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await preparing
                    raise
                work = await preparing
            else:
                work = await admitted_and_prepared()
            requester = replace(requester, context=self._context(interaction, original_id).to_context())
            answer = await work(requester)
            if answer:
                await self.say(interaction, answer)
        except BotError as refusal:
            if refusal.silent:
                await self._stay_silent(interaction)
            else:
                await self._say_safely(interaction, str(refusal))
        except Exception:
            log.exception("handling %s failed", _describe(interaction))
            await self._say_safely(interaction, APOLOGY)

    def _requester(self, interaction: discord.Interaction, *, admin_if: discord.Permissions) -> Requester:
        """Who asked and where; the interaction to answer through is added once it is deferred."""
        channel = interaction.channel
        chat_id, thread_id = interaction.channel_id, None
        if isinstance(channel, discord.Thread):  # a thread belongs to its parent channel's conversation
            chat_id, thread_id = channel.parent_id, channel.id
        guild_id = interaction.guild_id
        return Requester(
            user=user_ref(interaction.user),
            chat=ChatRef(
                Platform.DISCORD,
                str(chat_id),
                thread_id=str(thread_id) if thread_id else None,
                group_id=str(guild_id) if guild_id else None,
                is_private=guild_id is None,
            ),
            is_group_admin=guild_id is not None and interaction.permissions.is_superset(admin_if),
        )

    def _context(self, interaction: discord.Interaction, original_message_id: int | None) -> InteractionContext:
        """The deferred interaction the job's events are answered through while its token lives."""
        return InteractionContext(
            application_id=interaction.application_id,
            token=interaction.token,
            expires_at=interaction.created_at + self._token_lifetime,
            original_message_id=original_message_id,
            upload_limit=interaction.filesize_limit,
        )

    async def say(self, interaction: discord.Interaction, text: str) -> None:
        """Answer the user who caused `interaction`, visible to them only."""
        text = fit(text)
        response = interaction.response
        if not response.is_done():
            await response.send_message(text, ephemeral=True)
        elif response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.edit_original_response(content=text)
        else:  # answered with a modal or a silent acknowledgement: a new ephemeral message
            await interaction.followup.send(text, ephemeral=True)

    @staticmethod
    async def _defer(interaction: discord.Interaction) -> int | None:
        callback = await interaction.response.defer(ephemeral=True, thinking=True)
        return callback.message_id if callback is not None else None

    async def _say_safely(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await self.say(interaction, text)
        except discord.HTTPException as exc:  # the interaction expired or vanished: nobody to tell
            log.warning("could not answer %s: %s", _describe(interaction), exc)

    @staticmethod
    async def _stay_silent(interaction: discord.Interaction) -> None:
        try:
            if not interaction.response.is_done():
                await interaction.response.defer()  # acknowledged, nothing shown
            else:
                await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not withdraw %s: %s", _describe(interaction), exc)


def _describe(interaction: discord.Interaction) -> str:
    what = interaction.command.qualified_name if interaction.command else interaction.type.name
    return f"interaction {interaction.id} ({what}) from discord:{interaction.user.id}"
