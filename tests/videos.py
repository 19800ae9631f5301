"""Small real video files for the tests of videos users send (bot.media)."""

from __future__ import annotations

import io

import av
import numpy as np

_FPS = 8
_SIDE = 32


def clip(seconds: float = 2.0, *, container: str = "mp4") -> bytes:
    """A real H.264 clip `seconds` long in `container` (mp4, mov, matroska …)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream("libx264", rate=_FPS)
        stream.width, stream.height, stream.pix_fmt = _SIDE, _SIDE, "yuv420p"
        for index in range(max(1, round(seconds * _FPS))):
            frame = np.full((_SIDE, _SIDE, 3), index * 7 % 255, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return buffer.getvalue()


def sound_only(seconds: float = 1.0) -> bytes:
    """An MP4 with an AAC sound track and no video stream."""
    rate, samples = 8000, 1024
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        for index in range(int(seconds * rate / samples) + 1):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, index * samples
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buffer.getvalue()


def padded(data: bytes, size: int) -> bytes:
    """The MP4 grown to `size` bytes with a top-level `free` box, which players skip."""
    missing = size - len(data)
    assert missing >= 8
    return data + missing.to_bytes(4, "big") + b"free" + bytes(missing - 8)
