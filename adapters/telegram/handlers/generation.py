"""Every generation kind as a command (bot.kinds), and the prompt answered to "What should the video show?".

A kind with pictures takes them from the message (a photo with the command as caption,
or an album whose caption holds it) or from the message it replies to. A kind may take the
album's other captions as a command field (/transition: each transition's prompt). A kind
that takes the user's own video (/modify, /extend) takes it the same way: the command as
the video's caption, or replied to it.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.albums import Albums
from adapters.telegram.files import download_file, download_limit
from adapters.telegram.parsing import video_of
from adapters.telegram.prompts import AnswerTo, force_reply, prompt_question, read_prompt_question
from bot.bootstrap import Core
from bot.commands import parse_command
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.kinds import CREATE, KINDS, GenerationKind
from bot.text_options import parse_options

NO_IMAGE = "is missing; send a picture with the caption /{name} …, or reply /{name} to a picture"
NO_ALBUM = "is missing; send {pictures} as one album with the caption /{name} …"
NO_VIDEO = "is missing; send a video ({allowed}) with the caption /{example}, or reply /{name} … to a video"


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(create_single, Command(CREATE.name))
    handlers.message.register(prompt_answered, AnswerTo(read_prompt_question))
    for kind in KINDS:
        if kind.pictures is not None:
            handlers.message.register(_with_pictures(kind), Command(kind.name))
        elif kind.takes_video:
            handlers.message.register(_with_video(kind), Command(kind.name))
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
            limit = download_limit(core.settings, core.settings.max_image_bytes)
            data = [await download_file(bot, image, limit) for image in images]
            await core.service.generate(requester, kind, typed, data)

    handle.__name__ = handle.__qualname__ = f"{kind.name}_command"
    return handle


def _with_video(kind: GenerationKind):  # type: ignore[no-untyped-def]
    """The handler of a kind that takes the user's own video."""

    async def handle(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
        parsed = parse_options(command.args or "", kind.all_options)
        with parsed.in_users_words():
            if kind.prompt_required and not parsed.prompt:
                raise InvalidInput(kind.prompt_name, f"is missing; e.g. /{kind.example}")
            # Validate the options before fetching anything: a typo should not cost a download.
            typed = parse_command(kind.command, core.service.catalogue, prompt=parsed.prompt or None, **parsed.values)
            core.service.check(kind, typed, 0)
            video = video_of(message)
            if video is None:
                allowed = core.service.video_limits.describe()
                raise InvalidInput("video", NO_VIDEO.format(name=kind.name, example=kind.example, allowed=allowed))
            limit = download_limit(core.settings, core.service.video_limits.max_bytes)
            data = await download_file(bot, video, limit, "video")
            await core.service.generate(requester, kind, typed, video=data)

    handle.__name__ = handle.__qualname__ = f"{kind.name}_command"
    return handle
