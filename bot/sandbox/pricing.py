"""Credits a sandbox job costs, after PixVerse's v5.5 web table (seeds/v2/overview.md)."""

from __future__ import annotations

# Credits for a clip of up to 5 s: (without audio, with audio). Longer clips cost double.
_FIVE_SECOND_PRICE = {
    "360p": (20, 25),
    "540p": (30, 40),
    "720p": (40, 50),
    "1080p": (80, 100),
}
_SHORT_CLIP_SECONDS = 5
_UPSCALE_FIVE_SECONDS = 30


def _length_factor(duration: int) -> int:
    return 1 if duration <= _SHORT_CLIP_SECONDS else 2


def generation_cost(quality: str, duration: int, *, audio: bool, off_peak: bool) -> int:
    """Cost of a create or extend; off-peak jobs are half price."""
    plain, with_audio = _FIVE_SECOND_PRICE[quality]
    cost = (with_audio if audio else plain) * _length_factor(duration)
    return cost // 2 if off_peak else cost


def upscale_cost(duration: int) -> int:
    """Cost of a 4K upscale of a clip this long."""
    return _UPSCALE_FIVE_SECONDS * _length_factor(duration)
