"""Fetching a user's picture, video or audio from Telegram: size checked before downloading, content by the core."""

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
from bot.settings import Settings

log = logging.getLogger(__name__)

# The cloud Bot API hands out files up to 20 MB; a local Bot API server has no such cap.
_MIB = 1024 * 1024
CLOUD_DOWNLOAD_LIMIT = 20 * _MIB


def _too_large(size: int | None, limit: int, field: str) -> InvalidInput:
    if limit == CLOUD_DOWNLOAD_LIMIT:
        # Not the bot's own limit: say whose it is, and that the operator can lift it.
        # Telegram counts its 20 MB in binary megabytes.
        what = f"is {size / _MIB:.1f} MB" if size is not None else "is too big for Telegram to hand over"
        return InvalidInput(
            field,
            f"{what}; Telegram lets bots fetch files up to {limit // _MIB} MB"
            " (an operator running a local Bot API server, TELEGRAM_API_BASE, lifts this)",
        )
    what = f"is {size / 1e6:.1f} MB" if size is not None else "is too big"
    return InvalidInput(field, f"{what}; the limit is {limit / 1e6:.1f} MB")


def download_limit(settings: Settings, own_limit: int) -> int:
    """What the bot may fetch: its own limit, and the cloud Bot API's 20 MB (getFile) on top
    unless the operator runs a local Bot API server (TELEGRAM_API_BASE)."""
    return own_limit if settings.telegram_api_base else min(own_limit, CLOUD_DOWNLOAD_LIMIT)


async def download_file(bot: Bot, image: ImageFile, limit: int, field: str = "image") -> bytes:
    """The file's bytes, refused early (before any download) when Telegram says it is too big.

    A local Bot API server started with `--local` answers getFile with an absolute path
    on its own disk (shared with the bot): that file is read directly. Otherwise the
    file is downloaded over HTTP from the file URL.
    """
    if image.size is not None and image.size > limit:
        raise _too_large(image.size, limit, field)
    try:
        file = await bot.get_file(image.file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            # The server at TELEGRAM_API_BASE is no local one after all: the cloud's cap applies.
            raise _too_large(image.size, CLOUD_DOWNLOAD_LIMIT, field) from None
        raise InvalidInput(field, f"Telegram would not hand it over ({exc.message})") from None
    if file.file_size is not None and file.file_size > limit:
        raise _too_large(file.file_size, limit, field)
    if not file.file_path:
        raise InvalidInput(field, "Telegram did not say where the file is; please send it again")
    if Path(file.file_path).is_absolute():
        try:
            return await asyncio.to_thread(Path(file.file_path).read_bytes)
        except OSError as exc:
            log.error("cannot read %s from the local Bot API server's disk: %s", file.file_path, exc.strerror)
            raise InvalidInput(field, "could not be read from the Bot API server; tell the operator") from None
    buffer = io.BytesIO()
    try:
        await bot.download_file(file.file_path, buffer)
    except aiohttp.ClientError as exc:
        # Never log or chain the exception: its text holds the file URL, and that URL holds the bot token.
        log.warning("downloading a %s from Telegram failed (%s)", field, type(exc).__name__)
        raise InvalidInput(field, "could not be downloaded from Telegram; please send it again") from None
    return buffer.getvalue()
