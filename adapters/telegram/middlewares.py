"""Middlewares: admission through the core's gate, and counting updates under way.

Admission: every handled command, button press and prompt answer passes the core's
gate first. As an inner middleware it runs only once a handler matched, so chatter
the bot ignores is never gated. It builds the `Requester` the handlers receive by
name — in a group with `is_group_admin` from the chat's administrators (`ChatAdmins`,
cached per chat), which the moderation exemption, the admin commands and the result
buttons all depend on; when Telegram cannot say, only an admin command waits for it.
Handlers flagged `admin` are admin commands, which a mute never blocks; `/bot` (flag
`toggles_bot`) also runs while the bot is off.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from adapters.telegram.activity import Activity
from adapters.telegram.admins import AdminsUnknown, ChatAdmins
from adapters.telegram.parsing import requester_for
from bot.bootstrap import Core
from bot.domain import Platform

# Handler flags: an admin command (a mute does not block it); /bot, which also runs while the bot is off.
ADMIN = {"admin": True}
TOGGLES_BOT = {"admin": True, "toggles_bot": True}

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


log = logging.getLogger(__name__)


class Admission(BaseMiddleware):
    """Gives handlers `requester`, once the core's gate let it in (registered on message and callback_query)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Message | CallbackQuery):
            return await handler(event, data)
        requester = requester_for(event)
        if requester is None:
            return None
        core: Core = data["core"]
        admin_command = bool(get_flag(data, "admin"))
        if not requester.chat.is_private:
            admins: ChatAdmins = data["admins"]
            try:
                is_admin = await admins.is_admin(event)
            except AdminsUnknown:
                if admin_command and requester.user.key not in core.settings.operator_keys:
                    raise  # answered: "try again in a minute"
                # Anything else runs for the sender as a member (an operator needs no chat
                # admin status): only a chat admin's extras wait for Telegram's answer.
                is_admin = False
            requester = replace(requester, is_group_admin=is_admin)
        # Raises Refused: the error handlers answer it (or, when silent, say nothing).
        await core.gate.admit(
            requester,
            toggles_bot=bool(get_flag(data, "toggles_bot")),
            admin_command=admin_command,
        )
        data["requester"] = requester
        return await handler(event, data)


class Counted(BaseMiddleware):
    """Counts updates under way (outer, per update), so stopping waits for handlers instead of cutting them off."""

    def __init__(self, activity: Activity) -> None:
        self._activity = activity

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        with self._activity.track():
            return await handler(event, data)


class FirstDelivery(BaseMiddleware):
    """Drops an update some process (this one or another) has taken already: Telegram
    delivers an update again when its webhook call got no answer in time, and behind a
    load balancer that retry may reach a process other than the one handling it. The
    update is recorded before it is handled, so it is handled at most once."""

    def __init__(self, core: Core) -> None:
        self._core = core

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and not await self._core.updates.first_time(Platform.TELEGRAM, event.update_id):
            log.info("Telegram update %s was taken already; dropped", event.update_id)
            return None
        return await handler(event, data)
