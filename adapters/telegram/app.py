"""Building and running the Telegram side: the Bot, the Dispatcher with its routers, polling or a webhook.

Polling is the default; with several bot processes on one database only one polls
at a time (Telegram allows one `getUpdates` per bot), the one holding the polling lock,
and another takes over when it dies. With BOT_PUBLIC_URL set, updates come by webhook
instead: `POST {BOT_PUBLIC_URL}/telegram/webhook` on the bot's own HTTP server (the core's
aiohttp app) of every process, authenticated by a secret token kept in the database (one
for all processes), each update taken once by whichever process it reaches first. With
TELEGRAM_API_BASE set, every request goes to that self-hosted Bot API server, whose
larger limits (2000 MB uploads, no 20 MB download cap) then apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommandScopeAllChatAdministrators, BotCommandScopeDefault
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from adapters.telegram.activity import Activity
from adapters.telegram.admins import ChatAdmins
from adapters.telegram.albums import AlbumParts, Albums
from adapters.telegram.handlers import routers
from adapters.telegram.middlewares import Admission, Counted, FirstDelivery
from adapters.telegram.notifier import Pacing, TelegramNotifier
from adapters.telegram.texts import ADMIN_COMMANDS, USER_COMMANDS
from bot.bootstrap import Core
from bot.domain import Platform
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
# The process-wide lock of the one process that polls (`bot.ports.Coordinator.hold`).
POLLING_LOCK = "telegram-polling"
_MB = 1024 * 1024
# What a bot may upload: the cloud Bot API's cap, and a local Bot API server's.
CLOUD_UPLOAD_LIMIT = 50 * _MB
LOCAL_UPLOAD_LIMIT = 2000 * _MB


def build_bot(settings: Settings) -> Bot:
    """The Bot, talking to api.telegram.org or to the self-hosted server at TELEGRAM_API_BASE.

    aiogram's `is_local` stays off: it would make *every* download a disk read. A
    server run with `--local` answers getFile with an absolute path, which
    `files.download_file` reads from disk itself; other paths are downloaded over HTTP.
    """
    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set: the Telegram adapter cannot start.")
    api = TelegramAPIServer.from_base(settings.telegram_api_base) if settings.telegram_api_base else PRODUCTION
    session = AiohttpSession(api=api)
    session.middleware(PinnedResponseTypes())
    return Bot(
        settings.telegram_bot_token.get_secret_value(),
        session=session,
        # Replies to a message deleted meanwhile are posted anyway rather than refused.
        default=DefaultBotProperties(allow_sending_without_reply=True),
    )


class PinnedResponseTypes(BaseRequestMiddleware):
    """Keeps alive the `Response[...]` model aiogram reads each method's answer with.

    aiogram parametrizes `Response[method.__returning__]` anew for every answer, and
    pydantic caches parametrized models only weakly: each garbage collection drops them,
    and the next answer rebuilds the model and its validator from scratch (about a
    tenth of the bot's CPU per command under a burst). One strong reference per method
    type, made on its first call, keeps the cached model; there are only so many methods.
    """

    def __init__(self) -> None:
        self._pinned: dict[type[TelegramMethod[Any]], type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._pinned:
            self._pinned[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def build_dispatcher(core: Core, updates: Activity, admins: ChatAdmins) -> Dispatcher:
    """The Dispatcher: `core` and `admins` reach every handler by name; each update is counted while handled."""
    albums = Albums()
    dispatcher = Dispatcher(core=core, admins=admins, albums=albums)
    dispatcher.update.outer_middleware(Counted(updates))
    dispatcher.message.outer_middleware(AlbumParts(albums))
    dispatcher.message.middleware(Admission())
    dispatcher.callback_query.middleware(Admission())
    dispatcher.include_routers(*routers())
    return dispatcher


def operator_chat_ids(settings: Settings) -> list[int]:
    """Private chats of the Telegram operators in BOT_ADMIN_IDS (`telegram:<id>`)."""
    ids = (key.partition(":")[2] for key in settings.bot_admin_ids if key.startswith(f"{Platform.TELEGRAM}:"))
    return [int(user_id) for user_id in ids if user_id.isdigit()]


class TelegramAdapter:
    """The running Telegram side of the bot; made and stopped by `running_telegram`."""

    def __init__(self, core: Core, pacing: Pacing) -> None:
        settings = core.settings
        self.core = core
        self.bot = build_bot(settings)
        self.updates = Activity()
        self.admins = ChatAdmins(self.bot)
        self.dispatcher = build_dispatcher(core, self.updates, self.admins)
        self.notifier = TelegramNotifier(
            self.bot,
            upload_limit=LOCAL_UPLOAD_LIMIT if settings.telegram_api_base else CLOUD_UPLOAD_LIMIT,
            pacing=pacing,
            operator_chat_ids=operator_chat_ids(settings),
        )
        self.webhook_url: str | None = None
        self._polling: asyncio.Task[None] | None = None
        self._polling_lease: asyncio.Task[None] | None = None
        # Set by the dispatcher's startup, at each start of polling (it may start again
        # here after another process held the polling lock).
        self._polling_up = asyncio.Event()
        self.dispatcher.startup.register(self._polling_started)
        self._catch_up: asyncio.Task[None] | None = None

    async def start(self) -> None:
        me = await self.bot.me()  # a wrong token fails here, before anything is registered
        log.info("Telegram bot @%s (id %s) starting", me.username, me.id)
        await self.bot.set_my_commands(list(USER_COMMANDS), scope=BotCommandScopeDefault())
        await self.bot.set_my_commands(
            list(USER_COMMANDS + ADMIN_COMMANDS), scope=BotCommandScopeAllChatAdministrators()
        )
        self.core.notifiers.register(Platform.TELEGRAM, self.notifier)
        if self.core.settings.bot_public_url:
            await self._install_webhook(self.core.settings.bot_public_url)
        else:
            await self._poll_if_first()
            self._polling_lease = asyncio.create_task(self._keep_polling_lease(), name="telegram-polling-lease")
        # Outcomes that finished while no Telegram adapter ran go out now, not at the next retry tick.
        self._catch_up = asyncio.create_task(self.core.deliverer.deliver_pending(), name="telegram-catch-up")

    async def stop(self) -> None:
        """Stop taking updates, let handlers and posts under way finish, then close the session."""
        # From now on the core keeps Telegram outcomes for the next start instead of trying us.
        self.core.notifiers.unregister(Platform.TELEGRAM)
        try:
            if self._polling_lease is not None:
                self._polling_lease.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._polling_lease
            if self._polling is not None:
                await self._stop_polling(self._polling)
            await self.updates.stop()
            await self.notifier.close()
            if self._catch_up is not None:
                await self._catch_up
        finally:
            await self.bot.session.close()

    async def _poll_if_first(self) -> None:
        """Poll if no other process does (alone, this process always does)."""
        if await self.core.coordinator.hold(POLLING_LOCK):
            await self._start_polling()

    async def _keep_polling_lease(self) -> None:
        """Every heartbeat: start polling once the lock is this process's (its holder died),
        and stop if it was lost (this process's database session broke: another may poll now)."""
        while True:
            await asyncio.sleep(self.core.instance.heartbeat_interval)
            try:
                polling = self._polling is not None and not self._polling.done()
                if not polling:
                    await self._poll_if_first()
                elif not await self.core.coordinator.hold(POLLING_LOCK):
                    log.warning("lost the Telegram polling lock; another process polls now")
                    assert self._polling is not None
                    await self._stop_polling(self._polling)
                    self._polling = None
            except Exception:
                log.exception("checking the Telegram polling lock failed; trying again")

    async def _start_polling(self) -> None:
        # getUpdates is refused while a webhook (say, from an earlier run with a public URL) is set.
        await self.bot.delete_webhook()
        started = self._polling_up
        started.clear()
        self._polling = asyncio.create_task(
            self.dispatcher.start_polling(
                self.bot,
                handle_signals=False,  # SIGINT/SIGTERM belong to the process, not to aiogram
                close_bot_session=False,  # stop() closes it, after the notifier is done with it
                allowed_updates=self.dispatcher.resolve_used_update_types(),
            ),
            name="telegram-polling",
        )
        # stop_polling() refuses to stop a polling that has not started yet.
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiting, self._polling}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._polling.done():
            await self._polling  # it ended at once: raise why

    async def _stop_polling(self, polling: asyncio.Task[None]) -> None:
        if not polling.done():
            await self.dispatcher.stop_polling()
        try:
            await polling
        except Exception:  # aiogram retries network errors itself: anything here is a bug
            log.exception("Telegram polling had stopped with an error")

    async def _polling_started(self) -> None:
        self._polling_up.set()

    async def _install_webhook(self, public_url: str) -> None:
        # Shared by every process (Telegram sends it back in a header): kept in the database.
        secret = self.core.telegram_webhook_secret
        # Behind a load balancer a redelivered update may reach another process: one takes it.
        self.dispatcher.update.outer_middleware(FirstDelivery(self.core))
        requests = SimpleRequestHandler(self.dispatcher, self.bot, secret_token=secret, handle_in_background=False)

        async def webhook(request: web.Request) -> web.StreamResponse:
            if self.updates.stopping.is_set():
                return web.Response(status=503)  # Telegram delivers it again later
            # SimpleRequestHandler answers 401 when X-Telegram-Bot-Api-Secret-Token is not `secret`.
            return await requests.handle(request)

        # Added directly, not with requests.register(): that would also close the bot's
        # session when the HTTP server stops, which is stop()'s job.
        self.core.http_app.router.add_post(WEBHOOK_PATH, webhook)
        self.webhook_url = public_url.rstrip("/") + WEBHOOK_PATH
        await self.bot.set_webhook(
            self.webhook_url, secret_token=secret, allowed_updates=self.dispatcher.resolve_used_update_types()
        )
        log.info("Telegram updates come by webhook to %s", self.webhook_url)


@contextlib.asynccontextmanager
async def running_telegram(core: Core, *, pacing: Pacing | None = None) -> AsyncIterator[TelegramAdapter]:
    """Run the Telegram adapter on a started core; it returns at once, and stops on exit.

    In webhook mode (BOT_PUBLIC_URL set) enter this before serving `core.http_app`:
    the webhook route is added to it here.
    """
    adapter = TelegramAdapter(core, pacing or Pacing())
    try:
        await adapter.start()
        yield adapter
    finally:
        await adapter.stop()
