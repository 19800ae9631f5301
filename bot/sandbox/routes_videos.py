"""GET/DELETE videos, and the rendered files at their media urls."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.sandbox.errors import ApiError
from bot.sandbox.videos import VIDEO_MEDIA_PREFIX
from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both, queried_account, query_int

DEFAULT_PAGE_SIZE = 40
_MEDIA_TYPES = {"mp4": "video/mp4", "jpg": "image/jpeg"}


class VideoRoutes(RouteGroup):
    """Reading and deleting videos."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("GET", f"{API_PREFIX}/videos", self.list_videos),
            web.get(f"{API_PREFIX}/videos/{{video_id}}", self.get_video),
            web.delete(f"{API_PREFIX}/videos/{{video_id}}", self.delete_video),
            web.get(f"{VIDEO_MEDIA_PREFIX}{{name}}", self.media),
        ]

    async def list_videos(self, request: web.Request) -> web.Response:
        """Newest first, generating ones included (after `listing_delay`)."""
        if self.sandbox.config.listing_delay > 0:
            await asyncio.sleep(self.sandbox.config.listing_delay)
        account = queried_account(self.sandbox, request)
        limit = query_int(request, "limit", default=DEFAULT_PAGE_SIZE, minimum=1)
        offset = query_int(request, "offset", default=0, minimum=0)
        mine = [
            v
            for v in self.sandbox.videos.values()
            if v.email == account.email and not v.deleted and self.sandbox.listed(v)
        ]
        mine.sort(key=lambda video: video.number, reverse=True)
        page = mine[offset : offset + limit]
        body = {"data": [video.to_json() for video in page], "next_offset": offset + len(page), "total": len(mine)}
        return web.json_response(body)

    async def get_video(self, request: web.Request) -> web.Response:
        """404 while the video is still processing (an off-peak one waiting too), as the docs say."""
        video_id = request.match_info["video_id"]
        video = self.sandbox.require(video_id)
        if not video.phase.over:
            raise ApiError(404, f"Video {video_id} is still processing")
        return web.json_response(video.to_json())

    async def delete_video(self, request: web.Request) -> web.Response:
        video_id = request.match_info["video_id"]
        self.sandbox.delete(video_id)
        return web.json_response({"video_id": video_id, "deleted": True})

    async def media(self, request: web.Request) -> web.StreamResponse:
        """The MP4 (`<n>.mp4`) or first frame (`<n>.jpg`) of a completed video."""
        number, _, extension = request.match_info["name"].partition(".")
        video = next((v for v in self.sandbox.videos.values() if str(v.number) == number), None)
        if video is None or video.deleted or video.media is None or extension not in _MEDIA_TYPES:
            raise ApiError(404, f"No such file: {request.path}")
        body = video.media.mp4 if extension == "mp4" else video.media.first_frame_jpeg
        if extension != "mp4":
            return web.Response(body=body, content_type=_MEDIA_TYPES[extension])
        sandbox = self.sandbox
        sandbox.media_in_flight += 1
        sandbox.media_peak = max(sandbox.media_peak, sandbox.media_in_flight)
        try:
            response = web.StreamResponse(headers={"Content-Type": _MEDIA_TYPES[extension]})
            response.content_length = len(body)
            await response.prepare(request)
            # Headers first, then the wait: the client is mid-download while it is held.
            await asyncio.sleep(sandbox.config.media_delay)
            await response.write(body)
            await response.write_eof()
            return response
        finally:
            sandbox.media_in_flight -= 1
