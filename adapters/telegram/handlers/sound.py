"""/voices, /lipsync, and the 🗣 Lip-sync button with the words or voice note answered to it.

A lip-sync targets one of the bot's own videos — the one the button sits under, or the one
`/lipsync` replies to (its caption ends with `job <id>`) — or the user's own video: the one
`/lipsync` is the caption of, or replies to (fetched, then checked and uploaded by the
core). The speech is text (with an optional `--voice NAME`) or a voice note / audio file —
on the /lipsync message itself (its caption holds the command) or as the answer to the 🗣
question. Telegram lets a bot
fetch at most 20 MB (CLOUD_DOWNLOAD_LIMIT) unless a local Bot API server is used.
"""

from __future__ import annotations

import logging
import re

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)

from adapters.telegram.files import CLOUD_DOWNLOAD_LIMIT, download_file, download_limit
from adapters.telegram.parsing import ImageFile, video_of
from adapters.telegram.prompts import AnswerTo, text_question_of
from adapters.telegram.texts import TEXT_LIMIT
from bot.audio import MAX_AUDIO_BYTES
from bot.bootstrap import Core
from bot.domain import Requester, ResultAction
from bot.errors import InvalidInput
from bot.text_options import VOICE_OPTION, parse_options
from bot.texts import voices_text
from bot.upstream.models import MAX_LIPSYNC_AUDIO_SECONDS

log = logging.getLogger(__name__)
# What sendMediaGroup's `media` list holds (aiogram types it as this union).
MediaGroupItem = InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo

# The last line of every result caption (bot.delivery.build_caption).
_JOB_LINE = re.compile(r"^job (?P<job_id>[A-Za-z0-9]+)$", re.MULTILINE)
NOT_A_RESULT = (
    "is missing; reply /lipsync <words> [--voice NAME] to one of my videos (one with the 🗣 button),"
    " or send your own video (MP4 or MOV) with the caption /lipsync <words> [--voice NAME]"
)
# sendMediaGroup takes 2 to 10 items.
_ALBUM_MAX = 10


def router() -> Router:
    """This module's handlers on a fresh Router."""
    handlers = Router(name=__name__)
    handlers.message.register(voices, Command("voices"))
    handlers.message.register(lipsync_command, Command("lipsync"))
    # The 🗣 button asks like 🔀 and ✏️ do (handlers.buttons); its answer may be a voice note.
    handlers.message.register(lipsync_answered, AnswerTo(text_question_of(ResultAction.LIPSYNC), sound=True))
    return handlers


async def voices(message: Message, bot: Bot, core: Core) -> None:
    """The voice list, then each voice's sample as an audio album (Telegram fetches the urls)."""
    listed = await core.service.voices.all()
    await message.reply(voices_text(listed)[:TEXT_LIMIT])
    samples = [voice for voice in listed if voice.sample_url]
    for start in range(0, len(samples), _ALBUM_MAX):
        chunk = samples[start : start + _ALBUM_MAX]
        try:
            if len(chunk) == 1:
                await message.answer_audio(chunk[0].sample_url, title=chunk[0].name)
            else:
                media: list[MediaGroupItem] = [
                    InputMediaAudio(media=voice.sample_url, title=voice.name, caption=voice.name) for voice in chunk
                ]
                await bot.send_media_group(message.chat.id, media, message_thread_id=message.message_thread_id)
        except TelegramAPIError as exc:
            # The links are in the list already; a sample Telegram cannot fetch is no failure.
            log.warning("sending the voice samples failed: %s", exc)
            return


async def lipsync_command(message: Message, command: CommandObject, bot: Bot, core: Core, requester: Requester) -> None:
    # The video is the message's own, else one of this bot's results it replies to (by its
    # job: nothing to upload), else the user's video it replies to.
    own = video_of(message, or_replied=False)
    job_id = _job_of(message.reply_to_message, bot) if own is None else None
    video = video_of(message) if job_id is None else None
    if job_id is None and video is None:
        raise InvalidInput("video", NOT_A_RESULT)
    await _lipsync(message, command.args or "", bot, core, requester, job_id=job_id, video=video)


async def lipsync_answered(message: Message, job_id: str, bot: Bot, core: Core, requester: Requester) -> None:
    await _lipsync(message, message.text or message.caption or "", bot, core, requester, job_id=job_id)


async def _lipsync(
    message: Message,
    text: str,
    bot: Bot,
    core: Core,
    requester: Requester,
    *,
    job_id: str | None = None,
    video: ImageFile | None = None,
) -> None:
    parsed = parse_options(text, (VOICE_OPTION,))
    with parsed.in_users_words():
        # Nothing is fetched, audio or video, for a lip-sync that cannot go ahead (words or
        # audio, not both; at most 200 characters).
        sent_audio = message.voice is not None or message.audio is not None
        core.service.check_lipsync(job_id, video=video is not None, text=parsed.prompt, audio=sent_audio)
        audio = await _audio_of(message, bot)
        data = None
        if video is not None:
            data = await download_file(
                bot, video, download_limit(core.settings, core.service.video_limits.max_bytes), "video"
            )
        voice = parsed.values.get("voice")
        await core.service.lipsync(
            requester, job_id, video=data, text=parsed.prompt, voice=str(voice) if voice else None, audio=audio
        )


def _job_of(message: Message | None, bot: Bot) -> str | None:
    """The job whose result `message` is: one of this bot's videos (or, for one too large to
    upload, the message with its link), named by the `job <id>` line of its caption or text."""
    if message is None or message.from_user is None or message.from_user.id != bot.id:
        return None
    found = _JOB_LINE.search(message.caption or message.text or "")
    return found["job_id"] if found else None


async def _audio_of(message: Message, bot: Bot) -> bytes | None:
    """The voice note or audio file on `message`, fetched; None when it has none.

    Its length and size are checked against what Telegram reports before anything is fetched.
    """
    sent = message.voice or message.audio
    if sent is None:
        return None
    if sent.duration and sent.duration > MAX_LIPSYNC_AUDIO_SECONDS:
        raise InvalidInput(
            "audio",
            f"is {sent.duration} seconds long; lip-sync takes at most {MAX_LIPSYNC_AUDIO_SECONDS} seconds",
        )
    # A minute of speech is far smaller than Telegram's getFile cap, so the cap holds even
    # with a local Bot API server (which would hand out files of any size).
    limit = min(CLOUD_DOWNLOAD_LIMIT, MAX_AUDIO_BYTES)
    if sent.file_size is not None and sent.file_size > limit:
        raise InvalidInput(
            "audio", f"is {sent.file_size / 2**20:.1f} MB; Telegram lets a bot download at most {limit // 2**20} MB"
        )
    return await download_file(bot, ImageFile(sent.file_id, sent.file_size), limit, "audio")
