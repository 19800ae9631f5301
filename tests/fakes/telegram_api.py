"""A fake Telegram Bot API server, so tests can run the real aiogram `Bot` on loopback.

`FakeTelegram` answers `POST /bot{token}/{method}` (urlencoded, JSON or multipart with
`attach://` parts) and `GET /file/bot{token}/{file_path}` the way Telegram does, for
the methods a chat bot uses. It keeps the chats a user would see (messages edited and
deleted in place), lets a test act as users (send text, photos, documents, press
buttons), injects faults (429 with `retry_after`, 400, 403, 413), enforces a chat's
flood limit when a test sets one (`fake.flood_limit`), records every request with
the time it arrived and checks it against the Bot API spec (`fake.spec_violations`).

    async with FakeTelegram() as fake:
        bot = Bot(fake.token, session=AiohttpSession(api=fake.api_server()))
        ...
        await fake.user_sends_text(chat, user, "/start")
        await fake.wait_for_method("sendMessage")
        assert fake.spec_violations == []

Behaviour a bot meets on the real Telegram and would otherwise only meet in production
is kept on purpose: a photo arrives as several sizes (the first a thumbnail), editing
a message's text without `reply_markup` removes its keyboard, an edit that changes
nothing is refused, HTML markup Telegram does not support is refused, messages in
a forum topic reply to the topic's first message. Markdown parse modes are passed
through unparsed. The fake never reaches the internet: files "sent by URL" are
fetched only from loopback addresses.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import mimetypes
import re
import reprlib
import shutil
import struct
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs, web

from tests import patience

from .telegram_spec import check_request, coerce_params, find_method, missing_required

JSON = dict[str, Any]
T = TypeVar("T")
ChatType = Literal["private", "group", "supergroup", "channel"]
MemberStatus = Literal["creator", "administrator", "member", "left", "kicked"]

DEFAULT_TOKEN = "123456789:AAFakeTelegramTokenUsedOnlyInTests_x"

# Telegram's own wording, for tests that inject or expect these errors.
MESSAGE_TO_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
MESSAGE_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)
BOT_BLOCKED = "Forbidden: bot was blocked by the user"
GROUP_UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"
TOO_LARGE = "Request Entity Too Large"
_STATUS_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BOT_BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    413: TOO_LARGE,
    500: "Internal Server Error",
    502: "Bad Gateway",
}

_MB = 1024 * 1024
# Limits of the cloud Bot API; a local Bot API server (local mode) lifts them.
CLOUD_UPLOAD_LIMIT = 50 * _MB
CLOUD_DOWNLOAD_LIMIT = 20 * _MB
LOCAL_UPLOAD_LIMIT = 2000 * _MB
# Telegram fetches files sent by URL itself, up to these sizes.
_URL_PHOTO_LIMIT = 5 * _MB
_URL_FILE_LIMIT = 20 * _MB
_MAX_TEXT = 4096
_MAX_CAPTION = 1024
_THUMBNAIL_SIDE = 90
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FILE_ID_PREFIXES = {
    "photos": "AgAC",
    "videos": "BAAC",
    "documents": "BQAC",
    "animations": "CgAC",
    "voice": "AwAC",
    "music": "CQAC",
}
_MEDIA_KEYS = ("photo", "video", "document", "animation", "audio", "voice")
# Telegram marks a /command at the start of the text or after whitespace.
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
# aiogram 3.31 requires can_send_welcome_messages (Bot API 10.3), newer than the spec.
_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
    "can_send_welcome_messages",
)
_GIFT_TYPES = (
    "unlimited_gifts",
    "limited_gifts",
    "unique_gifts",
    "premium_subscription",
    "gifts_from_channels",
)


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user a test acts as."""

    id: int
    first_name: str = "Test"
    username: str | None = None
    language_code: str | None = "en"

    def to_api(self) -> JSON:
        """Return the user as a Bot API `User` object."""
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user


@dataclass(frozen=True)
class FakeChat:
    """A chat: private (id = the user's id), group or supergroup (negative ids), forum."""

    id: int
    type: ChatType = "private"
    title: str | None = None
    is_forum: bool = False
    username: str | None = None
    first_name: str | None = None

    def __post_init__(self) -> None:
        # Catch unrealistic chats early: bots branch on these facts.
        if self.is_forum and self.type != "supergroup":
            raise ValueError("only a supergroup can be a forum")
        if (self.type == "private") != (self.id > 0):
            raise ValueError("private chats have positive ids, group chats negative ones")

    @classmethod
    def private(cls, user: FakeUser) -> FakeChat:
        """Return the private chat between `user` and the bot."""
        return cls(id=user.id, first_name=user.first_name, username=user.username)

    def to_api(self) -> JSON:
        """Return the chat as a Bot API `Chat` object."""
        chat: JSON = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.first_name or "Test"
        else:
            chat["title"] = self.title or f"Test {self.type} {self.id}"
        if self.username:
            chat["username"] = self.username
        if self.is_forum:
            chat["is_forum"] = True
        return chat


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes

    def describe(self) -> JSON:
        """Return how the file appears in recorded params (see `telegram_spec.UPLOAD_KEYS`)."""
        return {
            "filename": self.filename,
            "size": len(self.data),
            "content_type": self.content_type,
        }


