"""Audio a user sends for lip-sync: read whatever it is, hand POST files a WAV.

A Telegram voice note is OGG/Opus, an audio file may be MP3, M4A, OGG or WAV; `POST
files` takes `audio/wav` and `audio/mpeg` (seeds/v2/post-pixverse-files.md). PyAV
(FFmpeg) decodes any of them and writes one mono 16-bit WAV, so the upstream always
gets a type it documents. `videos/lipsync` fails a track over 60 seconds, so a longer
one is refused here, naming the limit, before anything is stored or charged.
"""

from __future__ import annotations

import asyncio
import io
import struct
from dataclasses import dataclass

import av

from bot.errors import InvalidInput
from bot.upstream.models import MAX_LIPSYNC_AUDIO_SECONDS

UPLOAD_AUDIO_TYPE = "audio/wav"
# The largest audio file taken (Telegram's getFile limit too): a minute of speech is far less.
MAX_AUDIO_BYTES = 20 * 2**20
# Speech needs no more: 24 kHz mono keeps a minute under 3 MB.
_RATE = 24_000
_LAYOUT = "mono"
_FORMAT = "s16"
WHAT_TO_SEND = "send a voice note or an audio file (mp3, m4a, ogg, wav)"


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """An audio track ready for POST files."""

    data: bytes
    content_type: str
    seconds: float


def to_upload_audio(data: bytes, *, max_seconds: int = MAX_LIPSYNC_AUDIO_SECONDS) -> SpeechAudio:
    """`data` (any audio FFmpeg reads) as a WAV; InvalidInput when it is no audio, silent
    or longer than `max_seconds`. CPU-bound: call `convert` from the event loop."""
    if not data:
        raise InvalidInput("audio", f"is empty; {WHAT_TO_SEND}")
    limit = max_seconds * _RATE
    samples: list[bytes] = []
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as source:
            if not source.streams.audio:
                raise InvalidInput("audio", f"has no sound track; {WHAT_TO_SEND}")
            resampler = av.AudioResampler(format=_FORMAT, layout=_LAYOUT, rate=_RATE)
            for frame in source.decode(source.streams.audio[0]):
                for converted in resampler.resample(frame):
                    count += converted.samples
                    if count > limit:
                        # Stop decoding at once: the rest cannot make it shorter.
                        raise InvalidInput(
                            "audio", f"is longer than {max_seconds} seconds; lip-sync takes at most {max_seconds}"
                        )
                    samples.append(bytes(converted.planes[0])[: converted.samples * 2])
            for converted in resampler.resample(None):
                count += converted.samples
                samples.append(bytes(converted.planes[0])[: converted.samples * 2])
    except av.FFmpegError:
        raise InvalidInput("audio", f"cannot be read as audio; {WHAT_TO_SEND}") from None
    if count > limit:
        raise InvalidInput("audio", f"is longer than {max_seconds} seconds; lip-sync takes at most {max_seconds}")
    if count == 0:
        raise InvalidInput("audio", f"has no sound in it; {WHAT_TO_SEND}")
    return SpeechAudio(_wav(b"".join(samples)), UPLOAD_AUDIO_TYPE, count / _RATE)


async def convert(data: bytes, *, max_seconds: int = MAX_LIPSYNC_AUDIO_SECONDS) -> SpeechAudio:
    """`to_upload_audio` off the event loop."""
    return await asyncio.to_thread(to_upload_audio, data, max_seconds=max_seconds)


def _wav(pcm: bytes) -> bytes:
    """16-bit mono PCM in a RIFF/WAVE header (the format every reader takes)."""
    channels, width = 1, 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        _RATE,
        _RATE * channels * width,
        channels * width,
        8 * width,
        b"data",
        len(pcm),
    )
    return header + pcm
