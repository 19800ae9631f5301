"""A fake Discord (REST API + gateway) on loopback, so tests run the real discord.py against it.

`FakeDiscord` serves what a slash-command bot uses: login (`/users/@me`,
`/oauth2/applications/@me`, `/gateway/bot`), command sync, interaction callbacks,
webhook followups and original-response edits, channel messages (JSON and multipart
with files), DMs, and attachment downloads; its gateway says HELLO, answers IDENTIFY
with READY and a GUILD_CREATE per guild (with channels, a role and members) of the
shard identified (`shard: [id, count]`, routed as Discord does), acks heartbeats,
and then dispatches the INTERACTION_CREATE payloads a test builds as a
user would cause them: a slash command (options typed by the commands the bot synced,
attachments and users resolved), an autocomplete, a button click, a modal submit.

    async with FakeDiscord() as fake:      # discord.py's base URLs point at the fake meanwhile
        ...start a bot with fake.token...
        await fake.wait_until_connected()
        ix = await fake.slash("create_single", by=alice, prompt="a fox")
        await fake.wait_for(lambda: fake.followups(ix), what="the video")
        assert fake.spec_violations == []

Every request is recorded (`fake.requests`) and checked against Discord's OpenAPI spec
(`discord_spec.check_request`); so are the rules of interactions a bot meets only in
production: acknowledge within 3 s and only once, do not use an interaction token after
its 15 minutes, do not upload more than `attachment_size_limit`. Breaking one is a
`spec_violation` and gets Discord's own error answer. Like Discord, the first followup
after a deferred ("thinking") response replaces that response instead of posting anew.
Faults are injected per route with `fail_next`. Nothing here reaches the internet.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

from tests import patience

from .discord_spec import check_request, find_route, load_spec

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_TOKEN = "ZmFrZS1ib3Q.fake-discord.token-used-only-in-tests"
API_PREFIX = "/api/v10"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
TOKEN_LIFETIME = 15 * 60.0
ACK_DEADLINE = 3.0
# How long Create Message remembers a nonce sent with enforce_nonce ("the past few minutes").
NONCE_WINDOW = 5 * 60.0
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Gateway opcodes and interaction / callback / option types, as Discord numbers them.
# The gateway's close code for an IDENTIFY whose `shard` is not [id, count] with 0 <= id < count.
CLOSE_INVALID_SHARD = 4010
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = (
    0,
    1,
    2,
    6,
    9,
    10,
    11,
)
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = (
    4,
    5,
    6,
    7,
    8,
    9,
)
OPTION_USER, OPTION_ATTACHMENT = 6, 11
PUBLIC_THREAD = 11
TEXT_INPUT, LABEL, ACTION_ROW = 4, 18, 1
# Which answers each kind of interaction may get.
_ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}
_MENTION = re.compile(r"<@!?(\d+)>")

MEMBER_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    attach_files=True,
    embed_links=True,
    use_application_commands=True,
)
MODERATOR_PERMISSIONS = MEMBER_PERMISSIONS | discord.Permissions(manage_messages=True)
ADMIN_PERMISSIONS = MODERATOR_PERMISSIONS | discord.Permissions(manage_guild=True)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a server's events to (its documented formula)."""
    return (guild_id >> 22) % shard_count


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class DiscordError(Exception):
    """An error answer in Discord's shape: `{"message": …, "code": …}`."""

    def __init__(self, status: int, code: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {message} ({code})")
        self.status = status
        self.body: JSON = {"message": message, "code": code}
        self.headers = headers or {}


def _rate_limited(retry_after: float) -> DiscordError:
    """A 429 as Discord sends one: `retry_after` in the body, the bucket in the headers,
    and the `Via` header that tells discord.py it came from Discord, not Cloudflare."""
    error = DiscordError(
        429,
        0,
        "You are being rate limited.",
        headers={
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "user",
        },
    )
    error.body |= {"retry_after": retry_after, "global": False}
    return error


def _unknown(what: str, code: int) -> DiscordError:
    return DiscordError(404, code, f"Unknown {what}")


@dataclass(frozen=True)
class FakeUser:
    id: int
    name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_api(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class FakeMember:
    user: FakeUser
    permissions: discord.Permissions
    joined_at: str = field(default_factory=_now_iso)

    def to_api(self, *, with_permissions: bool = False) -> JSON:
        data: JSON = {
            "user": self.user.to_api(),
            "roles": [],
            "nick": None,
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
        if with_permissions:  # interaction payloads carry the member's resolved permissions
            data["permissions"] = str(self.permissions.value)
        return data


@dataclass(frozen=True)
class FakeChannel:
    id: int
    name: str
    guild_id: int | None  # None: a DM channel
    type: int = 0  # 0 text, 1 DM, 11 public thread
    parent_id: int | None = None  # a thread's channel

    def to_api(self, recipient: FakeUser | None = None) -> JSON:
        if self.guild_id is None:
            recipients = [recipient.to_api()] if recipient else []
            return {"id": str(self.id), "type": 1, "last_message_id": None, "recipients": recipients}
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "guild_id": str(self.guild_id),
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None if self.parent_id is None else str(self.parent_id),
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.type == PUBLIC_THREAD:
            data |= {
                "owner_id": str(self.guild_id),
                "message_count": 0,
                "member_count": 1,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _now_iso(),
                    "locked": False,
                },
            }
        return data


@dataclass
class FakeFile:
    """An attachment: uploaded by the bot (files[n]) or by a user (an /animate image)."""

    id: int
    filename: str
    content_type: str
    data: bytes

    def to_api(self, base_url: str) -> JSON:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": f"{base_url}/attachments/{self.id}/{self.filename}",
            "proxy_url": f"{base_url}/attachments/{self.id}/{self.filename}",
            "content_type": self.content_type,
        }


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[FakeFile] = field(default_factory=list)
    flags: int = 0
    mentions: list[int] = field(default_factory=list)
    interaction_id: int | None = None  # the interaction this message answers
    webhook_id: int | None = None
    loading: bool = False  # a deferred response not yet edited ("… is thinking")
    deleted: bool = False
    edits: int = 0
    nonce: str | None = None  # as the creating request sent it (Discord echoes it back)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def custom_ids(self) -> list[str]:
        """The custom_ids of the message's buttons, in order."""
        return [c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c]

    def to_api(self, base_url: str) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.to_api(),
            "content": self.content,
            "timestamp": _now_iso(),
            "edited_timestamp": _now_iso() if self.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [FakeUser(uid, f"user{uid}").to_api() for uid in self.mentions],
            "mention_roles": [],
            "attachments": [f.to_api(base_url) for f in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": 20 if self.interaction_id else 0,
            "flags": self.flags | (LOADING if self.loading else 0),
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.nonce is not None:
            data["nonce"] = self.nonce
        return data


@dataclass
class FakeInteraction:
    """One interaction the fake dispatched, and how the bot answered it."""

    id: int
    token: str
    type: int
    user: FakeUser
    channel: FakeChannel
    payload: JSON
    dispatched_at: float  # time.monotonic()
    callback: JSON | None = None  # the bot's answer (type + data)
    original_id: int | None = None  # the response message, once there is one
    followup_ids: list[int] = field(default_factory=list)
    source_message_id: int | None = None  # the message a clicked button sits on

    @property
    def callback_type(self) -> int | None:
        return None if self.callback is None else self.callback["type"]

    @property
    def modal(self) -> JSON | None:
        """The modal the bot opened in answer, if it did."""
        return self._answer_data(MODAL)

    @property
    def choices(self) -> list[JSON] | None:
        """The autocomplete choices the bot answered with, if it did."""
        data = self._answer_data(AUTOCOMPLETE_RESULT)
        return None if data is None else data["choices"]

    def _answer_data(self, callback_type: int) -> JSON | None:
        if self.callback is None or self.callback["type"] != callback_type:
            return None
        data: JSON = self.callback["data"]
        return data


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    route: str | None  # the spec's path template
    query: dict[str, str]
    body: Any  # JSON body or multipart payload_json, parsed
    files: list[FakeFile]
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it had arrived, before the fake checked it

    @property
    def summary(self) -> str:
        return f"{self.method} {self.route or self.path} → {self.status}"


@dataclass
class _Fault:
    route: str  # "POST /channels/{channel_id}/messages"
    error: DiscordError
    times: int


@dataclass
class _Delay:
    route: str  # "POST /interactions/{interaction_id}/{interaction_token}/callback"
    seconds: float
    times: int


class FakeDiscord:
    """Discord's REST API and gateway for one application and one bot, in one guild or more.

    The bot may connect in shards (IDENTIFY with `shard: [id, count]`, several sockets):
    each socket gets READY and GUILD_CREATE for its own shard's guilds only, and a guild's
    events go only to the socket of its shard (DMs to shard 0), as Discord routes them.
    `GET /gateway/bot` recommends `recommended_shards`.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        token_lifetime: float = TOKEN_LIFETIME,
        ack_deadline: float = ACK_DEADLINE,
        recommended_shards: int = 1,
        nonce_window: float = NONCE_WINDOW,
    ) -> None:
        self.token = token
        self.nonce_window = nonce_window
        # (author id, nonce) → (message id, when created): Create Message's enforce_nonce memory.
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self.attachment_size_limit = attachment_size_limit
        self.token_lifetime = token_lifetime
        self.ack_deadline = ack_deadline
        self.recommended_shards = recommended_shards
        self._ids = itertools.count(1)
        self.application_id = self._snowflake()
        self.bot_user = FakeUser(self.application_id, "PixVerse Bot", bot=True)
        self.guild_id = self._snowflake()
        self.guild_ids = [self.guild_id]  # every guild the bot is in; each member is in all of them
        self.owner = FakeUser(self._snowflake(), "owner")
        self.members: dict[int, FakeMember] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.add_member(self.bot_user, ADMIN_PERMISSIONS)
        self.add_member(self.owner, discord.Permissions.all())
        self.channel = self.add_channel("general")
        self.commands: dict[int | None, list[JSON]] = {}  # guild id (None: global) → synced commands
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.uploads: dict[int, FakeFile] = {}
        self.downloads: list[int] = []  # ids of the attachments fetched, in order
        self.requests: list[CapturedRequest] = []
        self.spec_violations: list[str] = []
        self.identified = 0  # IDENTIFYs seen (one per bot start and shard)
        self.shards_identified: list[tuple[int, int]] = []  # (shard id, shard count) of each IDENTIFY
        self._by_token: dict[str, FakeInteraction] = {}
        self._dm_channels: dict[int, FakeChannel] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._sockets: dict[web.WebSocketResponse, tuple[int, int]] = {}  # identified socket → (shard id, count)
        self._sequence = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._saved_urls: tuple[str, yarl.URL] | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Serve on a free loopback port and point discord.py's REST and gateway URLs here."""
        # Bodies up to the attachment limit reach the handlers, which answer Discord's own error past it.
        app = web.Application(client_max_size=max(64 * 1024 * 1024, self.attachment_size_limit + 1024 * 1024))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle_api)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/attachments/{id}/{filename}", self._handle_attachment)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self._saved_urls = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.base_url + API_PREFIX
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._saved_urls is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved_urls
            self._saved_urls = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    # ------------------------------------------------------------------ the world

    def _snowflake(self) -> int:
        # Time-based like Discord's, so discord.py reads a right `created_at` from each id.
        return discord.utils.time_snowflake(datetime.now(UTC)) + next(self._ids)

    def add_member(self, user: FakeUser | str, permissions: discord.Permissions = MEMBER_PERMISSIONS) -> FakeUser:
        """A guild member (a new user when given a name) with these channel permissions."""
        if isinstance(user, str):
            user = FakeUser(self._snowflake(), user)
        self.members[user.id] = FakeMember(user, permissions)
        return user

    def add_guild(self, *, on_shard: tuple[int, int] | None = None) -> int:
        """Another guild the bot is in (its id); `on_shard=(id, count)` picks an id on that shard."""
        guild_id = self._snowflake()
        if on_shard is not None:
            shard_id, shard_count = on_shard
            # The shard is read from the id's timestamp: move it forward to the wanted remainder.
            guild_id += ((shard_id - shard_of(guild_id, shard_count)) % shard_count) << 22
        self.guild_ids.append(guild_id)
        return guild_id

    def add_channel(
        self, name: str, *, thread_of: FakeChannel | None = None, guild_id: int | None = None
    ) -> FakeChannel:
        """A text channel (in the first guild unless `guild_id` says), or a public thread in `thread_of`."""
        if thread_of is None:
            channel = FakeChannel(self._snowflake(), name, guild_id or self.guild_id)
        else:
            assert thread_of.guild_id is not None, "threads are in guild channels"
            channel = FakeChannel(
                self._snowflake(), name, thread_of.guild_id, type=PUBLIC_THREAD, parent_id=thread_of.id
            )
        self.channels[channel.id] = channel
        return channel

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between the bot and `user` (made on first use, as Discord does)."""
        if user.id not in self._dm_channels:
            self._dm_channels[user.id] = FakeChannel(self._snowflake(), f"dm-{user.name}", None, type=1)
        return self._dm_channels[user.id]

    def find_channel(self, channel_id: int) -> FakeChannel | None:
        """A guild channel or a DM channel by id."""
        dms = {c.id: c for c in self._dm_channels.values()}
        return self.channels.get(channel_id) or dms.get(channel_id)

    def upload(self, filename: str, data: bytes, content_type: str) -> FakeFile:
        """A file a user attaches to a command (served back at its `url`)."""
        attachment = FakeFile(self._snowflake(), filename, content_type, data)
        self.uploads[attachment.id] = attachment
        return attachment

    # ------------------------------------------------------------------ what the bot did

    def channel_messages(self, channel: FakeChannel | int) -> list[FakeMessage]:
        """Messages in a channel, oldest first (ephemeral and deleted ones included)."""
        channel_id = channel if isinstance(channel, int) else channel.id
        return [m for m in self.messages.values() if m.channel_id == channel_id]

    def original(self, interaction: FakeInteraction) -> FakeMessage | None:
        return self.messages.get(interaction.original_id) if interaction.original_id else None

    def followups(self, interaction: FakeInteraction) -> list[FakeMessage]:
        return [self.messages[i] for i in interaction.followup_ids]

    def requests_to(self, route: str) -> list[CapturedRequest]:
        """Requests to a spec route, e.g. `"POST /channels/{channel_id}/messages"`."""
        return [r for r in self.requests if f"{r.method} {r.route}" == route]

    async def wait_for(self, condition: Callable[[], T | None], *, timeout: float = 10.0, what: str = "") -> T:
        """Wait until `condition()` is truthy (returns it); re-checked after every request and dispatch."""
        timeout = patience.deadline(timeout)
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = "\n  ".join(r.summary for r in self.requests[-12:])
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or condition}; last requests:\n  {recent}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Wait until a bot has identified on the gateway (and received READY)."""
        await self.wait_for(lambda: self._sockets, timeout=timeout, what="a bot to identify on the gateway")

    @property
    def connected_shards(self) -> list[tuple[int, int]]:
        """(shard id, shard count) of each identified gateway connection."""
        return sorted(self._sockets.values())

    def fail_next(self, route: str, status: int, *, code: int = 0, message: str = "", times: int = 1) -> None:
        """Answer the next `times` requests to `route` ("POST /channels/{channel_id}/messages") with an error."""
        self._add_fault(route, DiscordError(status, code, message or f"injected {status}"), times)

    def rate_limit_next(self, route: str, retry_after: float, *, times: int = 1) -> None:
        """Answer the next `times` requests to `route` with a 429 asking to retry after `retry_after` seconds."""
        self._add_fault(route, _rate_limited(retry_after), times)

    def delay_next(self, route: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` requests to `route` only `seconds` after they arrived (a slow Discord)."""
        self._delays.append(_Delay(route, seconds, times))

    def _add_fault(self, route: str, error: DiscordError, times: int) -> None:
        method, _, template = route.partition(" ")
        if method.lower() not in load_spec()["paths"].get(template, {}):
            raise ValueError(f"{route!r} is not a Discord API route")
        self._faults.append(_Fault(route, error, times))

    def dismiss(self, message: FakeMessage) -> None:
        """The user clicks "Dismiss message" under an ephemeral message: it is gone for good."""
        assert message.ephemeral, "only ephemeral messages can be dismissed"
        message.deleted = True
        self._changed.set()

    # ------------------------------------------------------------------ users act

    async def slash(
        self,
        name: str,
        /,
        *,
        by: FakeUser,
        channel: FakeChannel | None = None,
        **options: Any,
    ) -> FakeInteraction:
        """`by` runs `/name` with `options` (values as typed; FakeUser and FakeFile are resolved)."""
        channel = channel or self.channel
        command_data = self._command_data(name, options, focused=None, guild_id=channel.guild_id)
        return await self._interact(APPLICATION_COMMAND, by, channel, command_data)

    async def autocomplete(
        self, name: str, /, *, by: FakeUser, focused: str, channel: FakeChannel | None = None, **options: Any
    ) -> FakeInteraction:
        """`by` is typing option `focused` of `/name`; the bot's choices land in `.choices`."""
        channel = channel or self.channel
        command_data = self._command_data(name, options, focused=focused, guild_id=channel.guild_id)
        return await self._interact(AUTOCOMPLETE, by, channel, command_data)

    async def click(self, message: FakeMessage, custom_id: str, *, by: FakeUser) -> FakeInteraction:
        """`by` presses the button `custom_id` under `message`."""
        if custom_id not in message.custom_ids:
            raise ValueError(f"message {message.id} has no button {custom_id!r} (it has {message.custom_ids})")
        channel = self.find_channel(message.channel_id)
        assert channel is not None, f"message {message.id} is in no known channel"
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(MESSAGE_COMPONENT, by, channel, data, message=message)

    async def submit_modal(
        self, opened_by: FakeInteraction, values: dict[str, str], *, by: FakeUser
    ) -> FakeInteraction:
        """`by` fills in the modal the bot opened in answer to `opened_by` and submits it."""
        modal = opened_by.modal
        if modal is None:
            raise ValueError(f"the bot answered interaction {opened_by.id} without a modal")
        rows = [self._filled(row, values) for row in modal["components"]]
        data = {"custom_id": modal["custom_id"], "components": rows}
        message = self.messages.get(opened_by.source_message_id) if opened_by.source_message_id else None
        return await self._interact(MODAL_SUBMIT, by, opened_by.channel, data, message=message)

    def _filled(self, component: JSON, values: dict[str, str]) -> JSON:
        if component["type"] == ACTION_ROW:
            return {"type": ACTION_ROW, "components": [self._filled(c, values) for c in component["components"]]}
        if component["type"] == LABEL:
            return {"type": LABEL, "component": self._filled(component["component"], values)}
        if component["type"] == TEXT_INPUT:
            value = values.get(component["custom_id"], component.get("value", ""))
            return {"type": TEXT_INPUT, "custom_id": component["custom_id"], "value": value}
        return {"type": component["type"]}

    def _command(self, name: str, guild_id: int | None) -> JSON:
        """The command as the bot synced it where it is used: in that guild, else globally."""
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name:
                    return command
        raise ValueError(f"the bot has not synced a command named {name!r}")

    def _command_data(self, name: str, options: dict[str, Any], *, focused: str | None, guild_id: int | None) -> JSON:
        """An application command's `data`, typed and resolved the way Discord sends it."""
        command = self._command(name, guild_id)
        declared = {o["name"]: o for o in command.get("options", [])}
        # While the user types (autocomplete) the options filled so far are sent, required or not.
        missing = [n for n, o in declared.items() if o.get("required") and n not in options]
        if missing and focused is None:
            raise ValueError(f"/{name} needs {missing} (Discord would not send it)")
        resolved: dict[str, dict[str, JSON]] = {}
        sent = []
        for option_name, value in {**options, **({focused: options.get(focused, "")} if focused else {})}.items():
            option = declared.get(option_name)
            if option is None:
                raise ValueError(f"/{name} has no option {option_name!r}")
            sent.append(
                {"name": option_name, "type": option["type"], "value": self._option_value(option, value, resolved)}
            )
            if option_name == focused:
                sent[-1]["focused"] = True
        data: JSON = {"id": command["id"], "name": name, "type": 1, "options": sent}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return data

    def _option_value(self, option: JSON, value: Any, resolved: dict[str, dict[str, JSON]]) -> Any:
        if option["type"] == OPTION_ATTACHMENT:
            assert isinstance(value, FakeFile), f"option {option['name']} takes a FakeFile from fake.upload()"
            resolved.setdefault("attachments", {})[str(value.id)] = value.to_api(self.base_url)
            return str(value.id)
        if option["type"] == OPTION_USER:
            assert isinstance(value, FakeUser), f"option {option['name']} takes a FakeUser"
            resolved.setdefault("users", {})[str(value.id)] = value.to_api()
            if value.id in self.members:
                member = self.members[value.id].to_api(with_permissions=True)
                member.pop("user")
                resolved.setdefault("members", {})[str(value.id)] = member
            return str(value.id)
        choices = [c["value"] for c in option.get("choices") or []]
        if choices and value not in choices:
            raise ValueError(
                f"option {option['name']} takes one of {choices}, not {value!r} (Discord enforces choices)"
            )
        return value

    async def _interact(
        self, kind: int, user: FakeUser, channel: FakeChannel, data: JSON, *, message: FakeMessage | None = None
    ) -> FakeInteraction:
        interaction_id = self._snowflake()
        token = f"aW50ZXJhY3Rpb24.{interaction_id}.{secrets.token_urlsafe(24)}"
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel.to_api(user),
            "token": token,
            "version": 1,
            "app_permissions": str(ADMIN_PERMISSIONS.value),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.attachment_size_limit,
        }
        if channel.guild_id is None:
            payload |= {"user": user.to_api(), "context": 1, "authorizing_integration_owners": {"1": str(user.id)}}
        else:
            member = self.members.get(user.id) or FakeMember(user, MEMBER_PERMISSIONS)
            payload |= {
                "guild_id": str(channel.guild_id),
                "guild": {"id": str(channel.guild_id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": member.to_api(with_permissions=True),
                "context": 0,
                "authorizing_integration_owners": {"0": str(channel.guild_id)},
            }
        if message is not None:
            payload["message"] = message.to_api(self.base_url)
        interaction = FakeInteraction(
            interaction_id,
            token,
            kind,
            user,
            channel,
            payload,
            time.monotonic(),
            source_message_id=message.id if message else None,
        )
        self.interactions[interaction_id] = interaction
        self._by_token[token] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # ------------------------------------------------------------------ gateway

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a gateway event to the shard its guild belongs to (DMs: shard 0) on every connected bot."""
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        receivers = [
            socket
            for socket, (shard_id, shard_count) in self._sockets.items()
            if shard_id == (0 if guild_id is None else shard_of(guild_id, shard_count))
        ]
        if not receivers:
            where = f"guild {guild_id}" if guild_id else "direct messages"
            raise AssertionError(f"no bot runs the shard of {where} (connected: {self.connected_shards}) for {event}")
        for socket in receivers:
            await socket.send_str(json.dumps({"op": OP_DISPATCH, "t": event, "s": next(self._sequence), "d": data}))
        self._changed.set()

    async def _handle_gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(json.dumps({"op": OP_HELLO, "d": {"heartbeat_interval": 41_250}}))
        try:
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                if frame["op"] == OP_HEARTBEAT:
                    await socket.send_str(json.dumps({"op": OP_HEARTBEAT_ACK}))
                elif frame["op"] == OP_IDENTIFY:
                    await self._identify(socket, frame["d"])
                elif frame["op"] == OP_RESUME:  # sessions are not kept: start afresh
                    await socket.send_str(json.dumps({"op": OP_INVALID_SESSION, "d": False}))
        finally:
            self._sockets.pop(socket, None)
            self._changed.set()
        return socket

    async def _identify(self, socket: web.WebSocketResponse, data: JSON) -> None:
        if data.get("token") != self.token:
            await socket.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard", [0, 1])
        valid = isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)
        if not valid or not 0 <= shard[0] < shard[1]:
            self._violation(f"IDENTIFY with shard {shard!r}: Discord wants [shard_id, shard_count], 0 <= id < count")
            await socket.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return
        shard_id, shard_count = shard
        self.identified += 1
        self.shards_identified.append((shard_id, shard_count))
        guilds = [g for g in self.guild_ids if shard_of(g, shard_count) == shard_id]
        ready = {
            "v": 10,
            "user": self.bot_user.to_api(),
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "session_id": secrets.token_hex(16),
            "resume_gateway_url": self.gateway_url,
            "shard": [shard_id, shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        events = [("READY", ready)] + [("GUILD_CREATE", self._guild_payload(g)) for g in guilds]
        for event, payload in events:
            await socket.send_str(json.dumps({"op": OP_DISPATCH, "t": event, "s": next(self._sequence), "d": payload}))
        self._sockets[socket] = (shard_id, shard_count)
        self._changed.set()

    def _guild_payload(self, guild_id: int) -> JSON:
        channels = [c for c in self.channels.values() if c.guild_id == guild_id]
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS.value),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(guild_id),
            "name": "Test Server" if guild_id == self.guild_id else f"Server {guild_id}",
            "icon": None,
            "owner_id": str(self.owner.id),
            "roles": [everyone],
            "channels": [c.to_api() for c in channels if c.type != PUBLIC_THREAD],
            "threads": [c.to_api() for c in channels if c.type == PUBLIC_THREAD],
            "members": [m.to_api() for m in self.members.values()],
            "member_count": len(self.members),
            "large": False,
            "unavailable": False,
            "joined_at": _now_iso(),
            "features": [],
            "emojis": [],
            "stickers": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }

    # ------------------------------------------------------------------ REST

    async def _handle_attachment(self, request: web.Request) -> web.Response:
        attachment = self.uploads.get(int(request.match_info["id"]))
        if attachment is None:
            for message in self.messages.values():
                attachment = next((f for f in message.attachments if f.id == int(request.match_info["id"])), attachment)
        if attachment is None:
            raise web.HTTPNotFound()
        self.downloads.append(attachment.id)
        self._changed.set()
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        route = find_route(path)
        body, files, media_type = await self._read_body(request)
        # Stamped now, before the fake checks the body against the spec (jsonschema: some
        # 2 ms for a message with components, 0.1 ms for plain text) and handles it: that
        # is the fake's cost, and a latency measured to `at` must not charge it to the bot.
        arrived = time.monotonic()
        status, answer, headers = 500, None, {}
        delay = next((d for d in self._delays if route and d.route == f"{request.method} {route}" and d.times), None)
        if delay is not None:
            delay.times -= 1
            await asyncio.sleep(delay.seconds)  # Discord is slow to answer this one: nothing is done before
        try:
            if route is None:
                raise DiscordError(404, 0, "404: Not Found")
            self.spec_violations += check_request(request.method, path, body, media_type=media_type)
            self._check_auth(request, route)
            self._inject_fault(f"{request.method} {route}")
            params = dict(zip(re.findall(r"\{(\w+)\}", route), self._path_values(route, path), strict=True))
            handler = self._handlers().get(f"{request.method} {route}")
            if handler is None:
                raise DiscordError(405, 0, "405: Method Not Allowed")
            status, answer = handler(params, dict(request.query), body, files)
        except DiscordError as error:
            status, answer, headers = error.status, error.body, error.headers
        finally:
            self.requests.append(
                CapturedRequest(request.method, path, route, dict(request.query), body, files, status, at=arrived)
            )
            self._changed.set()
        if answer is None:
            return web.Response(status=status, headers=headers)
        # Exactly "application/json": discord.py only decodes a body with this content type.
        return web.Response(
            status=status, body=json.dumps(answer).encode(), headers={**headers, "Content-Type": "application/json"}
        )

    @staticmethod
    def _path_values(route: str, path: str) -> list[str]:
        return [
            part for template, part in zip(route.split("/"), path.split("/"), strict=True) if template.startswith("{")
        ]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[FakeFile], str]:
        if request.content_type == "multipart/form-data":
            body: Any = None
            files: list[FakeFile] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert isinstance(part, BodyPartReader), "Discord's multipart bodies are flat"
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                    continue
                field = re.fullmatch(r"files\[(\d+)\]", part.name or "")
                if field is None:
                    self._violation(f"unexpected multipart field {part.name!r}")
                    continue
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files.append(FakeFile(int(field.group(1)), part.filename or "", content_type, bytes(await part.read())))
            return body, files, "multipart/form-data"
        raw = await request.read()
        return (json.loads(raw) if raw else None), [], "application/json"

    def _check_auth(self, request: web.Request, route: str) -> None:
        # Interaction callbacks and webhook calls are authorised by the token in the path.
        if route.startswith(("/interactions/", "/webhooks/{webhook_id}/{webhook_token}")):
            return
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordError(401, 0, "401: Unauthorized")

    def _inject_fault(self, route: str) -> None:
        for fault in self._faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                raise fault.error

    def _violation(self, text: str) -> None:
        self.spec_violations.append(text)

    Handler = Callable[[dict[str, str], dict[str, str], Any, list[FakeFile]], tuple[int, Any]]

    def _handlers(self) -> dict[str, Handler]:
        return {
            "GET /users/@me": lambda *_: (200, self.bot_user.to_api()),
            "GET /oauth2/applications/@me": lambda *_: (200, self._application()),
            "GET /gateway/bot": lambda *_: (200, self._gateway_info()),
            "GET /gateway": lambda *_: (200, {"url": self.gateway_url}),
            "PUT /applications/{application_id}/commands": self._put_commands,
            "PUT /applications/{application_id}/guilds/{guild_id}/commands": self._put_commands,
            "POST /interactions/{interaction_id}/{interaction_token}/callback": self._callback,
            "POST /webhooks/{webhook_id}/{webhook_token}": self._followup,
            "GET /webhooks/{webhook_id}/{webhook_token}/messages/@original": self._get_webhook_message,
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original": self._edit_webhook_message,
            "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/@original": self._delete_webhook_message,
            "GET /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}": self._get_webhook_message,
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}": self._edit_webhook_message,
            "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}": self._delete_webhook_message,
            "POST /channels/{channel_id}/messages": self._create_channel_message,
            "POST /users/@me/channels": self._create_dm,
        }

    def _application(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.to_api(),
            "verify_key": secrets.token_hex(32),
            "flags": 0,
            "team": None,
        }

    def _gateway_info(self) -> JSON:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}

    def _put_commands(
        self, params: dict[str, str], _query: dict[str, str], body: Any, _files: list[FakeFile]
    ) -> tuple[int, Any]:
        if int(params["application_id"]) != self.application_id:
            raise _unknown("Application", 10002)
        guild_id = int(params["guild_id"]) if "guild_id" in params else None
        stored = []
        for command in body or []:
            command = {
                **command,
                "id": str(self._snowflake()),
                "application_id": str(self.application_id),
                "version": str(self._snowflake()),
                "type": command.get("type", 1),
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored.append(command)
        self.commands[guild_id] = stored
        return 200, stored

    # ------------------------------------------------------------------ interactions and webhooks

    def _callback(
        self, params: dict[str, str], query: dict[str, str], body: Any, files: list[FakeFile]
    ) -> tuple[int, Any]:
        interaction = self.interactions.get(int(params["interaction_id"]))
        if interaction is None or interaction.token != params["interaction_token"]:
            raise _unknown("interaction", 10062)
        late = time.monotonic() - interaction.dispatched_at
        if interaction.callback is not None:
            self._violation(f"interaction {interaction.id} answered twice")
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if late > self.ack_deadline:
            self._violation(
                f"interaction {interaction.id} answered after {late:.1f}s (Discord allows {self.ack_deadline}s)"
            )
            raise _unknown("interaction", 10062)
        kind = body["type"]
        if kind not in _ALLOWED_CALLBACKS[interaction.type]:
            self._violation(f"interaction type {interaction.type} cannot be answered with callback type {kind}")
            raise DiscordError(400, 50035, "Invalid Form Body")
        interaction.callback = body
        data = body.get("data") or {}
        message = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            message = self._new_message(interaction.channel, data, files, interaction=interaction)
            message.loading = kind == DEFERRED_CHANNEL_MESSAGE
            interaction.original_id = message.id
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE):
            message = self.messages.get(interaction.source_message_id or 0)
            if message is None:
                self._violation(f"callback type {kind} for interaction {interaction.id}, which has no message")
                raise DiscordError(400, 50035, "Invalid Form Body")
            interaction.original_id = message.id
            if kind == UPDATE_MESSAGE:
                self._apply_edit(message, data, files)
        if query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        answer: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
        }
        if message is not None:
            answer["resource"] = {"type": kind, "message": message.to_api(self.base_url)}
        return 200, answer

    def _webhook_interaction(self, params: dict[str, str]) -> FakeInteraction:
        """The interaction behind a webhook call, checking what Discord checks of its token."""
        interaction = self._by_token.get(params["webhook_token"])
        if interaction is None or int(params["webhook_id"]) != self.application_id:
            raise _unknown("Webhook", 10015)
        age = time.monotonic() - interaction.dispatched_at
        if age > self.token_lifetime:
            self._violation(
                f"interaction {interaction.id}'s token used {age:.1f}s after it, past its {self.token_lifetime:g}s"
            )
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if interaction.callback is None:
            self._violation(f"webhook call for interaction {interaction.id} before it was acknowledged")
            raise _unknown("Webhook", 10015)
        return interaction

    def _interaction_message(self, interaction: FakeInteraction, message_id: str | None) -> FakeMessage:
        target = interaction.original_id if message_id in (None, "@original") else int(message_id or 0)
        if target is None or (target != interaction.original_id and target not in interaction.followup_ids):
            raise _unknown("Message", 10008)
        message = self.messages[target]
        if message.deleted:
            raise _unknown("Message", 10008)
        return message

    def _followup(
        self, params: dict[str, str], query: dict[str, str], body: Any, files: list[FakeFile]
    ) -> tuple[int, Any]:
        interaction = self._webhook_interaction(params)
        original = self.messages.get(interaction.original_id or 0)
        if original is not None and original.loading and interaction.callback_type == DEFERRED_CHANNEL_MESSAGE:
            # Discord: the first followup after a deferred response edits that response
            # (its flags, ephemeral included, are ignored) instead of posting a new message.
            message = self._apply_edit(original, body, files)
        else:
            message = self._new_message(interaction.channel, body, files, interaction=interaction)
            interaction.followup_ids.append(message.id)
        waits = query.get("wait") in ("1", "true", "True")
        return (200, message.to_api(self.base_url)) if waits else (204, None)

    def _get_webhook_message(self, params: dict[str, str], *_: Any) -> tuple[int, Any]:
        message = self._interaction_message(self._webhook_interaction(params), params.get("message_id"))
        return 200, message.to_api(self.base_url)

    def _edit_webhook_message(
        self, params: dict[str, str], _query: dict[str, str], body: Any, files: list[FakeFile]
    ) -> tuple[int, Any]:
        message = self._interaction_message(self._webhook_interaction(params), params.get("message_id"))
        return 200, self._apply_edit(message, body, files).to_api(self.base_url)

    def _delete_webhook_message(self, params: dict[str, str], *_: Any) -> tuple[int, Any]:
        message = self._interaction_message(self._webhook_interaction(params), params.get("message_id"))
        message.deleted = True
        return 204, None

    # ------------------------------------------------------------------ messages

    def _create_channel_message(
        self, params: dict[str, str], _query: dict[str, str], body: Any, files: list[FakeFile]
    ) -> tuple[int, Any]:
        channel = self.find_channel(int(params["channel_id"]))
        if channel is None:
            raise _unknown("Channel", 10003)
        nonce = body.get("nonce")
        key = (self.bot_user.id, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: "If true and nonce is present, it will be checked for uniqueness in the
            # past few minutes. If another message was created by the same author with the same
            # nonce, that message will be returned and no new message will be created."
            earlier = self._nonces.get(key)
            if earlier is not None and time.monotonic() - earlier[1] < self.nonce_window:
                message = self.messages[earlier[0]]
                if message.deleted:  # discord.py documents NotFound for a nonce deleted shortly before
                    raise _unknown("Message", 10008)
                return 200, message.to_api(self.base_url)
        message = self._new_message(channel, body, files)
        if nonce is not None:
            message.nonce = str(nonce)
            self._nonces[key] = (message.id, time.monotonic())
        return 200, message.to_api(self.base_url)

    def _create_dm(
        self, _params: dict[str, str], _query: dict[str, str], body: Any, _files: list[FakeFile]
    ) -> tuple[int, Any]:
        user_id = int(body["recipient_id"])
        member = self.members.get(user_id)
        user = member.user if member else FakeUser(user_id, f"user{user_id}")
        return 200, self.dm_channel(user).to_api(user)

    def _new_message(
        self, channel: FakeChannel, data: JSON, files: list[FakeFile], *, interaction: FakeInteraction | None = None
    ) -> FakeMessage:
        message = FakeMessage(
            self._snowflake(),
            channel.id,
            channel.guild_id,
            self.bot_user,
            flags=(data.get("flags") or 0) & EPHEMERAL,
            interaction_id=interaction.id if interaction else None,
            webhook_id=self.application_id if interaction else None,
        )
        self.messages[message.id] = message
        return self._apply_edit(message, data, files)

    def _apply_edit(self, message: FakeMessage, data: JSON, files: list[FakeFile]) -> FakeMessage:
        """Set the fields `data` carries, as a create or an edit does; uploads must fit the limit."""
        for upload in files:
            if len(upload.data) > self.attachment_size_limit:
                size, limit = len(upload.data), self.attachment_size_limit
                self._violation(f"uploaded {upload.filename!r} of {size} bytes, over the {limit}-byte limit")
                raise DiscordError(413, 40005, "Request entity too large")
        if message.loading:
            message.loading = False
        else:
            message.edits += 1
        if "content" in data:
            message.content = data["content"] or ""
            message.mentions = self._mentions(message.content, data.get("allowed_mentions"))
        for key in ("embeds", "components"):
            if key in data:
                setattr(message, key, data[key] or [])
        if "attachments" in data or files:
            message.attachments = self._attachments(message, data.get("attachments") or [], files)
        return message

    def _attachments(self, message: FakeMessage, wanted: list[JSON], files: list[FakeFile]) -> list[FakeFile]:
        uploaded = {f.id: f for f in files}
        kept = {f.id: f for f in message.attachments}
        result = []
        for entry in wanted:
            ident = int(entry["id"])
            if ident in kept:
                result.append(kept[ident])
            elif ident in uploaded:
                upload = uploaded.pop(ident)
                result.append(
                    FakeFile(
                        self._snowflake(), entry.get("filename") or upload.filename, upload.content_type, upload.data
                    )
                )
            else:
                self._violation(f"attachment {ident} is neither on message {message.id} nor uploaded as files[{ident}]")
        for upload in uploaded.values():  # files sent without an `attachments` entry are attached as well
            result.append(FakeFile(self._snowflake(), upload.filename, upload.content_type, upload.data))
        return result

    @staticmethod
    def _mentions(content: str, allowed: JSON | None) -> list[int]:
        """The users a message pings: those mentioned in it that `allowed_mentions` lets through."""
        mentioned = [int(uid) for uid in _MENTION.findall(content)]
        if allowed is None or "users" in (allowed.get("parse") or []):
            return mentioned
        permitted = {int(uid) for uid in allowed.get("users") or []}
        return [uid for uid in mentioned if uid in permitted]
