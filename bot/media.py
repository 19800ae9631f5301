"""Videos users send (/modify, /extend on their own video): checked by content, then uploaded.

A video is opened with PyAV before anything is uploaded or charged: it must be a real
MP4 or MOV container (not just a file named so) holding a video stream, no longer and
no larger than the limits. What fails gets a message naming what is wrong and what is
allowed. A video that passes goes up with POST files (seeds/v2/post-pixverse-files.md)
as `video/mp4` or `video/quicktime`, and the job refers to it by the `path` the upload
answers (`video_path`). Uploading costs no credits; the job is charged like any other.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av

from bot.blobs import human_size
from bot.errors import BotError, InvalidInput
from bot.upstream import errors as ue
from bot.upstream.models import UploadedFile

ALLOWED_VIDEO_TYPES = "MP4 or MOV"
# POST files takes files up to 5 GB (seeds/v2/post-pixverse-files.md).
UPLOAD_MAX_BYTES = 5 * 1000**3
# FFmpeg's one demuxer for the ISO base media family (MP4, MOV, 3GP, M4A …).
_ISO_MEDIA_DEMUXER = "mov"
# The `ftyp` brand of a QuickTime movie; other brands of that family are MP4 flavours,
# except 3GP/3G2 (phones' format), which is named and refused.
_QUICKTIME_BRAND = b"qt  "
_3GP_BRANDS = (b"3gp", b"3g2")


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """How large and how long a video a user sends may be."""

    max_bytes: int
    max_seconds: int

    def describe(self) -> str:
        """The limits as help and refusals say them."""
        return f"{ALLOWED_VIDEO_TYPES}, at most {self.max_seconds} seconds and {human_size(self.max_bytes)}"


@dataclass(frozen=True, slots=True)
class UserVideo:
    """A video a user sent, checked: its bytes, the type it is uploaded as, and its length."""

    data: bytes = field(repr=False)
    content_type: str  # video/mp4 or video/quicktime
    seconds: float

    @property
    def whole_seconds(self) -> int:
        """Its length rounded up: what it is priced and described by."""
        return max(1, math.ceil(self.seconds))


class VideoUploadFailed(BotError):
    """The checked video could not be uploaded to PixVerse; nothing was charged."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Your video could not be uploaded to PixVerse ({reason}). Nothing was charged; please try again."
        )


def check_video(data: bytes, limits: VideoLimits) -> UserVideo:
    """`data` as a `UserVideo` when it is an MP4/MOV with a video stream within `limits`,
    else InvalidInput naming what is wrong and what is allowed. Reads only the headers."""
    allowed = limits.describe()
    if not data:
        raise InvalidInput("video", f"is empty; send a video ({allowed})")
    if len(data) > limits.max_bytes:
        size, limit = human_size(len(data)), human_size(limits.max_bytes)
        raise InvalidInput("video", f"is {size}; the limit is {limit} ({allowed})")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            demuxer, format_name = container.format.name, container.format.long_name
            video_streams = len(container.streams.video)
            duration = _seconds(container)
    except (av.FFmpegError, ValueError, OSError):
        raise InvalidInput("video", f"is not a video file this bot can read; send {allowed}") from None
    if _ISO_MEDIA_DEMUXER not in demuxer.split(",") or data[8:11] in _3GP_BRANDS:
        what = "3GP" if data[8:11] in _3GP_BRANDS else format_name
        raise InvalidInput("video", f"is not {ALLOWED_VIDEO_TYPES} (it reads as {what}); send {allowed}")
    if video_streams == 0:
        raise InvalidInput("video", f"has no video stream (only sound?); send {allowed}")
    if duration is None or duration <= 0:
        raise InvalidInput("video", f"does not say how long it is; send {allowed}")
    if duration > limits.max_seconds:
        raise InvalidInput(
            "video", f"is {duration:.1f} seconds long; the limit is {limits.max_seconds} seconds ({allowed})"
        )
    content_type = "video/quicktime" if data[4:8] == b"ftyp" and data[8:12] == _QUICKTIME_BRAND else "video/mp4"
    return UserVideo(data=data, content_type=content_type, seconds=duration)


def _seconds(container: av.container.InputContainer) -> float | None:
    """The container's length, else its first video stream's (some muxers set only one)."""
    if container.duration is not None:
        return container.duration / av.time_base
    for stream in container.streams.video:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return None


# Uploads a file to PixVerse: (bytes, content type) → the upload's answer.
Uploader = Callable[[bytes, str], Awaitable[UploadedFile]]


class VideoIntake:
    """Checks the videos users send and uploads the ones that pass (see the module doc)."""

    def __init__(self, upload: Uploader, limits: VideoLimits) -> None:
        self._upload = upload
        self.limits = limits

    async def check(self, data: bytes) -> UserVideo:
        """`check_video` off the event loop (probing a container is CPU work)."""
        return await asyncio.to_thread(check_video, data, self.limits)

    async def upload(self, video: UserVideo) -> str:
        """Upload a checked video; its `path` for `video_path`. VideoUploadFailed when it cannot go up."""
        try:
            sent = await self._upload(video.data, video.content_type)
        except ue.UpstreamError as exc:
            raise VideoUploadFailed(exc.detail or str(exc)) from None
        if not sent.path:
            raise VideoUploadFailed("PixVerse answered without a path")
        return sent.path
