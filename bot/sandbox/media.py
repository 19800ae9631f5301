"""Real, playable H.264 MP4s (and a JPEG first frame) for sandbox videos.

The look of a video is drawn from its fingerprint (prompt, seed, source ...), so two
different requests give visibly different files and the same request the same file.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass, replace
from typing import Any

import av
import numpy as np

FPS = 8
AUDIO_RATE = 16_000  # soundtracks and voice samples: small, and enough for a tone
BASE_FRAMES = 2 * FPS  # each generation (or extension) adds two seconds
_SHORT_SIDE = 90  # pixels; small files keep tests fast
_ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4)}
# A veryfast preset renders a 2 s clip in milliseconds and stays deterministic.
_X264_OPTIONS = {"preset": "veryfast"}
_FREE_BOX_HEADER = 8
_MAX_BOX_SIZE = 0xFFFFFFFF


def _even(value: float) -> int:
    # yuv420p needs even dimensions.
    return max(2, int(round(value / 2)) * 2)


@dataclass(frozen=True)
class Picture:
    """What a video file will show: its size, its length and what its look is drawn from."""

    width: int
    height: int
    frames: int
    fingerprint: str
    # What its soundtrack is drawn from (sound effects, speech, lip-sync); "" makes a silent clip.
    sound: str = ""

    @classmethod
    def for_aspect(cls, aspect_ratio: str, fingerprint: str) -> Picture:
        """A fresh two-second clip in the given aspect ratio (unknown ratios fall back to 16:9)."""
        wide, tall = _ASPECTS.get(aspect_ratio, _ASPECTS["16:9"])
        scale = _SHORT_SIDE / min(wide, tall)
        return cls(_even(wide * scale), _even(tall * scale), BASE_FRAMES, fingerprint)

    @classmethod
    def like(cls, width: int, height: int, seconds: float, fingerprint: str) -> Picture:
        """A clip shaped like a `width`×`height` video `seconds` long (an uploaded one), drawn small."""
        scale = _SHORT_SIDE / max(1, min(width, height))
        frames = max(BASE_FRAMES, round(seconds * FPS))
        return cls(_even(width * scale), _even(height * scale), frames, fingerprint)

    def upscaled(self) -> Picture:
        """The same clip at twice the width and height."""
        return replace(self, width=self.width * 2, height=self.height * 2)

    def with_sound(self, sound: str) -> Picture:
        """The same clip with a soundtrack drawn from `sound` (a tone whose pitch it picks)."""
        return replace(self, sound=sound)

    def previewed(self) -> Picture:
        """The clip as a draft: half the width and height (its upscale is the full size)."""
        return replace(self, width=_even(self.width / 2), height=_even(self.height / 2))

    def modified(self, fingerprint: str) -> Picture:
        """The same clip (size and length) with a new look."""
        return replace(self, fingerprint=fingerprint)

    def extended(self, fingerprint: str) -> Picture:
        """The clip made two seconds longer, continuing with a new look."""
        return replace(self, frames=self.frames + BASE_FRAMES, fingerprint=fingerprint)


@dataclass(frozen=True)
class RenderedVideo:
    mp4: bytes
    first_frame_jpeg: bytes


@dataclass(frozen=True)
class ProbedVideo:
    """What the sandbox reads from an uploaded video: its shape and its length."""

    width: int
    height: int
    seconds: float


def probe(data: bytes) -> ProbedVideo | None:
    """The shape and length of an uploaded video; None when it is no video PyAV can read."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            seconds = container.duration / av.time_base if container.duration is not None else 0.0
            return ProbedVideo(stream.codec_context.width, stream.codec_context.height, seconds)
    except (av.FFmpegError, ValueError, OSError):
        return None


def render_gif(picture: Picture) -> bytes:
    """The clip as an animated GIF (effect previews); CPU-bound like `render`."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = picture.width, picture.height, "rgb8"
        for index in range(picture.frames):
            frame = av.VideoFrame.from_ndarray(_draw(picture, index), format="rgb24").reformat(format="rgb8")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def render(picture: Picture, pad_to: int = 0) -> RenderedVideo:
    """Encode the picture (CPU-bound: call it off the event loop)."""
    frames = [_draw(picture, index) for index in range(picture.frames)]
    return RenderedVideo(_pad(_encode_mp4(frames, picture.sound), pad_to), _encode_jpeg(frames[0]))


def _draw(picture: Picture, index: int) -> np.ndarray:
    digest = hashlib.sha256(picture.fingerprint.encode()).digest()
    background = np.frombuffer(digest[:3], dtype=np.uint8)
    frame = np.empty((picture.height, picture.width, 3), dtype=np.uint8)
    frame[:] = background
    # A square in the inverse colour crosses the frame, so the clip visibly moves.
    side = max(2, picture.height // 3)
    travel = max(1, picture.width - side)
    x = (digest[3] + index * max(1, travel // BASE_FRAMES)) % travel
    y = digest[4] % max(1, picture.height - side)
    frame[y : y + side, x : x + side] = 255 - background
    return frame


def _encode_mp4(frames: list[np.ndarray], sound: str = "") -> bytes:
    height, width, _ = frames[0].shape
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=_X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Every stream is added before the first packet: the header is written then.
        soundtrack = _soundtrack_stream(container) if sound else None
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
        if soundtrack is not None:
            _encode_tone(container, soundtrack, sound, len(frames) / FPS)
    return buffer.getvalue()


def sine_tone(fingerprint: str, seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """Mono 16-bit samples of a tone whose pitch `fingerprint` picks (shape 1 × samples)."""
    pitch = 220 + hashlib.sha256(fingerprint.encode()).digest()[0] * 2  # 220 to 730 Hz
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * pitch * t) * 6000).astype(np.int16).reshape(1, -1)


def _soundtrack_stream(container: Any) -> Any:
    """An AAC track, so a video with sound has a real audio stream players (and tests) find."""
    stream = container.add_stream("aac", rate=AUDIO_RATE)
    stream.layout = "mono"
    return stream


def _encode_tone(container: Any, stream: Any, fingerprint: str, seconds: float) -> None:
    frame = av.AudioFrame.from_ndarray(sine_tone(fingerprint, seconds), format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def render_sample(fingerprint: str, seconds: float = 1.0) -> bytes:
    """A short WAV of the tone `fingerprint` picks (the voices' samples)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE)
        stream.layout = "mono"
        _encode_tone(container, stream, fingerprint, seconds)
    return buffer.getvalue()


def _encode_jpeg(frame: np.ndarray) -> bytes:
    height, width, _ = frame.shape
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="image2pipe") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuvj420p")
        container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return buffer.getvalue()


def _pad(mp4: bytes, size: int) -> bytes:
    """Grow the file to about `size` bytes with a top-level `free` box players skip."""
    missing = min(size - len(mp4), _MAX_BOX_SIZE)
    if missing < _FREE_BOX_HEADER:
        return mp4
    return mp4 + struct.pack(">I", missing) + b"free" + bytes(missing - _FREE_BOX_HEADER)
