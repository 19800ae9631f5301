"""GET scheduler, GET scheduler/available and DELETE scheduler/{video_id}."""

from __future__ import annotations

from aiohttp import web

from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both


class SchedulerRoutes(RouteGroup):
    """What useapi.net's scheduler tracks, and what room each account has left."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("GET", f"{API_PREFIX}/scheduler", self.running),
            *on_both("GET", f"{API_PREFIX}/scheduler/available", self.available),
            web.delete(f"{API_PREFIX}/scheduler/{{video_id}}", self.stop_tracking),
        ]

    async def running(self, request: web.Request) -> web.Response:
        listed = [video for video in self.sandbox.in_scheduler() if self.sandbox.listed(video)]
        return web.json_response([video.scheduler_entry("videoId") for video in listed])

    async def available(self, request: web.Request) -> web.Response:
        capacity = []
        for account in self.sandbox.config.accounts:
            executing = self.sandbox.executing(account.email)
            capacity.append(
                {
                    "email": account.email,
                    "maxJobs": account.max_jobs,
                    "executing": executing,
                    "available": max(0, account.max_jobs - executing),
                }
            )
        # The counts above are never late (admission uses them); only the job list is.
        executing_jobs = [
            video.scheduler_entry("video_id") for video in self.sandbox.in_scheduler() if self.sandbox.listed(video)
        ]
        return web.json_response({"executing": executing_jobs, "available": capacity})

    async def stop_tracking(self, request: web.Request) -> web.Response:
        """Stop tracking a job: it frees a maxJobs slot and sends no more callbacks; PixVerse
        still generates it unless the config says otherwise (`Sandbox.stop_tracking`)."""
        self.sandbox.stop_tracking(request.match_info["video_id"])
        return web.Response(status=204)
