"""Who administers a Telegram group: asked of Telegram once per chat, then remembered briefly.

Admin status matters for most of what happens in a group — the moderation exemption
(ADMINS_EXEMPT) on every prompt, the admin commands, presses under someone else's
video — so asking getChatMember for each message would cost a request per message.
Instead one getChatAdministrators answers for the whole chat, and its answer is kept
for `CACHE_SECONDS` in a map of at most `MAX_CHATS` chats (the least recently asked
go first). A promotion or demotion therefore counts within `CACHE_SECONDS`.

When Telegram does not answer (a 429, its 5xx, the network), the list it gave last
still decides, and after a 429 the chat is not asked again before its `retry_after`.
With no list at all `AdminsUnknown` says so: an admin command answers it, and
everything else goes on treating the sender as a member (no exemption).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import CallbackQuery, Message

from bot.errors import BotError

log = logging.getLogger(__name__)

# How long a chat's administrator list is trusted: short enough that a new admin
# soon counts, long enough that a busy group costs a request every few minutes at most.
CACHE_SECONDS = 120.0
MAX_CHATS = 1024


class AdminsUnknown(BotError):
    """Telegram did not say who administers the chat, and no earlier answer is known."""

    def __init__(self) -> None:
        super().__init__(
            "Telegram did not tell me just now who administers this group, so I cannot check"
            " whether you may use this command. Please try again in a minute."
        )


class ChatAdmins:
    """The administrators of each group chat, from getChatAdministrators, cached per chat."""

    def __init__(
        self,
        bot: Bot,
        *,
        ttl: float = CACHE_SECONDS,
        max_chats: int = MAX_CHATS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bot = bot
        self._ttl = ttl
        self._max_chats = max_chats
        self._clock = clock
        # Per chat: until when its list is fresh, and the list (kept past that as a fallback).
        self._known: OrderedDict[int, tuple[float, frozenset[int]]] = OrderedDict()
        # Chats whose last request got a 429: not asked again before this time.
        self._held_off: dict[int, float] = {}
        # One request per chat at a time: a burst of messages waits for the same answer.
        self._asking: dict[int, asyncio.Future[frozenset[int]]] = {}

    async def is_admin(self, event: Message | CallbackQuery) -> bool:
        """Whether the sender of `event` administers the group it happened in (False in private chats)."""
        message = event.message if isinstance(event, CallbackQuery) else event
        if message is None or event.from_user is None or message.chat.type == ChatType.PRIVATE:
            return False
        # An anonymous admin posts as the group itself; only admins can do that.
        if isinstance(event, Message) and event.sender_chat is not None and event.sender_chat.id == event.chat.id:
            return True
        return event.from_user.id in await self.of_chat(message.chat.id)

    async def of_chat(self, chat_id: int) -> frozenset[int]:
        """The user ids administering `chat_id`: remembered, or asked of Telegram.

        A failed request is not remembered; the list Telegram gave last answers instead
        (`AdminsUnknown` when there is none).
        """
        known = self._known.get(chat_id)
        now = self._clock()
        if known is not None:
            self._known.move_to_end(chat_id)
            if now < known[0]:
                return known[1]
        if now < self._held_off.get(chat_id, 0.0):
            return self._fallback(known)
        asking = self._asking.get(chat_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(chat_id))
            self._asking[chat_id] = asking
            asking.add_done_callback(lambda done: self._settled(chat_id, done))
        try:
            # Shielded: one waiter cancelled (its update abandoned) must not cancel the others' answer.
            return await asyncio.shield(asking)
        except TelegramAPIError as exc:
            log.warning("could not ask Telegram who administers chat %s: %s", chat_id, exc.message)
            return self._fallback(self._known.get(chat_id))

    @staticmethod
    def _fallback(known: tuple[float, frozenset[int]] | None) -> frozenset[int]:
        if known is None:
            raise AdminsUnknown()
        return known[1]

    def _settled(self, chat_id: int, done: asyncio.Future[frozenset[int]]) -> None:
        self._asking.pop(chat_id, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have gone, and asyncio would log it as lost

    async def _ask(self, chat_id: int) -> frozenset[int]:
        try:
            members = await self._bot.get_chat_administrators(chat_id)
        except TelegramRetryAfter as exc:
            now = self._clock()
            self._held_off = {chat: until for chat, until in self._held_off.items() if until > now}
            self._held_off[chat_id] = now + exc.retry_after
            raise
        self._held_off.pop(chat_id, None)
        admins = frozenset(member.user.id for member in members)
        self._known[chat_id] = (self._clock() + self._ttl, admins)
        self._known.move_to_end(chat_id)
        while len(self._known) > self._max_chats:
            self._known.popitem(last=False)
        return admins
