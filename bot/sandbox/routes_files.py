"""POST files, and the uploaded files at their media urls."""

from __future__ import annotations

from aiohttp import web

from bot.sandbox.errors import ApiError
from bot.sandbox.uploads import UPLOAD_MEDIA_PREFIX
from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both, origin, queried_account


class FileRoutes(RouteGroup):
    """Uploads of images (for first frames) and videos (for extend)."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("POST", f"{API_PREFIX}/files", self.upload),
            web.get(f"{UPLOAD_MEDIA_PREFIX}{{name}}", self.media),
        ]

    async def upload(self, request: web.Request) -> web.Response:
        """The raw body is the file; its Content-Type must be one the docs list."""
        queried_account(self.sandbox, request)
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        upload = self.sandbox.uploads.add(content_type, await request.read(), origin(request))
        return web.json_response(upload.to_json())

    async def media(self, request: web.Request) -> web.Response:
        upload = self.sandbox.uploads.get(request.match_info["name"])
        if upload is None:
            raise ApiError(404, f"No such file: {request.path}")
        return web.Response(body=upload.data, content_type=upload.content_type)
