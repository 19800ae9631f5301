"""The core's Notifier port on Telegram: progress edited in place, videos with their buttons.

Errors are sorted by what a retry can change. A 429 is waited out (a bounded number
of times) and the request repeated, never dropped. A blocked bot, a deleted chat or a
refused request raise `DeliveryFailed(retry=False)`: the core records the job as
delivered and logs it. Network trouble and Telegram's 5xx raise
`DeliveryFailed(retry=True)`: the core tries again later. A group that became a
supergroup raises `DeliveryFailed(moved_to=<new chat id>)`: the core follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import FSInputFile, InlineKeyboardMarkup

from adapters.telegram.activity import Activity
from adapters.telegram.keyboards import result_keyboard
from adapters.telegram.pacing import EditPacer
from adapters.telegram.places import reply_kwargs
from adapters.telegram.texts import CAPTION_LIMIT, STATUS_DONE, STATUS_FAILED, TEXT_LIMIT, video_link_text
from bot.domain import Job
from bot.ports import DeliveryFailed, Progress, VideoDelivery
from bot.texts import progress_text

log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_MODIFIED = "message is not modified"
# The progress message is gone (deleted by someone) or can no longer be edited.
_GONE = ("message to edit not found", "message can't be edited")

MessageKey = tuple[int, int]  # (chat id, message id)


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the notifier paces edits and waits out 429s; tests shorten the intervals."""

    # Seconds between edits of one progress message: private chats allow about one message
    # a second, groups twenty a minute for everyone together.
    edit_interval_private: float = 3.0
    edit_interval_group: float = 6.0
    retry_attempts: int = 5
    # A longer 429 ban is not waited out inside one delivery: the core retries it later.
    max_retry_wait: float = 120.0


def _delivery_failed(exc: TelegramAPIError) -> DeliveryFailed:
    if isinstance(exc, TelegramMigrateToChat):
        # The group became a supergroup: the chat lives on under the new id, and the
        # core posts there at once (and remembers the new id for the job).
        return DeliveryFailed(
            f"Telegram: the group moved to chat {exc.migrate_to_chat_id}",
            retry=True,
            moved_to=str(exc.migrate_to_chat_id),
        )
    # Blocked, kicked, chat gone or a request Telegram refuses: the same again will fail again.
    permanent = isinstance(exc, TelegramForbiddenError | TelegramBadRequest)
    return DeliveryFailed(f"Telegram: {exc.message}", retry=not permanent)