@dataclass(frozen=True)
class StoredFile:
    """A file Telegram keeps: what users sent, what the bot uploaded."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None
    mime_type: str | None

    def to_api(self) -> JSON:
        """Return the identity fields every Bot API file object has."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made, as Telegram understood it, and the answer it got."""

    method: str
    """The spec's spelling (`sendVideo`) when the method exists, else as requested."""
    params: JSON
    """Typed values; each uploaded file as {"filename", "size", "content_type"}."""
    files: dict[str, UploadedFile]
    """Uploaded files by the parameter they fill ("video", "media[0].media")."""
    status: int
    response: JSON
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (time.monotonic)."""

    @property
    def chat_id(self) -> int | None:
        """The chat the request addresses, when it names one by id."""
        return _as_int(self.params.get("chat_id"))

    @property
    def ok(self) -> bool:
        """Whether Telegram accepted the request."""
        return self.status == HTTPStatus.OK

    @property
    def result(self) -> Any:
        """The `result` of a successful answer."""
        return self.response.get("result")

    def summary(self) -> str:
        """Return a one-line description for failure reports."""
        args = ", ".join(f"{name}={reprlib.repr(value)}" for name, value in self.params.items())
        outcome = "ok" if self.ok else f"{self.status} {self.response.get('description')}"
        return f"{self.method}({args}) -> {outcome}"


@dataclass(frozen=True)
class WebhookConfig:
    """What the bot passed to setWebhook."""

    url: str
    secret_token: str | None
    max_connections: int


@dataclass(frozen=True)
class FloodLimit:
    """Telegram's flood control for one chat: at most one message every `min_gap` seconds and
    at most `per_window` in any `window` seconds; an edit counts as a message."""

    min_gap: float
    per_window: int
    window: float


# What flood control counts: messages sent or edited in a chat.
_FLOOD_COUNTED = ("send", "edit")


@dataclass
class _Fault:
    error: _ApiError
    remaining: int
    matching: Callable[[JSON], bool] | None = None  # only calls whose params it accepts (None: all)


@dataclass
class _ChatState:
    chat: FakeChat
    messages: dict[int, JSON] = field(default_factory=dict)
    last_message_id: int = 0
    members: dict[int, MemberStatus] = field(default_factory=dict)
    topics: dict[int, JSON] = field(default_factory=dict)
    """Forum topics: thread id -> the service message that created the topic."""
    bot_blocked: bool = False
    migrated_to: int | None = None
    """The supergroup this group became; requests to the group then answer 400."""


class _ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = int(status)
        self.description = description
        self.parameters = parameters

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


_Handler = Callable[[JSON, dict[str, UploadedFile]], Awaitable[Any]]


class FakeTelegram:
    """The Bot API for one bot, served on 127.0.0.1 at a free port.

    Use as `async with FakeTelegram(...) as fake:`. Attributes tests read:
    `calls` (every request, in order), `spec_violations` (problems found by the spec
    checker, plus internal errors of the fake), `updates` (every update users caused),
    `webhook` (the last setWebhook), `callback_answers` (answerCallbackQuery params by
    query id), `downloads` (file paths fetched over HTTP). Tests may set
    `upload_limit` / `download_limit` (bytes) and `flood_limit` (None: no flood control)
    at any time.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "PixTestBot",
        first_name: str = "PixVerse Test Bot",
        local_mode: bool = False,
        upload_limit: int | None = None,
        download_limit: int | None = None,
        long_poll_cap: float = 1.0,
    ) -> None:
        """Configure the bot's identity and limits.

        `local_mode` acts as a self-hosted Bot API server: getFile answers an absolute
        path on this machine (aiogram then reads the file from disk) and the cloud's
        upload/download limits are lifted. `long_poll_cap` bounds how long getUpdates
        waits, whatever timeout the bot asks for (new updates answer at once anyway).
        """
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.local_mode = local_mode
        if upload_limit is None:
            upload_limit = LOCAL_UPLOAD_LIMIT if local_mode else CLOUD_UPLOAD_LIMIT
        if download_limit is None and not local_mode:
            download_limit = CLOUD_DOWNLOAD_LIMIT
        self.upload_limit: int = upload_limit
        self.download_limit: int | None = download_limit
        """None: no limit (local mode)."""
        self.long_poll_cap = long_poll_cap
        self.flood_limit: FloodLimit | None = None
        self._chat_sends: defaultdict[int, deque[float]] = defaultdict(deque)

        self.calls: list[ApiCall] = []
        self.spec_violations: list[str] = []
        self.updates: list[JSON] = []
        self.webhook: WebhookConfig | None = None
        self.callback_answers: dict[str, JSON] = {}
        self.downloads: list[str] = []

        self._chats: dict[int, _ChatState] = {}
        self._users: dict[int, JSON] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._pending: list[JSON] = []
        self._allowed_updates: frozenset[str] | None = None
        self._open_queries: set[str] = set()
        self._commands: dict[str, list[JSON]] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._webhook_error: tuple[int, str] | None = None
        self._poll_generation = 0
        self._waiting_polls = 0
        self._closing = False
        self._changed = asyncio.Condition()
        self._update_ids = itertools.count(1)
        self._file_numbers = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base_url: str | None = None
        self._file_dir: Path | None = None
        # Keyed by lowercased method name ("_api_send_video" -> "sendvideo"): Telegram
        # matches method names case-insensitively.
        self._handlers: dict[str, _Handler] = {
            handler.__name__.removeprefix("_api_").replace("_", ""): handler
            for handler in (
                self._api_get_me,
                self._api_get_updates,
                self._api_set_webhook,
                self._api_delete_webhook,
                self._api_get_webhook_info,
                self._api_set_my_commands,
                self._api_get_my_commands,
                self._api_send_message,
                self._api_send_photo,
                self._api_send_video,
                self._api_send_animation,
                self._api_send_document,
                self._api_send_audio,
                self._api_send_media_group,
                self._api_send_chat_action,
                self._api_edit_message_text,
                self._api_edit_message_caption,
                self._api_edit_message_reply_markup,
                self._api_delete_message,
                self._api_answer_callback_query,
                self._api_get_file,
                self._api_get_chat_member,
                self._api_get_chat_administrators,
                self._api_get_chat,
            )
        }

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # handler_cancellation ends a getUpdates long poll when the bot hangs up
        # (aiogram's stop_polling cancels it) instead of holding the server open.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession()
        if self.local_mode:
            self._file_dir = Path(tempfile.mkdtemp(prefix="fake-telegram-"))

    async def close(self) -> None:
        """Answer pending long polls, stop the server and remove local-mode files."""
        self._closing = True
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._file_dir is not None:
            shutil.rmtree(self._file_dir, ignore_errors=True)

    @property
    def base_url(self) -> str:
        """The server's root URL, e.g. http://127.0.0.1:41234."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started; use `async with FakeTelegram()`")
        return self._base_url

    def api_server(self) -> TelegramAPIServer:
        """Return the aiogram server config that points a `Bot` session at this fake."""
        return TelegramAPIServer.from_base(self.base_url, is_local=self.local_mode)

    # -- simulated users -------------------------------------------------------------

    async def user_sends_text(
        self,
        chat: FakeChat,
        user: FakeUser,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """Deliver a text message from `user`; /commands get `bot_command` entities.

        Returns the `Message`; its `Update` is `fake.updates[-1]`.
        """
        content = {"text": text, **_command_entities("entities", text)}
        return await self._user_posts(chat, user, content, thread_id, reply_to)

    async def user_sends_photo(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        caption: str | None = None,
        *,
        thread_id: int | None = None,
        reply_to: JSON | int | None = None,
        media_group_id: str | None = None,
    ) -> JSON:
        """Deliver a compressed photo: `photo` lists a thumbnail, then the full image.

        The full size serves `data` through getFile; its width and height are read
        from PNG, JPEG or GIF headers (0 when unknown). Photos of one album share a
        `media_group_id` and arrive as separate messages, as Telegram sends them.
        """
        stored = self.register_file(data, folder="photos", mime_type=_image_mime(data))
        content = {"photo": self._photo_sizes(stored), **_caption_content(caption)}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return await self._user_posts(chat, user, content, thread_id, reply_to)

    async def user_sends_document(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        file_name: str = "image.png",
        mime_type: str | None = None,
        caption: str | None = None,
        thread_id: int | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """Deliver a file sent uncompressed ("as a file"), e.g. an image kept as PNG."""
        stored = self.register_file(data, folder="documents", file_name=file_name, mime_type=mime_type)
        content = {"document": _document(stored), **_caption_content(caption)}
        return await self._user_posts(chat, user, content, thread_id, reply_to)

    async def user_sends_video(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        mime_type: str = "video/mp4",
        file_name: str = "clip.mp4",
        caption: str | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """Deliver a video as Telegram does (`video`: its size, shape, length and MIME type)."""
        stored = self.register_file(data, folder="videos", file_name=file_name, mime_type=mime_type)
        video = {**_document(stored), "width": 160, "height": 90, "duration": 2}
        return await self._user_posts(chat, user, {"video": video, **_caption_content(caption)}, None, reply_to)

    async def user_sends_animation(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        mime_type: str = "video/mp4",
        file_name: str = "animation.gif.mp4",
        caption: str | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """Deliver a GIF as Telegram does: an `animation`, with `document` set to the same file.

        Telegram usually converts GIFs to soundless MP4 (`video/mp4`, the default); pass
        `mime_type="image/gif"` for one that stayed a GIF.
        """
        stored = self.register_file(data, folder="animations", file_name=file_name, mime_type=mime_type)
        width, height = _image_size(data)
        animation = {**_document(stored), "width": width, "height": height, "duration": 1}
        content = {"animation": animation, "document": _document(stored), **_caption_content(caption)}
        return await self._user_posts(chat, user, content, None, reply_to)

    async def user_sends_voice(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        duration: int,
        caption: str | None = None,
        reply_to: JSON | int | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """Deliver a voice note (OGG/Opus, as Telegram records them); `file_size` overrides
        the size Telegram reports (to stand for a file too big to fetch)."""
        stored = self.register_file(data, folder="voice", file_name="voice.oga", mime_type="audio/ogg")
        voice = {**stored.to_api(), "duration": duration, "mime_type": "audio/ogg"}
        if file_size is not None:
            voice["file_size"] = file_size
        return await self._user_posts(chat, user, {"voice": voice, **_caption_content(caption)}, None, reply_to)

    async def user_sends_audio(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        duration: int,
        file_name: str = "song.mp3",
        mime_type: str = "audio/mpeg",
        caption: str | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """Deliver a music file (`audio`), e.g. an MP3 sent from the phone's files."""
        stored = self.register_file(data, folder="music", file_name=file_name, mime_type=mime_type)
        audio = {**_document(stored), "duration": duration}
        return await self._user_posts(chat, user, {"audio": audio, **_caption_content(caption)}, None, reply_to)

    async def user_presses_button(
        self, chat: FakeChat, user: FakeUser, message: JSON | int, callback_data: str
    ) -> JSON:
        """Deliver a `callback_query` for a button the message shows now.

        Fails the test if the message is gone or has no such button, since a user
        could not press it. Returns the `CallbackQuery`.
        """
        live = self._live_message(chat, message)
        buttons = [
            button.get("callback_data")
            for row in live.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        ]
        if callback_data not in buttons:
            raise AssertionError(
                f"message {live['message_id']} in chat {chat.id} has no button with "
                f"callback_data {callback_data!r}; its buttons: {buttons!r}"
            )
        self._users[user.id] = user.to_api()
        query_id = str(next(self._query_ids))
        self._open_queries.add(query_id)
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": copy.deepcopy(live),
            "chat_instance": f"instance{chat.id}",
            "data": callback_data,
        }
        await self._deliver("callback_query", query)
        return copy.deepcopy(query)

    async def create_forum_topic(self, chat: FakeChat, creator: FakeUser, name: str) -> int:
        """Open a topic in a forum supergroup and return its `message_thread_id`.

        Messages in it then reply to the topic's service message, as on Telegram.
        """
        if not chat.is_forum:
            raise AssertionError(f"chat {chat.id} is not a forum")
        state = self._register(chat, creator)
        message = self._new_message(
            state,
            creator.to_api(),
            {"forum_topic_created": {"name": name, "icon_color": 0x6FB9F0}},
            thread_id=None,
            reply_to=None,
        )
        # A topic's thread id is the id of the service message that opened it.
        thread_id: int = message["message_id"]
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        state.topics[thread_id] = message
        await self._deliver("message", copy.deepcopy(message))
        return thread_id

    async def group_becomes_supergroup(self, chat: FakeChat, admin: FakeUser) -> FakeChat:
        """Upgrade a basic group to a supergroup, as Telegram does when an admin asks (or it grows).

        The supergroup has a new id and the same members; each chat gets its service
        message (`migrate_to_chat_id` / `migrate_from_chat_id`). Every later request
        naming the old group answers 400 with `parameters.migrate_to_chat_id`.
        """
        if chat.type != "group":
            raise AssertionError(f"chat {chat.id} is a {chat.type}, only a basic group is upgraded")
        group = self._register(chat, admin)
        # Supergroup ids look like -100xxxxxxxxxx.
        supergroup = FakeChat(id=-(10**12) + chat.id, type="supergroup", title=chat.title)
        moved = self._register(supergroup, admin)
        moved.members.update(group.members)
        group.migrated_to = supergroup.id
        for state, content in (
            (group, {"migrate_to_chat_id": supergroup.id}),
            (moved, {"migrate_from_chat_id": chat.id}),
        ):
            message = self._new_message(state, admin.to_api(), content, thread_id=None, reply_to=None)
            await self._deliver("message", copy.deepcopy(message))
        return supergroup

    def user_blocks_bot(self, user: FakeUser) -> None:
        """Make every later request to the user's private chat answer 403."""
        self._register(FakeChat.private(user), user).bot_blocked = True

    def set_chat_member(self, chat: FakeChat, user: FakeUser, status: MemberStatus) -> None:
        """Set what getChatMember answers for `user` in `chat` (default "member"); creators and
        administrators are also who getChatAdministrators lists."""
        self._register(chat, user).members[user.id] = status

    def register_file(
        self,
        data: bytes,
        *,
        folder: str = "documents",
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        """Store a file the bot can fetch with getFile and send again by its file_id."""
        number = next(self._file_numbers)
        mime_type = mime_type or (mimetypes.guess_type(file_name)[0] if file_name else None)
        extension = Path(file_name).suffix if file_name else ""
        extension = extension or mimetypes.guess_extension(mime_type or "") or ""
        file_path = f"{folder}/file_{number}{extension}"
        if self._file_dir is not None:
            # Local mode: getFile answers a path on disk, which aiogram reads directly.
            local = self._file_dir / file_path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            file_path = str(local)
        stored = StoredFile(
            file_id=f"{_FILE_ID_PREFIXES.get(folder, 'BQAC')}{number:08d}",
            file_unique_id=f"AQAD{number:08d}",
            file_path=file_path,
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[file_path] = stored
        return stored

    # -- what users see ----------------------------------------------------------------

    def transcript(self, chat: FakeChat | int, *, thread_id: int | None = None) -> list[JSON]:
        """Return the chat's messages as they stand now (edits applied, deletions gone).

        With `thread_id`, only that forum topic's messages.
        """
        chat_id = chat if isinstance(chat, int) else chat.id
        state = self._chats.get(chat_id)
        messages = state.messages.values() if state else []
        return [
            copy.deepcopy(message)
            for message in messages
            if thread_id is None or message.get("message_thread_id") == thread_id
        ]

    def bot_messages(self, chat: FakeChat | int, *, thread_id: int | None = None) -> list[JSON]:
        """Return the bot's messages in the chat as they stand now."""
        return [
            message for message in self.transcript(chat, thread_id=thread_id) if message["from"]["id"] == self.bot_id
        ]

    @property
    def waiting_polls(self) -> int:
        """How many getUpdates requests are waiting for an update right now."""
        return self._waiting_polls

    def file(self, file_id: str) -> StoredFile:
        """Return a stored file, e.g. the bytes of a video the bot uploaded."""
        return self._files[file_id]

    # -- recording and waiting ---------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        """Return the recorded calls of a method (case-insensitive)."""
        return [call for call in self.calls if call.method.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0, *, what: str | None = None) -> T:
        """Wait until `predicate()` is truthy and return its value.

        It is evaluated now and after every request or update. On timeout, fails the
        test with the recent calls, so the report shows what the bot did instead.
        """
        timeout = patience.deadline(timeout)
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    # Condition.wait_for returns only once the predicate's value is truthy.
                    return cast(T, await self._changed.wait_for(predicate))
            except TimeoutError:
                raise AssertionError(self._timeout_report(what or repr(predicate), timeout)) from None

    async def wait_for_method(self, method: str, count: int = 1, timeout: float = 5.0) -> list[ApiCall]:
        """Wait until the bot has called `method` `count` times; return all its calls."""

        def enough() -> list[ApiCall] | None:
            calls = self.calls_to(method)
            return calls if len(calls) >= count else None

        return await self.wait_for(enough, timeout, what=f"{count} call(s) of {method}")

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        description: str | None = None,
        times: int = 1,
        matching: Callable[[JSON], bool] | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail without effect (with `matching`: the next
        `times` calls whose params it accepts; other calls of `method` pass as usual).

        429 answers "Too Many Requests: retry after N" with `parameters.retry_after`;
        other statuses answer `description` or Telegram's usual text for the status
        (e.g. pass `MESSAGE_NOT_MODIFIED` for a 400).
        """
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            error = _ApiError(
                status,
                description or f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        else:
            error = _ApiError(status, description or _STATUS_DESCRIPTIONS.get(status, "Error"))
        self._faults[method.lower()].append(_Fault(error, times, matching))

    async def post_update_to(self, url: str, update: JSON, *, secret_token: str | None = None) -> int:
        """POST an update to a webhook as Telegram does; return the HTTP status.

        A method the bot answers in the response body (aiogram's webhook reply) is
        executed and recorded like any request.
        """
        assert self._session is not None, "FakeTelegram is not started"
        headers = {} if secret_token is None else {"X-Telegram-Bot-Api-Secret-Token": secret_token}
        async with self._session.post(url, json=update, headers=headers) as response:
            if response.status == HTTPStatus.OK:
                params, parts = await _read_body(response.headers, response.content)
                if method := params.pop("method", None):
                    await self._execute(str(method), params, parts)
            return response.status

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            error = _ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized")
            return web.json_response(error.body(), status=error.status)
        try:
            params, parts = await _read_body(request.headers, request.content)
        except _ApiError as error:
            return web.json_response(error.body(), status=error.status)
        status, body = await self._execute(request.match_info["method"], {**request.query, **params}, parts)
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self.token or stored is None:
            error = _ApiError(HTTPStatus.NOT_FOUND, "Not Found")
            return web.json_response(error.body(), status=error.status)
        self.downloads.append(stored.file_path)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    async def _execute(self, name: str, raw_params: JSON, parts: dict[str, UploadedFile]) -> tuple[int, JSON]:
        entry = find_method(name)
        method = entry["name"] if entry else name
        params, files = _attach_uploads(coerce_params(method, raw_params), parts)
        self.spec_violations += check_request(method, params)
        try:
            result = await self._dispatch(entry is not None, method, params, files)
            status, body = int(HTTPStatus.OK), {"ok": True, "result": result}
        except _ApiError as error:
            status, body = error.status, error.body()
        except Exception as error:  # noqa: BLE001 - a bug in the fake must fail the test, not hang it
            problem = f"{method}: FakeTelegram internal error: {error!r}"
            self.spec_violations.append(problem)
            status, body = 500, _ApiError(500, f"Internal Server Error: {problem}").body()
        self.calls.append(ApiCall(method, params, files, status, body))
        await self._notify()
        return status, body

    async def _dispatch(self, known: bool, method: str, params: JSON, files: dict[str, UploadedFile]) -> Any:
        if not known:
            raise _ApiError(HTTPStatus.NOT_FOUND, "Not Found: method not found")
        faults = self._faults.get(method.lower(), ())
        fault = next((f for f in faults if f.matching is None or f.matching(params)), None)
        if fault is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults[method.lower()].remove(fault)
            raise fault.error
        self._flood_control(method, params)
        if sum(len(upload.data) for upload in files.values()) > self.upload_limit:
            raise _ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LARGE)
        if missing := missing_required(method, params):
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"Bad Request: {missing[0]} is empty")
        handler = self._handlers.get(method.lower())
        if handler is None:
            raise _ApiError(
                HTTPStatus.NOT_IMPLEMENTED,
                f"Not Implemented: FakeTelegram does not emulate {method}",
            )
        return await handler(params, files)

    def _flood_control(self, method: str, params: JSON) -> None:
        """Refuse a message to a chat that has had its share (429 with the wait), as Telegram does."""
        chat_id = _as_int(params.get("chat_id"))
        limit = self.flood_limit
        if limit is None or chat_id is None or not method.startswith(_FLOOD_COUNTED) or method == "sendChatAction":
            return
        now = time.monotonic()
        sends = self._chat_sends[chat_id]
        while sends and now - sends[0] >= limit.window:
            sends.popleft()
        wait = sends[-1] + limit.min_gap - now if sends else 0.0
        if len(sends) >= limit.per_window:
            wait = max(wait, sends[0] + limit.window - now)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise _ApiError(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        sends.append(now)

    # -- updates -------------------------------------------------------------------------

    async def _deliver(self, kind: str, payload: JSON) -> None:
        update = {"update_id": next(self._update_ids), kind: payload}
        self.updates.append(update)
        # Telegram drops update types the bot did not ask for (allowed_updates).
        if self._allowed_updates is None or kind in self._allowed_updates:
            if self.webhook is None:
                self._pending.append(update)
            else:
                await self._push_to_webhook(self.webhook, update)
        await self._notify()

    async def _push_to_webhook(self, webhook: WebhookConfig, update: JSON) -> None:
        # Telegram keeps the last delivery error for getWebhookInfo instead of raising.
        try:
            status = await self.post_update_to(webhook.url, update, secret_token=webhook.secret_token)
        except aiohttp.ClientError as error:
            self._webhook_error = (_now(), f"Connection failed: {error}")
            return
        if status != HTTPStatus.OK:
            self._webhook_error = (_now(), f"Wrong response from the webhook: {status}")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _timeout_report(self, what: str, timeout: float) -> str:
        recent = [call for call in self.calls if call.method != "getUpdates"][-15:]
        lines = [f"FakeTelegram: no {what} within {timeout}s. Recent calls, oldest first:"]
        lines += [f"  {call.summary()}" for call in recent] or ["  (none)"]
        lines.append(
            f"getUpdates calls: {len(self.calls_to('getUpdates'))}, "
            f"updates waiting for them: {len(self._pending)}, "
            f"allowed_updates: {sorted(self._allowed_updates or ['(all)'])}, "
            f"webhook: {self.webhook.url if self.webhook else None}"
        )
        return "\n".join(lines)

    # -- chats and messages ----------------------------------------------------------

    def _register(self, chat: FakeChat, user: FakeUser) -> _ChatState:
        state = self._chats.setdefault(chat.id, _ChatState(chat))
        state.members.setdefault(user.id, "member")
        self._users[user.id] = user.to_api()
        return state

    def _live_message(self, chat: FakeChat, message: JSON | int) -> JSON:
        message_id = message if isinstance(message, int) else message["message_id"]
        state = self._chats.get(chat.id)
        live = state.messages.get(message_id) if state else None
        if live is None:
            raise AssertionError(f"chat {chat.id} has no message {message_id} (deleted?)")
        return live

    async def _user_posts(
        self,
        chat: FakeChat,
        user: FakeUser,
        content: JSON,
        thread_id: int | None,
        reply_to: JSON | int | None,
    ) -> JSON:
        state = self._register(chat, user)
        replied = None if reply_to is None else self._live_message(chat, reply_to)
        message = self._new_message(state, user.to_api(), content, thread_id=thread_id, reply_to=replied)
        await self._deliver("message", copy.deepcopy(message))
        return copy.deepcopy(message)

    def _new_message(
        self,
        state: _ChatState,
        sender: JSON,
        content: JSON,
        *,
        thread_id: int | None,
        reply_to: JSON | None,
    ) -> JSON:
        state.last_message_id += 1
        message: JSON = {
            "message_id": state.last_message_id,
            "from": sender,
            "date": _now(),
            "chat": state.chat.to_api(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if state.chat.is_forum:
                message["is_topic_message"] = True
            # In a forum topic every message not replying to another replies to the
            # topic's first message: a classic trap for bots reading reply_to_message.
            reply_to = reply_to or state.topics.get(thread_id)
        if reply_to is not None:
            # Telegram nests one level: the replied-to message carries no reply itself.
            message["reply_to_message"] = {key: value for key, value in reply_to.items() if key != "reply_to_message"}
        message.update(content)
        state.messages[message["message_id"]] = message
        return message

    def _chat(self, chat_id: Any) -> _ChatState:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            found = [s for s in self._chats.values() if s.chat.username == chat_id[1:]]
            state = found[0] if found else None
        else:
            state = self._chats.get(chat_id)
        if state is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: chat not found")
        if state.migrated_to is not None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, GROUP_UPGRADED, {"migrate_to_chat_id": state.migrated_to})
        return state

    def _writable_chat(self, chat_id: Any) -> _ChatState:
        state = self._chat(chat_id)
        if state.bot_blocked:
            raise _ApiError(HTTPStatus.FORBIDDEN, BOT_BLOCKED)
        return state

    def _post_bot_message(self, params: JSON, content: JSON) -> JSON:
        state = self._writable_chat(params["chat_id"])
        reply = params.get("reply_parameters") or {}
        # reply_to_message_id is gone from the docs but Telegram still honours it.
        reply_id = _as_int(reply.get("message_id", params.get("reply_to_message_id")))
        replied = None
        if reply_id is not None:
            replied = state.messages.get(reply_id)
            if replied is None and not reply.get("allow_sending_without_reply"):
                raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message to be replied not found")
        message = self._new_message(
            state,
            self.bot_user,
            {**content, **_inline_markup(params)},
            thread_id=params.get("message_thread_id"),
            reply_to=replied,
        )
        return copy.deepcopy(message)

    def _message_to_edit(self, params: JSON) -> JSON:
        if "inline_message_id" in params:
            raise _ApiError(HTTPStatus.NOT_IMPLEMENTED, "Not Implemented: FakeTelegram has no inline messages")
        if "message_id" not in params:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message identifier is not specified")
        message = self._chat(params.get("chat_id")).messages.get(params["message_id"])
        if message is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, MESSAGE_TO_EDIT_NOT_FOUND)
        if message["from"]["id"] != self.bot_id:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message can't be edited")
        return message

    def _photo_sizes(self, stored: StoredFile) -> list[JSON]:
        width, height = _image_size(stored.data)
        scale = _THUMBNAIL_SIDE / max(width, height, _THUMBNAIL_SIDE)
        # Distinct bytes, so a bot that downloads photo[0] instead of photo[-1] is caught.
        thumbnail = self.register_file(b"thumbnail of " + stored.file_unique_id.encode(), folder="photos")
        return [
            {**thumbnail.to_api(), "width": round(width * scale), "height": round(height * scale)},
            {**stored.to_api(), "width": width, "height": height},
        ]

    async def _input_file(self, params: JSON, files: dict[str, UploadedFile], name: str, folder: str) -> StoredFile:
        """Resolve a file parameter: an upload, a known file_id, or a loopback URL."""
        if (upload := files.get(name)) is not None:
            # aiohttp labels every file part application/octet-stream; Telegram sniffs.
            mime_type = None if upload.content_type == "application/octet-stream" else upload.content_type
            return self.register_file(upload.data, folder=folder, file_name=upload.filename, mime_type=mime_type)
        value = params.get(name)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            limit = _URL_PHOTO_LIMIT if folder == "photos" else _URL_FILE_LIMIT
            data = await self._fetch_url(value, limit)
            return self.register_file(data, folder=folder, file_name=Path(urlsplit(value).path).name)
        raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: wrong file identifier/HTTP URL specified")

    async def _fetch_url(self, url: str, limit: int) -> bytes:
        failed = _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: failed to get HTTP URL content")
        if urlsplit(url).hostname not in _LOOPBACK_HOSTS:
            raise failed
        assert self._session is not None
        try:
            async with self._session.get(url) as response:
                data = await response.content.read(limit + 1)
        except aiohttp.ClientError:
            raise failed from None
        if response.status != HTTPStatus.OK or len(data) > limit:
            raise failed
        return data

    # -- Bot API methods -------------------------------------------------------------

    async def _api_get_me(self, _params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_get_updates(self, params: JSON, _files: dict[str, UploadedFile]) -> list[JSON]:
        if self.webhook is not None:
            raise _ApiError(
                HTTPStatus.CONFLICT,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"]) or None
        offset = params.get("offset", 0)
        # An offset confirms (forgets) every earlier update; a negative one keeps the last -N.
        if offset < 0:
            self._pending = self._pending[offset:]
        elif offset:
            self._pending = [update for update in self._pending if update["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        async with self._changed:
            self._waiting_polls += 1
            self._changed.notify_all()
            try:
                async with asyncio.timeout(min(params.get("timeout", 0), self.long_poll_cap)):
                    await self._changed.wait_for(
                        lambda: self._pending or self._closing or generation != self._poll_generation
                    )
            except TimeoutError:
                pass
            finally:
                self._waiting_polls -= 1
        if generation != self._poll_generation:
            raise _ApiError(HTTPStatus.CONFLICT, _STATUS_DESCRIPTIONS[HTTPStatus.CONFLICT])
        limit = min(max(params.get("limit", 100), 1), 100)
        return copy.deepcopy(self._pending[:limit])

    async def _api_set_webhook(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        # Real Telegram insists on HTTPS at ports 443/80/88/8443; tests use loopback HTTP.
        url = params["url"]
        self.webhook = (
            WebhookConfig(url, params.get("secret_token"), params.get("max_connections", 40)) if url else None
        )
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"]) or None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _api_delete_webhook(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _api_get_webhook_info(self, _params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        info: JSON = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook.max_connections
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    async def _api_set_my_commands(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        self._commands[_commands_key(params)] = params["commands"]
        return True

    async def _api_get_my_commands(self, params: JSON, _files: dict[str, UploadedFile]) -> list[JSON]:
        return self._commands.get(_commands_key(params), [])

    async def _api_send_message(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        text, entities = _parse_text(params["text"], params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message text is empty")
        if len(text) > _MAX_TEXT:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message is too long")
        return self._post_bot_message(params, {"text": text, **_non_empty("entities", entities)})

    async def _api_send_photo(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = await self._input_file(params, files, "photo", "photos")
        return self._post_bot_message(params, {"photo": self._photo_sizes(stored), **_bot_caption(params)})

    async def _api_send_video(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = await self._input_file(params, files, "video", "videos")
        video = {
            **stored.to_api(),
            # Telegram probes the file; the fake only knows what the bot declared.
            "width": params.get("width", 0),
            "height": params.get("height", 0),
            "duration": params.get("duration", 0),
            "mime_type": stored.mime_type or "video/mp4",
            **_non_empty("file_name", stored.file_name),
        }
        return self._post_bot_message(params, {"video": video, **_bot_caption(params)})

    async def _api_send_animation(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = await self._input_file(params, files, "animation", "animations")
        animation = {**_document(stored), "width": 0, "height": 0, "duration": 0}
        content = {"animation": animation, "document": _document(stored), **_bot_caption(params)}
        return self._post_bot_message(params, content)

    async def _api_send_document(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = await self._input_file(params, files, "document", "documents")
        return self._post_bot_message(params, {"document": _document(stored), **_bot_caption(params)})

    async def _api_send_audio(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        stored = await self._input_file(params, files, "audio", "music")
        audio = {**_document(stored), "duration": params.get("duration", 0)}
        return self._post_bot_message(params, {"audio": audio, **_bot_caption(params)})

    async def _api_send_media_group(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        """An album: 2 to 10 items of one family (audio with audio), each posted as a message."""
        media = params["media"]
        items = json.loads(media) if isinstance(media, str) else media
        if not 2 <= len(items) <= 10:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: wrong number of media in the group")
        types = {item["type"] for item in items}
        if "audio" in types and types != {"audio"}:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: audio can't be mixed with other media types")
        group_id = f"album{next(self._file_numbers)}"
        sent = []
        for item in items:
            value = item["media"]
            name = value.removeprefix("attach://") if value.startswith("attach://") else "media"
            stored = await self._input_file({"media": value} if name == "media" else {}, files, name, "music")
            kind = item["type"]
            content = {kind: {**_document(stored), "duration": 0}, "media_group_id": group_id}
            if item.get("caption"):
                content["caption"] = item["caption"]
            sent.append(self._post_bot_message(params, content))
        return sent

    async def _api_send_chat_action(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        self._writable_chat(params["chat_id"])
        return True

    async def _api_edit_message_text(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        message = self._message_to_edit(params)
        if "text" not in message:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: there is no text in the message to edit")
        text, entities = _parse_text(params["text"], params.get("parse_mode"), params.get("entities"))
        if len(text) > _MAX_TEXT:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: MESSAGE_TOO_LONG")
        # Without reply_markup an edit removes the keyboard, exactly as Telegram does.
        return _edit(message, text=text, entities=entities or None, reply_markup=_inline_keyboard(params))

    async def _api_edit_message_caption(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        message = self._message_to_edit(params)
        if not any(key in message for key in _MEDIA_KEYS):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: there is no caption in the message to edit")
        caption = _bot_caption(params)
        return _edit(
            message,
            caption=caption.get("caption"),
            caption_entities=caption.get("caption_entities"),
            reply_markup=_inline_keyboard(params),
        )

    async def _api_edit_message_reply_markup(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        return _edit(self._message_to_edit(params), reply_markup=_inline_keyboard(params))

    async def _api_delete_message(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        if self._chat(params["chat_id"]).messages.pop(params["message_id"], None) is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message to delete not found")
        return True

    async def _api_answer_callback_query(self, params: JSON, _files: dict[str, UploadedFile]) -> bool:
        query_id = params["callback_query_id"]
        if query_id not in self._open_queries:
            raise _ApiError(
                HTTPStatus.BAD_REQUEST,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_queries.discard(query_id)
        self.callback_answers[query_id] = params
        return True

    async def _api_get_file(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        stored = self._files.get(params["file_id"])
        if stored is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: invalid file_id")
        if self.download_limit is not None and len(stored.data) > self.download_limit:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: file is too big")
        return {**stored.to_api(), "file_path": stored.file_path}

    async def _api_get_chat_member(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        state = self._chat(params["chat_id"])
        user = self.bot_user if params["user_id"] == self.bot_id else self._users.get(params["user_id"])
        if user is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: user not found")
        return self._member(state.members.get(params["user_id"], "member"), user)

    async def _api_get_chat_administrators(self, params: JSON, _files: dict[str, UploadedFile]) -> list[JSON]:
        state = self._chat(params["chat_id"])
        if state.chat.type == "private":
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: there are no administrators in the private chat")
        # Users only: the fake's chats hold no other bots, and the bot itself is no admin here.
        return [
            self._member(status, self._users[user_id])
            for user_id, status in state.members.items()
            if status in {"creator", "administrator"}
        ]

    @staticmethod
    def _member(status: MemberStatus, user: JSON) -> JSON:
        """A ChatMember object of the kind `status` names."""
        member: JSON = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member |= {"can_be_edited": False, "is_anonymous": False}
            member |= dict.fromkeys(_ADMIN_RIGHTS, True)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    async def _api_get_chat(self, params: JSON, _files: dict[str, UploadedFile]) -> JSON:
        return {
            **self._chat(params["chat_id"]).chat.to_api(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(_GIFT_TYPES, False),
        }


# -- request parsing -------------------------------------------------------------------


async def _read_body(headers: Mapping[str, str], content: StreamReader) -> tuple[JSON, dict[str, UploadedFile]]:
    """Read a Bot API request (or webhook reply) body: fields and file parts by name."""
    mime_type = headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip().lower()
    if mime_type == "multipart/form-data":
        return await _read_multipart(MultipartReader(headers, content))
    body = await content.read()
    if not body:
        return {}, {}
    if mime_type == "application/json":
        try:
            params = json.loads(body)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: can't parse JSON object")
        return params, {}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}


async def _read_multipart(reader: MultipartReader) -> tuple[JSON, dict[str, UploadedFile]]:
    fields: JSON = {}
    parts: dict[str, UploadedFile] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: malformed multipart part")
        if part.filename is None:
            fields[part.name] = await part.text()
        else:
            parts[part.name] = UploadedFile(
                filename=part.filename,
                content_type=part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream"),
                data=bytes(await part.read()),
            )
    return fields, parts


def _attach_uploads(params: JSON, parts: dict[str, UploadedFile]) -> tuple[JSON, dict[str, UploadedFile]]:
    """Put each file part where Telegram takes it from: an `attach://name` reference
    anywhere in the params, or else the parameter of the part's own name."""
    files: dict[str, UploadedFile] = {}
    attached: set[str] = set()

    def resolve(value: Any, path: str) -> Any:
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name in parts:
                attached.add(name)
                files[path] = parts[name]
                return parts[name].describe()
        if isinstance(value, dict):
            return {key: resolve(item, f"{path}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    resolved = {name: resolve(value, name) for name, value in params.items()}
    for name, part in parts.items():
        if name not in attached and name not in resolved:
            resolved[name] = part.describe()
            files[name] = part
    return resolved, files


# -- message content -------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _utf16_length(text: str) -> int:
    # Entity offsets and lengths are counted in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _non_empty(key: str, value: Any) -> JSON:
    return {key: value} if value else {}


def _command_entities(key: str, text: str) -> JSON:
    entities = [
        {
            "type": "bot_command",
            "offset": _utf16_length(text[: match.start()]),
            "length": _utf16_length(match.group()),
        }
        for match in _COMMAND.finditer(text)
    ]
    return _non_empty(key, entities)


def _caption_content(caption: str | None) -> JSON:
    if not caption:
        return {}
    return {"caption": caption, **_command_entities("caption_entities", caption)}


def _bot_caption(params: JSON) -> JSON:
    if not params.get("caption"):
        return {}
    caption, entities = _parse_text(params["caption"], params.get("parse_mode"), params.get("caption_entities"))
    if len(caption) > _MAX_CAPTION:
        raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message caption is too long")
    return {"caption": caption, **_non_empty("caption_entities", entities)}


def _inline_keyboard(params: JSON) -> JSON | None:
    # Only inline keyboards belong to a message; reply keyboards are not echoed back.
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        return markup
    return None


def _inline_markup(params: JSON) -> JSON:
    return _non_empty("reply_markup", _inline_keyboard(params))


def _edit(message: JSON, **changes: Any) -> JSON:
    """Apply `changes` to a stored message (None removes a key) and return a copy."""
    if all(message.get(key) == value for key, value in changes.items()):
        raise _ApiError(HTTPStatus.BAD_REQUEST, MESSAGE_NOT_MODIFIED)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    message["edit_date"] = _now()
    return copy.deepcopy(message)


def _document(stored: StoredFile) -> JSON:
    return {
        **stored.to_api(),
        **_non_empty("file_name", stored.file_name),
        **_non_empty("mime_type", stored.mime_type),
    }


def _commands_key(params: JSON) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code", "")], sort_keys=True)


def _image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "image/jpeg"


def _image_size(data: bytes) -> tuple[int, int]:
    """Read width and height from PNG, GIF or JPEG headers; (0, 0) when unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"GIF8") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    index = 2 if data.startswith(b"\xff\xd8") else len(data)
    while index + 9 <= len(data) and data[index] == 0xFF:
        marker = data[index + 1]
        # SOF0-SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
    return 0, 0


def _parse_text(text: str, parse_mode: str | None, entities: list[JSON] | None) -> tuple[str, list[JSON]]:
    """Return the text a user sees and its entities, as Telegram derives them."""
    if entities or not parse_mode:
        return text, entities or []
    mode = parse_mode.lower()
    if mode == "html":
        return _TelegramHtml(text).parse()
    if mode in ("markdown", "markdownv2"):
        return text, []  # not emulated: shown as sent
    raise _ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: unsupported parse_mode")


_HTML_ENTITIES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: supported tags become entities, others are refused."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._chunks: list[str] = []
        self._offset = 0
        self._open: list[tuple[str, JSON | None]] = []
        self._entities: list[JSON] = []

    def parse(self) -> tuple[str, list[JSON]]:
        self.feed(self._source)
        self.close()
        if self._open:
            self._fail(f'Can\'t find end tag corresponding to start tag "{self._open[-1][0]}"')
        entities = sorted(self._entities, key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self._chunks), entities

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        self._offset += _utf16_length(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        kind = _HTML_ENTITIES.get(tag)
        if tag == "span" and attributes.get("class") == "tg-spoiler":
            kind = "spoiler"
        if kind is None:
            self._fail(f'Unsupported start tag "{tag}"')
        parent = self._open[-1][1] if self._open and self._open[-1][0] == "pre" else None
        if tag == "code" and parent is not None:
            # <pre><code class="language-x"> is a single pre entity with a language.
            if language := (attributes.get("class") or "").removeprefix("language-"):
                parent["language"] = language
            self._open.append((tag, None))
            return
        entity: JSON = {"type": kind, "offset": self._offset}
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        elif tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        self._open.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            expected = f'expected "</{self._open[-1][0]}>", ' if self._open else ""
            self._fail(f'Unmatched end tag, {expected}found "</{tag}>"')
        _, entity = self._open.pop()
        if entity is not None and self._offset > entity["offset"]:
            self._entities.append({**entity, "length": self._offset - entity["offset"]})

    def _fail(self, problem: str) -> None:
        line, column = self.getpos()
        index = sum(len(text) for text in self._source.splitlines(keepends=True)[: line - 1])
        offset = len(self._source[: index + column].encode("utf-8"))
        raise _ApiError(
            HTTPStatus.BAD_REQUEST,
            f"Bad Request: can't parse entities: {problem} at byte offset {offset}",
        )
