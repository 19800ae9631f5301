"""The ports: what the core needs from the outside world, in the core's own types.

Storage (`storage/`), the upstream client (`bot/upstream`) and the chat adapters
(`adapters/`) implement these. Tests use `Fake*` implementations of the same ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.domain import IN_FLIGHT_STATES, Job, JobState, ResultAction, UserRef
from bot.upstream import models as up


class JobStore(Protocol):
    """Persistence of jobs. Every state change is a compare-and-set."""

    async def add(self, job: Job) -> None:
        """Insert a new job (its id is unique)."""

    async def get(self, job_id: str) -> Job | None: ...

    async def transition(
        self, job_id: str, expected: JobState | Iterable[JobState], new_state: JobState, **changes: Any
    ) -> Job | None:
        """Move a job from one of `expected` to `new_state`, writing `changes` with it.

        Returns the updated job, or None when the job is not in an expected state
        (someone else moved it first). This is what makes duplicate callbacks and
        restart races harmless.
        """

    async def update(self, job_id: str, **changes: Any) -> Job | None:
        """Change non-state fields (status message id, not_before, attempts …)."""

    async def in_states(self, states: Iterable[JobState]) -> list[Job]:
        """Jobs in any of `states`, oldest first."""

    async def recent_for_user(self, user: UserRef, limit: int = 10) -> list[Job]:
        """A user's newest jobs first."""

    async def find_by_video_id(self, video_id: str) -> Job | None: ...

    async def queue_position(self, job: Job) -> int:
        """1-based position of a queued job among all queued jobs (oldest first); 0 when not queued."""

    async def count_in_flight_by_user(self, states: Iterable[JobState] = IN_FLIGHT_STATES) -> dict[str, int]:
        """How many jobs each user (UserRef.key) has in `states`; users with none are absent."""


class BlobStore(Protocol):
    """Small binary objects the core must keep across restarts (uploaded images)."""

    async def put(self, data: bytes, content_type: str) -> str: ...

    async def get(self, blob_id: str) -> tuple[bytes, str] | None: ...

    async def delete(self, blob_id: str) -> bool: ...


class Upstream(Protocol):
    """The part of the PixVerse client the core uses (`bot.upstream.client.PixVerseClient`)."""

    async def upload_file(self, data: bytes, content_type: str, *, email: str | None = None) -> up.UploadedFile: ...

    async def create_video(self, request: up.CreateVideoRequest) -> up.VideoCreated: ...

    async def upscale_video(self, request: up.UpscaleRequest) -> up.VideoCreated: ...

    async def extend_video(self, request: up.ExtendRequest) -> up.VideoCreated: ...

    async def find_submitted(
        self, reply_ref: str, *, email: str | None = None, since: datetime | None = None
    ) -> str | None:
        """The video id of an earlier create/upscale/extend sent with `reply_ref`, if it exists."""

    async def list_videos(self, *, email: str | None = None, limit: int = 40, offset: int = 0) -> up.VideoPage: ...

    async def get_video(self, video_id: str) -> up.Video | None:
        """The video, or None while it is still processing (upstream 404)."""

    async def scheduler_available(self) -> up.SchedulerAvailability: ...

    async def features(self, *, email: str | None = None) -> up.Features: ...

    async def download(self, url: str, destination: Path, *, max_bytes: int) -> int:
        """Stream `url` into `destination`; returns the size. Raises if over `max_bytes`."""


class ProgressStage(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    GENERATING = "generating"
    WAITING = "waiting"  # queued behind an account problem (credits, needs attention)


@dataclass(frozen=True, slots=True)
class Progress:
    stage: ProgressStage
    queue_position: int | None = None
    elapsed_seconds: int | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class VideoDelivery:
    """A finished video for the notifier: a file to upload, or a link when too large."""

    caption: str
    buttons: Sequence[ResultAction]
    file: Path | None = None
    link: str | None = None
    size_bytes: int | None = None


class DeliveryFailed(Exception):
    """A notifier could not post; `retry` says whether trying later can help.

    Not retryable: the user blocked the bot, the chat is gone. Retryable: the
    platform is down or rate-limited beyond what the adapter waits out.
    """

    def __init__(self, reason: str, *, retry: bool) -> None:
        self.retry = retry
        super().__init__(reason)


class Notifier(Protocol):
    """How the core talks back to a chat platform. One per platform."""

    # The longest caption the platform shows with a video (Telegram 1024, Discord 2000).
    caption_limit: int

    def upload_limit(self, job: Job) -> int:
        """The largest file (bytes) this platform accepts for this job's chat."""

    async def progress(self, job: Job, progress: Progress) -> str | None:
        """Show or update the job's progress message; returns its id to persist."""

    async def deliver(self, job: Job, delivery: VideoDelivery) -> None:
        """Post the finished video (or its link) with the result buttons."""

    async def failed(self, job: Job, reason: str) -> None:
        """Tell the requester, in plain words, why the job produced no video."""

    async def alert_operator(self, text: str) -> None:
        """Something needs the operator (out of credits, account needs attention)."""
