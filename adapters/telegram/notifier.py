"""The core's Notifier port on Telegram: progress edited in place, videos with their buttons.

How often progress may be shown is the core's business (bot/progress.py); this
notifier only states Telegram's per-chat limits (`chat_budget`) and makes each
request when asked.
Errors are sorted by what a retry can change. A 429 is waited out (a bounded number
of times) and the request repeated, never dropped. A blocked bot, a deleted chat or a
refused request raise `DeliveryFailed(retry=False)`: the core records the job as
delivered and logs it. Network trouble and Telegram's 5xx raise
`DeliveryFailed(retry=True)`: the core tries again later. A group that became a
supergroup raises `DeliveryFailed(moved_to=<new chat id>)`: the core follows it.
An outcome is posted by `deliver`/`failed` alone; the edit of the progress message to its
final words waits for `finish`, after the core recorded the job delivered, so a crash in
that (paced) edit cannot have the video posted again. Telegram takes no idempotency key:
a crash while it is answering the upload itself can still post a video twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
from aiogram.types import FSInputFile, InlineKeyboardMarkup, Message

from adapters.telegram.activity import Activity
from adapters.telegram.keyboards import cancel_keyboard, result_keyboard
from adapters.telegram.places import reply_kwargs
from adapters.telegram.texts import (
    CANCELLED_MARK,
    CAPTION_LIMIT,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_NOT_POSTED,
    TEXT_LIMIT,
    video_link_text,
)
from bot.domain import ChatRef, Job, JobState, MediaType
from bot.ports import ChatBudget, DeliveryFailed, Posted, Progress, VideoDelivery
from bot.texts import progress_text

log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_MODIFIED = "message is not modified"
# The progress message is gone (deleted by someone) or can no longer be edited.
_GONE = ("message to edit not found", "message can't be edited")


@dataclass(frozen=True, slots=True)
class Pacing:
    """Telegram's per-chat limits as the core should pace progress to them, and how 429s
    are waited out; tests shorten them."""

    # About one message a second in a chat (an edit counts).
    private_chat: ChatBudget = field(default_factory=lambda: ChatBudget(min_gap=1.0))
    # A group allows twenty a minute for everything the bot posts there: progress gets
    # fifteen of them, spread out, and leaves the rest to results and command answers.
    group_chat: ChatBudget = field(default_factory=lambda: ChatBudget(min_gap=3.0, per_window=15, window=60.0))
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
        self._activity = Activity()

    def upload_limit(self, job: Job) -> int:
        return self._upload_limit

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return self._pacing.private_chat if chat.is_private else self._pacing.group_chat

    def budget_scope(self, job: Job) -> str:
        return job.chat.chat_id  # every message in a chat (its topics too) counts against its limit

    async def progress(self, job: Job, progress: Progress) -> str | None:
        if self._activity.stopping.is_set():
            return job.status_message_id
        text = progress_text(job, progress)
        with self._active():
            try:
                if job.status_message_id is not None and await self._edit_status(job, job.status_message_id, text):
                    return job.status_message_id
                return await self._post_status(job, text)
            except DeliveryFailed as exc:
                # Progress is a courtesy: the outcome is delivered (or not) on its own.
                log.warning("progress of job %s not shown: %s", job.id, exc)
                return job.status_message_id

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        with self._active():
            place = reply_kwargs(job.requester)
            keyboard = result_keyboard(job.id, delivery.buttons)
            caption = delivery.caption[:CAPTION_LIMIT]
            message = await self._upload(job, delivery, caption, place, keyboard) if delivery.file is not None else None
            if message is None:
                text = video_link_text(caption, delivery.link)
                message = await self._call(partial(self._bot.send_message, text=text, reply_markup=keyboard, **place))
            return Posted(message_ids=(str(message.message_id),), status=STATUS_DONE)

    async def failed(self, job: Job, reason: str) -> Posted:
        with self._active():
            # A cancel is said by the progress message (its ✖️ button goes with the edit), not
            # by a new message; only when that message cannot be edited is one posted. That edit
            # *is* the outcome, so it is made here, and nothing is left for `finish`.
            if job.outcome is JobState.CANCELLED and await self._finish_status(
                job, f"{CANCELLED_MARK} {reason}"[:TEXT_LIMIT]
            ):
                return Posted(message_ids=(str(job.status_message_id),))
            text = f"❌ {reason}"[:TEXT_LIMIT]
            message = await self._call(partial(self._bot.send_message, text=text, **reply_kwargs(job.requester)))
            # A made video reaches here only when its posting was given up on.
            return Posted(
                message_ids=(str(message.message_id),), status=STATUS_NOT_POSTED if job.has_video else STATUS_FAILED
            )

    async def finish(self, job: Job, posted: Posted) -> None:
        if posted.status is None or self._activity.stopping.is_set():
            return  # stopping: the progress message stays as it was (the outcome is below it)
        with self._active():
            await self._finish_status(job, posted.status)

    async def alert_operator(self, text: str) -> None:
        with self._active():
            for chat_id in self._operators:
                try:
                    await self._call(partial(self._bot.send_message, chat_id=chat_id, text=f"⚠️ {text}"[:TEXT_LIMIT]))
                except DeliveryFailed as exc:
                    log.warning("could not alert operator %s: %s", chat_id, exc)

    async def close(self) -> None:
        """Refuse new work and wait for the requests under way."""
        await self._activity.stop()

    # ------------------------------------------------------------ progress message

    async def _post_status(self, job: Job, text: str) -> str:
        message = await self._call(
            partial(
                self._bot.send_message, text=text, reply_markup=cancel_keyboard(job.id), **reply_kwargs(job.requester)
            )
        )
        return str(message.message_id)

    async def _edit_status(self, job: Job, message_id: str, text: str) -> bool:
        """Edit the progress message, keeping its ✖️ button (a 429 is waited out); False when it is gone."""
        edit = partial(
            self._bot.edit_message_text,
            text=text,
            chat_id=int(job.chat.chat_id),
            message_id=int(message_id),
            reply_markup=cancel_keyboard(job.id),
        )
        try:
            await self._call(edit)
        except DeliveryFailed as exc:
            refusal = exc.__cause__
            if isinstance(refusal, TelegramBadRequest):
                if any(marker in refusal.message for marker in _GONE):
                    return False
                if _NOT_MODIFIED in refusal.message:
                    return True
            raise
        return True

    async def _finish_status(self, job: Job, text: str) -> bool:
        """Mark the progress message final, once the outcome itself is posted (the edit carries
        no keyboard, so its ✖️ Cancel button goes); False when there is none or it could not be edited."""
        if job.status_message_id is None:
            return False
        edit = partial(
            self._bot.edit_message_text, text=text, chat_id=int(job.chat.chat_id), message_id=int(job.status_message_id)
        )
        try:
            await self._call(edit)
        except DeliveryFailed as exc:
            # The outcome stands on its own; a progress message left as it was is only untidy.
            log.info("progress message of job %s left as it was: %s", job.id, exc)
            return False
        return True

    # ------------------------------------------------------------ requests

    async def _upload(
        self,
        job: Job,
        delivery: VideoDelivery,
        caption: str,
        place: dict[str, Any],
        keyboard: InlineKeyboardMarkup | None,
    ) -> Message | None:
        """Send the video file; None when Telegram finds it too large (then a link goes instead)."""
        assert delivery.file is not None
        upload = FSInputFile(delivery.file, filename=f"{job.id}.{delivery.extension}")
        if delivery.media is MediaType.PICTURE:
            send = partial(self._bot.send_photo, photo=upload, caption=caption, reply_markup=keyboard, **place)
        else:
            send = partial(
                self._bot.send_video,
                video=upload,
                caption=caption,
                supports_streaming=True,
                reply_markup=keyboard,
                **place,
            )
        try:
            return await self._call(send)
        except TelegramEntityTooLarge:
            log.info(
                "job %s's video (%s bytes) is too large for Telegram; sending its link", job.id, delivery.size_bytes
            )
            return None

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
