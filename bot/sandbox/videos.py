"""A sandbox video: its request, its life (GENERATING -> a final phase) and its JSON shape."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from bot.sandbox.media import Picture, RenderedVideo

# The useapi.net user every sandbox video belongs to (the `user:` part of video ids).
SANDBOX_USER_ID = 1000
VIDEO_MEDIA_PREFIX = "/media/videos/"


class VideoPhase(Enum):
    """Where a video is in its life; the value is the raw `video_status` code.

    The documented codes (seeds/v2/get-pixverse-videos.md): 5 QUEUED, final although
    not made yet (an off-peak video waiting for its hours), 9 and 10 GENERATING (9 for
    the first half of the generation here, 10 after), 1 COMPLETED, 7 MODERATED.
    FAILED and UNLISTED are sandbox faults, codes the table does not list: FAILED ends
    final with an `error` text (the one way the docs' video model can say it failed),
    UNLISTED ends final without one.
    """

    QUEUED = 5
    STARTING = 9
    GENERATING = 10
    COMPLETED = 1
    MODERATED = 7
    FAILED = 8  # sandbox fault
    UNLISTED = 42  # sandbox fault

    @property
    def status_name(self) -> str:
        """`video_status_name`: both generating codes are GENERATING."""
        return VideoPhase.GENERATING.name if self is VideoPhase.STARTING else self.name

    @property
    def final(self) -> bool:
        """`video_status_final` as the table gives it (QUEUED is final there)."""
        return self not in {VideoPhase.STARTING, VideoPhase.GENERATING}

    @property
    def over(self) -> bool:
        """Nothing about the video will change any more."""
        return self not in {VideoPhase.QUEUED, VideoPhase.STARTING, VideoPhase.GENERATING}


# The `error` text of a video that ends in the FAILED fault.
FAILURE_ERROR = "Generation failed (sandbox fault)"
# The `error` text of a video whose generation DELETE scheduler stopped
# (`SandboxConfig.scheduler_delete_stops_video`).
CANCELLED_ERROR = "Generation cancelled (DELETE scheduler)"


def account_id_of(email: str) -> int:
    """A stable numeric PixVerse account id for an email."""
    return zlib.crc32(email.lower().encode()) % 100_000_000


def iso_utc(moment: datetime, *, millis: bool = False) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


@dataclass
class SandboxVideo:
    """One video the sandbox generates, from acceptance to its final phase."""

    number: int
    email: str
    model: str
    prompt: str
    seed: int
    quality: str
    duration: int
    video_duration: int
    aspect_ratio: str
    off_peak: bool
    cost: int
    outcome: VideoPhase  # the final phase it will reach, decided at acceptance
    picture: Picture
    media_origin: str  # scheme://host:port the client used, for absolute media urls
    reply_url: str | None = None
    reply_ref: str | None = None
    original_video_id: str = ""
    upscaled: bool = False
    extended: bool = False
    image: bool = False  # an image template's result: a picture, listed under `image_id`
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    phase: VideoPhase = VideoPhase.STARTING
    untracked: bool = False  # removed from useapi's scheduler (DELETE scheduler/{id})
    deleted: bool = False
    cancelled: bool = False  # stopped by DELETE scheduler/{id} (when the config says it stops)
    media: RenderedVideo | None = None

    def __post_init__(self) -> None:
        if self.off_peak:
            self.phase = VideoPhase.QUEUED  # until its off-peak hours come

    @property
    def video_id(self) -> str:
        """The id (an image result's `image_id`): it names the account that holds it."""
        what = "image" if self.image else "video"
        return f"user:{SANDBOX_USER_ID}-pixverse:{self.email}-{what}:{self.number}"

    @property
    def id_key(self) -> str:
        """The field the id goes in: `image_id` for a picture, else `video_id`."""
        return "image_id" if self.image else "video_id"

    @property
    def in_scheduler(self) -> bool:
        """Counted against useapi.net's maxJobs and listed by GET scheduler."""
        return not (self.off_peak or self.untracked or self.deleted or self.phase.over)

    @property
    def occupies_pixverse(self) -> bool:
        """Counted against PixVerse's own concurrency limit, tracked or not."""
        return not (self.off_peak or self.deleted or self.phase.over)

    @property
    def callback_url(self) -> str | None:
        """Where to report progress, or None: off-peak, untracked and deleted jobs stay silent."""
        return None if self.off_peak or self.untracked or self.deleted else self.reply_url

    def media_url(self, extension: str) -> str:
        return f"{self.media_origin}{VIDEO_MEDIA_PREFIX}{self.number}.{extension}"

    def to_json(self) -> dict[str, Any]:
        """The video object of GET videos/{id}, GET videos and replyUrl callbacks."""
        done = self.phase is VideoPhase.COMPLETED
        body: dict[str, Any] = {
            self.id_key: self.video_id,
            "video_status": self.phase.value,
            "video_status_name": self.phase.status_name,
            "video_status_final": self.phase.final,
            "account_id": account_id_of(self.email),
            "created_at": iso_utc(self.created_at),
            "first_frame": self.media_url("jpg") if done else "",
            "output_width": self.picture.width if done else 0,
            "output_height": self.picture.height if done else 0,
            "original_video_id": self.original_video_id or 0,
            "upscaled": int(self.upscaled),
            "extended": int(self.extended),
            "prompt": self.prompt,
            "negative_prompt": "",
            "model": self.model,
            "quality": self.quality,
            "seed": self.seed,
            "duration": self.duration,
            "video_duration": self.video_duration,
            "aspect_ratio": self.aspect_ratio,
            # A picture's url is the picture itself.
            "url": self.media_url("jpg" if self.image else "mp4") if done else "",
            "off_peak": int(self.off_peak),
        }
        if self.phase is VideoPhase.FAILED:
            body["error"] = CANCELLED_ERROR if self.cancelled else FAILURE_ERROR
        if self.reply_ref is not None:
            body["replyRef"] = self.reply_ref
        return body

    def scheduler_entry(self, id_key: str) -> dict[str, Any]:
        """An entry of GET scheduler (`videoId`) or GET scheduler/available (`video_id`)."""
        elapsed = int((datetime.now(UTC) - self.created_at).total_seconds())
        minutes, seconds = divmod(elapsed, 60)
        return {
            id_key: self.video_id,
            "started": iso_utc(self.created_at, millis=True),
            "elapsed": f"{minutes:02d}:{seconds:02d}",
            "replyUrl": self.reply_url or "",
            "replyRef": self.reply_ref or "",
        }
