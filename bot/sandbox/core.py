"""The sandbox: its state, the life of its jobs, and the app that serves them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from bot.sandbox.app import build_app
from bot.sandbox.callbacks import CallbackSender
from bot.sandbox.config import SandboxConfig
from bot.sandbox.errors import ApiError
from bot.sandbox.media import render
from bot.sandbox.uploads import UploadStore
from bot.sandbox.videos import SandboxVideo, VideoPhase

# The share of an off-peak job's time it spends waiting for its hours (QUEUED).
OFF_PEAK_WAIT_SHARE = 0.5
# The kinds of timed events of a generation (sorted after their time: half-way first on a tie).
_HALF_WAY, _REPORT = 0, 1


@dataclass
class _Job:
    task: asyncio.Task[None]
    finish_now: asyncio.Event


class Sandbox:
    """An offline useapi.net PixVerse v2: state you can inspect, and the aiohttp app serving it.

    `config` may be changed while it runs (faults, credits, accounts); every request
    and every job reads it afresh.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.videos: dict[str, SandboxVideo] = {}
        self.uploads = UploadStore()
        self.request_log: list[tuple[str, str]] = []
        # The fields of the request that made each video, by video id (tests read what was sent).
        self.bodies: dict[str, dict[str, object]] = {}
        # Video files being downloaded right now, and the most there ever were at once.
        self.media_in_flight = 0
        self.media_peak = 0
        # Creates naming each account still being answered, and the most slots each account
        # was ever asked for at once (jobs it runs + such creates): above its maxJobs, the
        # client sent more than the account had room for.
        self.creates_in_flight: dict[str, int] = {}
        self.slot_demand_peak: dict[str, int] = {}
        self.rng = random.Random(self.config.random_seed)
        # Where it listens; set by `running_sandbox`, empty when only `app` is used.
        self.base_url = ""
        self._numbers = itertools.count(self.config.first_video_number)
        self._jobs: dict[str, _Job] = {}
        self._callbacks = CallbackSender()
        self.app: web.Application = build_app(self)

    def count(self, method: str, path_prefix: str) -> int:
        """How many requests with this method had a path starting with `path_prefix`."""
        return sum(1 for m, path in self.request_log if m == method.upper() and path.startswith(path_prefix))

    def next_number(self) -> int:
        return next(self._numbers)

    def find(self, video_id: str) -> SandboxVideo | None:
        """The video with this id, unless it does not exist or was deleted."""
        video = self.videos.get(video_id)
        return None if video is None or video.deleted else video

    def require(self, video_id: str) -> SandboxVideo:
        """The video with this id, else the documented 404."""
        video = self.find(video_id)
        if video is None:
            raise ApiError(404, f"Video {video_id} was not found or has been deleted")
        return video

    def in_scheduler(self) -> list[SandboxVideo]:
        """Jobs useapi.net's scheduler tracks, oldest first."""
        return [video for video in self.videos.values() if video.in_scheduler]

    def listed(self, video: SandboxVideo) -> bool:
        """Whether listings show the video yet (see `SandboxConfig.new_video_listing_delay`)."""
        age = (datetime.now(UTC) - video.created_at).total_seconds()
        return age >= self.config.new_video_listing_delay

    def executing(self, email: str) -> int:
        """Jobs counted against this account's maxJobs."""
        return sum(1 for video in self.in_scheduler() if video.email == email)

    @contextlib.contextmanager
    def create_arriving(self, email: str | None, *, off_peak: bool) -> Iterator[None]:
        """A create naming `email` is being answered: count it towards the account's slot demand.

        Off-peak creates and ones naming no account (useapi.net picks one with room) ask for no slot of a named account.
        """
        if email is None or off_peak:
            yield
            return
        self.creates_in_flight[email] = self.creates_in_flight.get(email, 0) + 1
        demand = self.executing(email) + self.creates_in_flight[email]
        self.slot_demand_peak[email] = max(self.slot_demand_peak.get(email, 0), demand)
        try:
            yield
        finally:
            self.creates_in_flight[email] -= 1

    def occupying(self, email: str) -> int:
        """Jobs counted against this account's PixVerse concurrency limit."""
        return sum(1 for video in self.videos.values() if video.occupies_pixverse and video.email == email)

    def start(self, video: SandboxVideo) -> None:
        """Accept a video and let it generate in the background."""
        self.videos[video.video_id] = video
        finish_now = asyncio.Event()
        task = asyncio.create_task(self._generate(video, finish_now), name=f"sandbox {video.video_id}")
        self._jobs[video.video_id] = _Job(task, finish_now)
        task.add_done_callback(lambda _: self._jobs.pop(video.video_id, None))

    def complete_now(self, video_id: str) -> None:
        """Let a generating video reach its final phase now instead of at its due time."""
        job = self._jobs.get(video_id)
        if job is None:
            raise KeyError(f"{video_id} is not generating")
        job.finish_now.set()

    def stop_tracking(self, video_id: str) -> None:
        """DELETE scheduler/{id}: useapi.net forgets a running job (no callbacks, its slot is
        free); PixVerse finishes it, unless the config says the generation stops as well, in
        which case it ends FAILED at once and its credits are given back."""
        video = self.find(video_id)
        if video is None or not video.in_scheduler:
            raise ApiError(404, f"Unable to locate running video_id {video_id}")
        video.untracked = True
        job = self._jobs.get(video_id)
        if self.config.scheduler_delete_stops_video and job is not None:
            job.task.cancel()
            video.cancelled = True
            video.phase = VideoPhase.FAILED
            self._refund(video)

    def delete(self, video_id: str) -> None:
        """Delete a video; one still generating stops (and never calls back)."""
        self.require(video_id).deleted = True
        job = self._jobs.get(video_id)
        if job is not None:
            job.task.cancel()

    async def close(self) -> None:
        """Stop every job and the callback session."""
        tasks = [job.task for job in self._jobs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._callbacks.close()

    async def _generate(self, video: SandboxVideo, finish_now: asyncio.Event) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        total = config.off_peak_seconds if video.off_peak else config.generation_seconds
        # An off-peak video waits for its hours (QUEUED) for the first part of its time.
        begin = started + total * OFF_PEAK_WAIT_SHARE if video.off_peak else started
        end = started + total
        # What happens before the end, in time order: progress reports spread evenly
        # over the generation, and the move from code 9 to code 10 half-way.
        steps = max(0, config.progress_callbacks) + 1
        events = [(begin + (end - begin) * step / steps, _REPORT) for step in range(1, steps)]
        events.append((begin + (end - begin) / 2, _HALF_WAY))
        if await _wait(finish_now, begin - loop.time()):
            events = []
        video.phase = VideoPhase.STARTING
        for at, event in sorted(events):
            if await _wait(finish_now, at - loop.time()):
                break
            if event == _HALF_WAY:
                video.phase = VideoPhase.GENERATING
            else:
                await self._report(video)
        await _wait(finish_now, end - loop.time())
        if video.outcome is VideoPhase.COMPLETED:
            video.media = await asyncio.to_thread(render, video.picture, config.video_pad_bytes)
        else:
            self._refund(video)
        video.phase = video.outcome
        await self._report(video)

    def _refund(self, video: SandboxVideo) -> None:
        # PixVerse gives back the credits of a generation it did not deliver.
        account = self.config.account(video.email)
        if account is not None:
            account.credits += video.cost

    async def _report(self, video: SandboxVideo) -> None:
        url = video.callback_url
        if url:
            await self._callbacks.post(url, video.to_json())


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True when the event cut the wait short."""
    try:
        # asyncio.timeout: wait_for on 3.11 can swallow a cancellation (the job would not stop).
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
