"""The bot's own small HTTP server: upstream callbacks (`replyUrl`) and /healthz.

Each job gets its own callback URL carrying an HMAC of its id under the bot's webhook
secret, and only the upstream is told that URL (in the job's create request, over
HTTPS). A callback with a valid token therefore comes from the upstream, and its
body is applied as the upstream's word, without asking again (`Tracker.apply`): to
address a job at all a forger needs the secret (or the URL the upstream was given).
Even then the body must name the job's own video, and it can only move the job by
a legal compare-and-set from a running state: a replay of a genuine callback, or a
late duplicate, finds the job settled and changes nothing.
Adapters add their own routes (Telegram webhook) to the same app before it starts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from aiohttp import web

from bot.domain import IN_FLIGHT_STATES, RUNNING_STATES, Job
from bot.ports import JobStore
from bot.tracker import Tracker
from bot.upstream.client import parse_callback
from bot.upstream.errors import InvalidResponse
from bot.upstream.models import Video, VideoStage

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

    @property
    def enabled(self) -> bool:
        """Whether jobs get callback URLs (a public URL is configured)."""
        return self._public_url is not None

    def reply_url(self, job_id: str) -> str | None:
        """The job's callback URL, or None when no public URL is configured (polling only)."""
        if not self._public_url:
            return None
        return f"{self._public_url}{CALLBACK_PREFIX}/{job_id}/{self.token(job_id)}"


class CallbackHandler:
    """Applies authenticated upstream callbacks to their jobs."""

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
        if job.state in IN_FLIGHT_STATES and not job.video_id:
            # Called back before the create call's answer was recorded: there is no video
            # id to check it against yet. Look at the job on the next poll instead.
            self._tracker.poll_soon(job.id)
            return 202, "job not submitted yet; it will be looked up"
        if not self._is_about(job, video):
            log.warning("callback for job %s names another video (%s); ignored", job.id, video.video_id)
            return 409, "video does not belong to this job"
        if job.state not in RUNNING_STATES:
            return 200, "already settled"  # duplicates and late replays change nothing
        if video.stage is VideoStage.UNEXPECTED:
            # Not a status we act on (say, COMPLETED without its url): ask the upstream soon.
            self._tracker.poll_soon(job.id)
        await self._tracker.apply(job, video)
        return 200, "ok"

    @staticmethod
    def _is_about(job: Job, video: Video) -> bool:
        """The body names this job's video (and, if it says, this job's replyRef)."""
        if video.replyRef and video.replyRef != job.id:
            return False
        return bool(job.video_id) and video.video_id == job.video_id


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
