"""Fetching a user's picture from Telegram: size checked before downloading, content by the core."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from adapters.telegram.parsing import ImageFile
from bot.errors import InvalidInput

log = logging.getLogger(__name__)

# The cloud Bot API hands out files up to 20 MB; a local Bot API server has no such cap.
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024


def _too_large(size: int, limit: int, what: str = "image") -> InvalidInput:
    return InvalidInput(what, f"is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB")


async def download_image(bot: Bot, image: ImageFile, limit: int, *, what: str = "image") -> bytes:
    """The file's bytes (a picture, or the `what` errors name), refused early (before any
    download) when Telegram says it is too big.

    A local Bot API server started with `--local` answers getFile with an absolute path
    on its own disk (shared with the bot): that file is read directly. Otherwise the
    file is downloaded over HTTP from the file URL.
    """
    if image.size is not None and image.size > limit:
        raise _too_large(image.size, limit, what)
    try:
        file = await bot.get_file(image.file_id)
    except TelegramBadRequest as exc:  # e.g. "file is too big" from the cloud API
        raise InvalidInput(what, f"Telegram would not hand it over ({exc.message})") from None
    if file.file_size is not None and file.file_size > limit:
        raise _too_large(file.file_size, limit, what)
    if not file.file_path:
        raise InvalidInput(what, "Telegram did not say where the file is; please send it again")
    if Path(file.file_path).is_absolute():
        try:
            return await asyncio.to_thread(Path(file.file_path).read_bytes)
        except OSError as exc:
            log.error("cannot read %s from the local Bot API server's disk: %s", file.file_path, exc.strerror)
            raise InvalidInput(what, "could not be read from the Bot API server; tell the operator") from None
    buffer = io.BytesIO()
    try:
        await bot.download_file(file.file_path, buffer)
    except aiohttp.ClientError as exc:
        # Never log or chain the exception: its text holds the file URL, and that URL holds the bot token.
        log.warning("downloading a %s from Telegram failed (%s)", what, type(exc).__name__)
        raise InvalidInput(what, "could not be downloaded from Telegram; please send it again") from None
    return buffer.getvalue()
