"""Quotas, bans, mutes, filters, filter mode, the moderation log, stats, credits and /bot on|off.

Who may do what is the core's decision (`AdminService`); this module parses the
arguments, names the target user the way Telegram allows (with their name from
getChatMember when only an id was given), and replies with the text the core
returns. Handlers flagged `admin` are admin commands: a mute does not block them.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.middlewares import ADMIN, TOGGLES_BOT
from adapters.telegram.parsing import named_user, user_ref
from adapters.telegram.texts import split_message
from bot.bootstrap import Core
from bot.domain import Requester, UserRef
from bot.errors import InvalidInput
from bot.ranges import MODLOG_ENTRIES, STATS_DAYS, NumberRange

GROUP_WORD = "group"


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(quota, Command("quota"))
    handlers.message.register(set_quota, Command("setquota"), flags=ADMIN)
    handlers.message.register(reset_quota, Command("resetquota"), flags=ADMIN)
    handlers.message.register(ban, Command("ban"), flags=ADMIN)
    handlers.message.register(unban, Command("unban"), flags=ADMIN)
    handlers.message.register(unmute, Command("unmute"), flags=ADMIN)
    handlers.message.register(filter_, Command("filter"), flags=ADMIN)
    handlers.message.register(filter_mode, Command("filtermode"), flags=ADMIN)
    handlers.message.register(modlog, Command("modlog"), flags=ADMIN)
    handlers.message.register(stats, Command("stats"), flags=ADMIN)
    handlers.message.register(credits, Command("credits"))
    handlers.message.register(switch, Command("bot"), flags=TOGGLES_BOT)
    return handlers


async def quota(message: Message, core: Core, requester: Requester) -> None:
    await _reply(message, await core.admin.quota(requester))


async def set_quota(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    target, rest = await _user_or_group(
        bot, message, command, "/setquota <user> <n|unlimited> or /setquota group <n|off>"
    )
    value = rest.split(maxsplit=1)[0] if rest.strip() else ""
    if not value:
        raise InvalidInput("quota", "is missing; e.g. /setquota 123456789 20, or /setquota group 100")
    await _reply(message, await core.admin.set_quota(requester, target, value))


async def reset_quota(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    target, _ = await _user_or_group(bot, message, command, "/resetquota <user> or /resetquota group")
    await _reply(message, await core.admin.reset_quota(requester, target))


async def ban(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    target, _ = await _named_member(bot, message, command.args or "")
    await _reply(message, await core.admin.ban(requester, target))


async def unban(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    target, _ = await _named_member(bot, message, command.args or "")
    await _reply(message, await core.admin.unban(requester, target))


async def unmute(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    target, _ = await _named_member(bot, message, command.args or "")
    await _reply(message, await core.admin.unmute(requester, target))


async def filter_(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    operation, _, text = (command.args or "").strip().partition(" ")
    if not operation:
        raise InvalidInput("filter", "use /filter add|remove|list|test <text>")
    await _reply(message, await core.admin.filter(requester, operation, text))


async def filter_mode(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    await _reply(message, await core.admin.filter_mode(requester, (command.args or "").split()))


async def modlog(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    await _reply(message, await core.admin.modlog(requester, _number(command, MODLOG_ENTRIES, default=20)))


async def stats(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    await _reply(message, await core.admin.stats(requester, _number(command, STATS_DAYS, default=30)))


async def credits(message: Message, core: Core, requester: Requester) -> None:
    await _reply(message, await core.admin.credits(requester))


async def switch(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    word = (command.args or "").strip().lower()
    if word not in {"on", "off"}:
        raise InvalidInput("bot", "use /bot on or /bot off")
    await _reply(message, await core.admin.set_bot_enabled(requester, word == "on"))


async def _user_or_group(bot: Bot, message: Message, command: CommandObject, usage: str) -> tuple[UserRef | None, str]:
    """(the user named, the rest) — or (None, the rest) for the word `group` (the group's pool)."""
    args = command.args or ""
    first, _, rest = args.strip().partition(" ")
    if first.lower() == GROUP_WORD:
        return None, rest
    try:
        return await _named_member(bot, message, args)
    except InvalidInput as exc:
        raise InvalidInput("user", f"{exc.problem}. Usage: {usage}") from None


async def _named_member(bot: Bot, message: Message, args: str) -> tuple[UserRef, str]:
    """`named_user`, with the member's name from getChatMember when only their id was given in a group."""
    target, rest = named_user(message, args)
    if target.display_name or message.chat.type == ChatType.PRIVATE:
        return target, rest
    try:
        member = await bot.get_chat_member(message.chat.id, int(target.user_id))
    except TelegramAPIError:  # never seen by Telegram here, or unreachable: the core names them as it can
        return target, rest
    return user_ref(member.user), rest


def _number(command: CommandObject, allowed: NumberRange[int], *, default: int) -> int:
    text = (command.args or "").strip()
    return allowed.parse(text) if text else default


async def _reply(message: Message, text: str) -> None:
    for part in split_message(text):
        await message.reply(part)
