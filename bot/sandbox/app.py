"""The sandbox's aiohttp application: middleware and every route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.sandbox.routes_accounts import AccountRoutes
from bot.sandbox.routes_catalog import CatalogRoutes
from bot.sandbox.routes_files import FileRoutes
from bot.sandbox.routes_generation import GenerationRoutes
from bot.sandbox.routes_scheduler import SchedulerRoutes
from bot.sandbox.routes_videos import VideoRoutes
from bot.sandbox.web_support import sandbox_middleware

if TYPE_CHECKING:
    from bot.sandbox.core import Sandbox

# The docs accept uploads up to 5 GB; the sandbox keeps them in memory, so less.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


def build_app(sandbox: Sandbox) -> web.Application:
    app = web.Application(middlewares=[sandbox_middleware(sandbox)], client_max_size=MAX_UPLOAD_BYTES)
    # aiohttp before 3.10 matches in registration order: videos/effects must precede videos/{video_id}.
    for group in (CatalogRoutes, GenerationRoutes, VideoRoutes, SchedulerRoutes, AccountRoutes, FileRoutes):
        app.add_routes(group(sandbox).routes())

    async def close_sandbox(_: web.Application) -> None:
        await sandbox.close()

    app.on_cleanup.append(close_sandbox)
    return app
