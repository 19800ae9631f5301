"""The bot's own small HTTP server: upstream callbacks (`replyUrl`) and /healthz.

Each job gets its own callback URL carrying an HMAC of its id, so only the upstream
(which we told the URL) can address a job; forged or unknown ids are refused. The
body is only a hint — the tracker confirms with the upstream before acting (see
bot/tracker.py) — so a replayed or doctored body changes nothing.
Adapters add their own routes (Telegram webhook) to the same app before it starts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from aiohttp import web

from bot.domain import RUNNING_STATES, Job
from bot.ports import JobStore
from bot.tracker import Tracker
from bot.upstream.client import parse_callback
from bot.upstream.errors import InvalidResponse
from bot.upstream.models import Video

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "/callbacks/pixverse"


class CallbackSigner:
    def __init__(self, secret: bytes, public_url: str | None) -> None:
        self._secret = secret
        self._public_url = public_url.rstrip("/") if public_url else None

    def token(self, job_id: str) -> str:
        return hmac.new(self._secret, job_id.encode(), hashlib.sha256).hexdigest()[:32]

    def verify(self, job_id: str, token: str) -> bool:
        # Bytes, not str: compare_digest raises on non-ASCII text (a forged URL would be a 500).
        return hmac.compare_digest(self.token(job_id).encode(), token.encode("utf-8", "replace"))

    def reply_url(self, job_id: str) -> str | None:
        """The job's callback URL, or None when no public URL is configured (polling only)."""
        if not self._public_url:
            return None
        return f"{self._public_url}{CALLBACK_PREFIX}/{job_id}/{self.token(job_id)}"


class CallbackHandler:
    """Turns authenticated upstream callbacks into tracker work."""

    def __init__(self, *, signer: CallbackSigner, jobs: JobStore, tracker: Tracker) -> None:
        self._signer = signer
        self._jobs = jobs
        self._tracker = tracker

    async def handle(self, job_id: str, token: str, body: object) -> tuple[int, str]:
        """Returns (HTTP status, reason). 200 only for callbacks that are ours."""
        if not self._signer.verify(job_id, token):
            log.warning("rejected a callback with a bad token for job %r", job_id)
            return 403, "forbidden"
        job = await self._jobs.get(job_id)
        if job is None:
            return 404, "unknown job"
        try:
            video = parse_callback(body)
        except InvalidResponse:
            return 400, "not a video object"
        if not self._is_about(job, video):
            log.warning("callback for job %s names another video (%s); ignored", job.id, video.video_id)
            return 409, "video does not belong to this job"
        if job.state not in RUNNING_STATES:
            return 200, "already settled"  # duplicates and late replays change nothing
        if video.is_finished:
            await self._tracker.confirm(job)
        else:
            await self._tracker.apply(job, video)
        return 200, "ok"

    @staticmethod
    def _is_about(job: Job, video: Video) -> bool:
        if video.replyRef and video.replyRef != job.id:
            return False
        return not (job.video_id and video.video_id and video.video_id != job.video_id)


def build_http_app(callbacks: CallbackHandler) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def callback(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, reason = await callbacks.handle(request.match_info["job_id"], request.match_info["token"], body)
        return web.json_response({"status": reason}, status=status)

    app.router.add_get("/healthz", healthz)
    app.router.add_post(CALLBACK_PREFIX + "/{job_id}/{token}", callback)
    return app