class TelegramNotifier:
    caption_limit = CAPTION_LIMIT

    def __init__(self, bot: Bot, *, upload_limit: int, pacing: Pacing, operator_chat_ids: Sequence[int] = ()) -> None:
        self._bot = bot
        self._upload_limit = upload_limit
        self._pacing = pacing
        self._operators = tuple(operator_chat_ids)
        self._pacer = EditPacer()
        self._activity = Activity()

    def upload_limit(self, job: Job) -> int:
        return self._upload_limit

    async def progress(self, job: Job, progress: Progress) -> str | None:
        if self._activity.stopping.is_set():
            return job.status_message_id
        text = progress_text(job, progress)
        with self._active():
            try:
                if job.status_message_id is None:
                    return await self._post_status(job, text)
                return await self._edit_status(job, (int(job.chat.chat_id), int(job.status_message_id)), text)
            except DeliveryFailed as exc:
                # Progress is a courtesy: the outcome is delivered (or not) on its own.
                log.warning("progress of job %s not shown: %s", job.id, exc)
                return job.status_message_id

    async def deliver(self, job: Job, delivery: VideoDelivery) -> None:
        with self._active():
            place = reply_kwargs(job.requester)
            keyboard = result_keyboard(job.id, delivery.buttons)
            caption = delivery.caption[:CAPTION_LIMIT]
            uploaded = delivery.file is not None and await self._upload(job, delivery, caption, place, keyboard)
            if not uploaded:
                text = video_link_text(caption, delivery.link)
                await self._call(partial(self._bot.send_message, text=text, reply_markup=keyboard, **place))
            await self._finish_status(job, STATUS_DONE)

    async def failed(self, job: Job, reason: str) -> None:
        with self._active():
            text = f"❌ {reason}"[:TEXT_LIMIT]
            await self._call(partial(self._bot.send_message, text=text, **reply_kwargs(job.requester)))
            await self._finish_status(job, STATUS_FAILED)

    async def alert_operator(self, text: str) -> None:
        with self._active():
            for chat_id in self._operators:
                try:
                    await self._call(partial(self._bot.send_message, chat_id=chat_id, text=f"⚠️ {text}"[:TEXT_LIMIT]))
                except DeliveryFailed as exc:
                    log.warning("could not alert operator %s: %s", chat_id, exc)

    async def close(self) -> None:
        """Refuse new work, wait for the requests under way, then drop deferred edits."""
        await self._activity.stop()
        await self._pacer.close()

    # ------------------------------------------------------------ progress message

    def _edit_interval(self, job: Job) -> float:
        pacing = self._pacing
        return pacing.edit_interval_private if job.chat.is_private else pacing.edit_interval_group

    async def _post_status(self, job: Job, text: str) -> str:
        message = await self._call(partial(self._bot.send_message, text=text, **reply_kwargs(job.requester)))
        self._pacer.hold((message.chat.id, message.message_id), self._edit_interval(job))
        return str(message.message_id)

    async def _edit_status(self, job: Job, key: MessageKey, text: str) -> str:
        """Edit now if pacing allows, else later; a message that is gone is replaced by a new one."""
        if not self._pacer.ready(key):
            self._pacer.defer(key, partial(self._edit_now, job, key, text))
            return str(key[1])
        if await self._edit_now(job, key, text):
            return str(key[1])
        self._pacer.forget(key)
        return await self._post_status(job, text)

    async def _edit_now(self, job: Job, key: MessageKey, text: str) -> bool:
        """Edit the progress message; False when it is gone. A 429 defers the edit instead of waiting."""
        try:
            await self._bot.edit_message_text(text=text, chat_id=key[0], message_id=key[1])
        except TelegramRetryAfter as exc:
            self._pacer.hold(key, exc.retry_after)
            self._pacer.defer(key, partial(self._edit_now, job, key, text))
        except TelegramBadRequest as exc:
            if any(marker in exc.message for marker in _GONE):
                return False
            if _NOT_MODIFIED not in exc.message:
                log.warning("progress message of job %s not edited: %s", job.id, exc.message)
        except TelegramAPIError as exc:
            log.warning("progress message of job %s not edited: %s", job.id, exc.message)
        self._pacer.hold(key, self._edit_interval(job))
        return True

    async def _finish_status(self, job: Job, text: str) -> None:
        """Mark the progress message final, once the outcome itself is posted."""
        if job.status_message_id is None:
            return
        key = (int(job.chat.chat_id), int(job.status_message_id))
        self._pacer.forget(key)
        try:
            await self._call(partial(self._bot.edit_message_text, text=text, chat_id=key[0], message_id=key[1]))
        except DeliveryFailed as exc:
            # Failing here would make the core post the outcome a second time.
            log.info("progress message of job %s left as it was: %s", job.id, exc)

    # ------------------------------------------------------------ requests

    async def _upload(
        self,
        job: Job,
        delivery: VideoDelivery,
        caption: str,
        place: dict[str, Any],
        keyboard: InlineKeyboardMarkup | None,
    ) -> bool:
        """Send the video file; False when Telegram finds it too large (then a link goes instead)."""
        assert delivery.file is not None
        send = partial(
            self._bot.send_video,
            video=FSInputFile(delivery.file, filename=f"{job.id}.mp4"),
            caption=caption,
            supports_streaming=True,
            reply_markup=keyboard,
            **place,
        )
        try:
            await self._call(send)
        except TelegramEntityTooLarge:
            log.info(
                "job %s's video (%s bytes) is too large for Telegram; sending its link", job.id, delivery.size_bytes
            )
            return False
        return True

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Make a request, waiting out 429s; other Telegram errors become DeliveryFailed (413 passes)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await request()
            except TelegramEntityTooLarge:
                raise
            except TelegramRetryAfter as exc:
                if attempt >= self._pacing.retry_attempts or exc.retry_after > self._pacing.max_retry_wait:
                    raise DeliveryFailed(f"Telegram asks to wait {exc.retry_after} s", retry=True) from exc
                log.info("Telegram asks to wait %s s before %s", exc.retry_after, exc.method.__api_method__)
                await self._pause(exc.retry_after)
            except TelegramAPIError as exc:
                raise _delivery_failed(exc) from exc

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short (as a retryable failure) when the adapter stops."""
        try:
            await asyncio.wait_for(self._activity.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise DeliveryFailed("the Telegram adapter is stopping", retry=True)

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        if self._activity.stopping.is_set():
            raise DeliveryFailed("the Telegram adapter is stopping", retry=True)
        with self._activity.track():
            yield
