"""/create_single and /animate, and the prompt answered to "What should the video show?"."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.files import CLOUD_DOWNLOAD_LIMIT, download_image
from adapters.telegram.parsing import image_of
from adapters.telegram.prompts import AnswerTo, force_reply, prompt_question, read_prompt_question
from bot.bootstrap import Core
from bot.commands import Animate, CreateSingle, parse_command
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.text_options import ANIMATE_OPTIONS, COMMON_OPTIONS, CREATE_OPTIONS, parse_options

NO_IMAGE = "is missing; send a picture with the caption /animate …, or reply /animate to a picture"


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(create_single, Command("create_single"))
    handlers.message.register(prompt_answered, AnswerTo(read_prompt_question))
    handlers.message.register(animate, Command("animate"))
    return handlers


async def create_single(message: Message, command: CommandObject, core: Core, requester: Requester) -> None:
    args = command.args or ""
    if not await _create(core, requester, args):
        # No prompt, so `args` holds only options: they travel in the question itself,
        # which makes the answer work even after a restart.
        await message.reply(prompt_question(args), reply_markup=force_reply())


async def prompt_answered(message: Message, options: str, core: Core, requester: Requester) -> None:
    if not await _create(core, requester, f"{message.text} {options}"):
        raise InvalidInput("prompt", "is empty; reply with words that describe the video")


async def animate(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    parsed = parse_options(command.args or "", ANIMATE_OPTIONS + COMMON_OPTIONS)
    with parsed.in_users_words():
        # Validate the options before fetching anything: a typo should not cost a download.
        request = parse_command(Animate, prompt=parsed.prompt or None, **parsed.values)
        image = image_of(message)
        if image is None:
            raise InvalidInput("image", NO_IMAGE)
        limit = core.settings.max_image_bytes
        if not core.settings.telegram_api_base:
            limit = min(limit, CLOUD_DOWNLOAD_LIMIT)
        await core.service.animate(requester, request, await download_image(bot, image, limit))


async def _create(core: Core, requester: Requester, text: str) -> bool:
    """Queue a /create_single from its text; False when the text has no prompt."""
    parsed = parse_options(text, CREATE_OPTIONS + COMMON_OPTIONS)
    if not parsed.prompt:
        return False
    with parsed.in_users_words():
        await core.service.create_single(requester, parse_command(CreateSingle, prompt=parsed.prompt, **parsed.values))
    return True
