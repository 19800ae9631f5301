"""/start, /help, /jobs, /status, /queue, /cancel, /id — and a hint for anything else said to the bot in private."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from adapters.telegram.texts import ADMIN_HELP, PRIVATE_FALLBACK, split_message
from bot.bootstrap import Core
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.texts import help_text, job_details, job_line, queue_text


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(help_, CommandStart())
    handlers.message.register(help_, Command("help"))
    handlers.message.register(jobs, Command("jobs"))
    handlers.message.register(status, Command("status"))
    handlers.message.register(queue, Command("queue"))
    handlers.message.register(cancel, Command("cancel"))
    handlers.message.register(ids, Command("id"))
    # Groups with privacy mode on send the bot only commands and replies to it; in a group,
    # a reply that is no command for the bot (say, "nice!" under a video) gets no answer.
    # The other photos of an album belong to the command in its caption: no answer either.
    handlers.message.register(private_fallback, F.chat.type == ChatType.PRIVATE, F.media_group_id.is_(None))
    return handlers


async def help_(message: Message, core: Core) -> None:
    # Every command's usage outgrows one message (4096 characters): sent in parts, at line breaks.
    for part in split_message(f"{help_text(catalogue=core.service.catalogue)}\n\n{ADMIN_HELP}"):
        await message.reply(part)


async def jobs(message: Message, core: Core, requester: Requester) -> None:
    recent = await core.service.recent_jobs(requester.user)
    await message.reply("\n".join(job_line(job) for job in recent) or "No jobs yet. Try /create_single a red kite.")


async def status(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    job_id = (command.args or "").strip()
    if not job_id:
        raise InvalidInput("job", "is missing; e.g. /status abc123 (/jobs lists yours)")
    await message.reply(job_details(await core.service.job_status(requester.user, job_id)))


async def queue(message: Message, core: Core, requester: Requester) -> None:
    # In a group an admin gets the group's queue (requester.is_group_admin, from the admission middleware).
    await message.reply(queue_text(await core.control.queue(requester)))


async def cancel(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    await message.reply(await core.control.cancel(requester, command.args or ""))


async def ids(message: Message, core: Core, requester: Requester) -> None:
    await message.reply(core.admin.ids(requester))


async def private_fallback(message: Message) -> None:
    await message.reply(PRIVATE_FALLBACK)
