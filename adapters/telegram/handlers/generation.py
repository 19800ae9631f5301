"""Every generation kind as a command (bot.kinds), and the prompt answered to "What should the video show?".

A kind with pictures takes them from the message (a photo with the command as caption,
or an album whose caption holds it) or from the message it replies to. A kind may take the
album's other captions as a command field (/transition: each transition's prompt).
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.albums import Albums
from adapters.telegram.files import CLOUD_DOWNLOAD_LIMIT, download_image
from adapters.telegram.prompts import AnswerTo, force_reply, prompt_question, read_prompt_question
from bot.bootstrap import Core
from bot.commands import parse_command
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.kinds import CREATE, KINDS, GenerationKind
from bot.text_options import parse_options

NO_IMAGE = "is missing; send a picture with the caption /{name} …, or reply /{name} to a picture"
NO_ALBUM = "is missing; send {pictures} as one album with the caption /{name} …"


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(create_single, Command(CREATE.name))
    handlers.message.register(prompt_answered, AnswerTo(read_prompt_question))
    for kind in KINDS:
        if kind.pictures is not None:
            handlers.message.register(_with_pictures(kind), Command(kind.name))
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


async def _create(core: Core, requester: Requester, text: str) -> bool:
    """Queue a /create_single from its text; False when the text has no prompt."""
    parsed = parse_options(text, CREATE.all_options)
    if not parsed.prompt:
        return False
    with parsed.in_users_words():
        command = parse_command(CREATE.command, core.service.catalogue, prompt=parsed.prompt, **parsed.values)
        await core.service.generate(requester, CREATE, command)
    return True


def _with_pictures(kind: GenerationKind):  # type: ignore[no-untyped-def]
    """The handler of a kind that takes pictures."""

    async def handle(
        message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester, albums: Albums
    ) -> None:
        assert kind.pictures is not None
        parsed = parse_options(command.args or "", kind.all_options)
        with parsed.in_users_words():
            # Validate the options before fetching anything: a typo should not cost a download.
            typed = parse_command(kind.command, core.service.catalogue, prompt=parsed.prompt or None, **parsed.values)
            source = message
            images = await albums.photos(message)
            if not images and message.reply_to_message is not None:
                source = message.reply_to_message
                images = await albums.photos(source)
            if not images:
                template = NO_IMAGE if kind.pictures.required == 1 else NO_ALBUM
                raise InvalidInput("image", template.format(name=kind.name, pictures=kind.pictures.describe()))
            later_captions = albums.captions(source)[1:]  # the first one holds the command
            if kind.album_captions and kind.album_captions not in parsed.values and any(later_captions):
                values = parsed.values | {kind.album_captions: later_captions}
                typed = parse_command(kind.command, core.service.catalogue, prompt=parsed.prompt or None, **values)
            typed = await core.service.prepared(requester, kind, typed)  # an effect looked up by its name
            core.service.check(kind, typed, len(images))
            limit = core.settings.max_image_bytes
            if not core.settings.telegram_api_base:
                limit = min(limit, CLOUD_DOWNLOAD_LIMIT)
            data = [await download_image(bot, image, limit) for image in images]
            await core.service.generate(requester, kind, typed, data)

    handle.__name__ = handle.__qualname__ = f"{kind.name}_command"
    return handle
