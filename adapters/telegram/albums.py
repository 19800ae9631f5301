"""Telegram albums: the photos of one album arrive as separate messages sharing a
`media_group_id`, and only one of them (usually the first) carries the caption with
the command. `Albums` keeps each album's photos for a short, bounded moment, so the
command sees every photo of its album.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from adapters.telegram.parsing import ImageFile, image_of
from bot.cache import LruDict

# How long an album stays open after its last photo arrived: Telegram sends an album's
# messages back to back, so a short pause means it is complete.
ALBUM_QUIET_SECONDS = 1.0
# However they trickle in, an album is taken as it is after this long.
ALBUM_MAX_WAIT_SECONDS = 4.0
# Telegram albums hold at most 10 items; albums followed at once (a bound on memory).
ALBUM_MAX_PHOTOS = 10
ALBUMS_FOLLOWED = 1_000


@dataclass
class _Album:
    photos: dict[int, ImageFile] = field(default_factory=dict)  # by message id
    captions: dict[int, str] = field(default_factory=dict)  # by message id, of the photos kept
    grew: asyncio.Event = field(default_factory=asyncio.Event)


class Albums:
    """The photos of recent albums, by chat and media group."""

    def __init__(self, *, quiet: float = ALBUM_QUIET_SECONDS, max_wait: float = ALBUM_MAX_WAIT_SECONDS) -> None:
        self._quiet = quiet
        self._max_wait = max_wait
        self._albums: LruDict[tuple[int, str], _Album] = LruDict(ALBUMS_FOLLOWED, ttl=max(60.0, max_wait * 4))

    def add(self, message: Message) -> None:
        """Note a message of an album (a message of none is ignored)."""
        if message.media_group_id is None:
            return
        key = (message.chat.id, message.media_group_id)
        album = self._albums.get(key) or _Album()
        self._albums[key] = album
        image = image_of(message)
        if image is not None and len(album.photos) < ALBUM_MAX_PHOTOS:
            album.photos[message.message_id] = image
            album.captions[message.message_id] = message.caption or ""
            album.grew.set()

    async def photos(self, message: Message) -> list[ImageFile]:
        """The photos of `message`'s album in the order they were sent, once no more
        arrived for a moment (bounded); just `message`'s own picture when it is in none."""
        if message.media_group_id is None:
            image = image_of(message)
            return [image] if image is not None else []
        self.add(message)
        album = self._albums[(message.chat.id, message.media_group_id)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while (left := deadline - loop.time()) > 0:
            album.grew.clear()
            try:
                async with asyncio.timeout(min(self._quiet, left)):
                    await album.grew.wait()
            except TimeoutError:
                break  # quiet for a moment: the album is complete
        return [album.photos[number] for number in sorted(album.photos)]

    def captions(self, message: Message) -> list[str]:
        """The captions of the photos `photos(message)` gave, in the same order ("" for none)."""
        if message.media_group_id is None:
            return [message.caption or ""]
        album = self._albums.get((message.chat.id, message.media_group_id)) or _Album()
        return [album.captions.get(number, "") for number in sorted(album.photos)]


class AlbumParts(BaseMiddleware):
    """An outer message middleware: every album photo is noted before any handler
    runs, also the ones without a command (which no handler takes)."""

    def __init__(self, albums: Albums) -> None:
        self._albums = albums

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Message):
            self._albums.add(event)
        return await handler(event, data)
