"""What a job costs in PixVerse credits, from the prices in the model catalogue.

Each model in bot/data/models.json (or MODELS_FILE) carries its prices, after the
useapi.net overview's cost tables (quality × duration, plus audio); upscale costs the
same for every model and extend costs like a new video of the same settings; a modify
costs like a new video as long as its source. A --preview draft costs like the same
video at the catalogue's `preview_quality`. Off-peak jobs get the catalogue's discount.
"""

from __future__ import annotations

import math
from pathlib import Path

from bot.catalogue import Catalogue, CreditsByDuration, ModelSpec, quality_rank
from bot.domain import GenerationRequest, JobKind


class Pricing:
    """Credits per job, read from a catalogue's prices."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    @classmethod
    def load(cls, models_file: Path | None = None) -> Pricing:
        """The prices of the operator's catalogue at `models_file`, or of the shipped one."""
        return cls(Catalogue.load(models_file))

    def credits(self, request: GenerationRequest) -> int:
        """Estimated credits for one job (a transition costs what its transitions cost, each a clip)."""
        if request.kind is JobKind.EFFECT and request.effect_credits is not None:
            # The template's own price, recorded when the effect was looked up.
            return request.effect_credits
        if request.segment_durations:
            return sum(
                self.credits(request.with_changes(duration=seconds, segment_durations=()))
                for seconds in request.segment_durations
            )
        if request.kind is JobKind.UPSCALE:
            cost = _lookup(self._catalogue.upscale_prices, request.duration)
        else:
            # A lip-sync has no published price: it costs like a new video of the same
            # model, quality and length (README "Prices"); sound adds the model's audio row.
            # A preview costs as its draft quality does.
            quality = self._catalogue.preview_quality if request.preview else request.quality
            cost = self.video_credits(request.model, quality, request.duration, audio=request.has_sound)
        return self.off_peak(cost) if request.off_peak else cost

    def video_credits(self, model: str, quality: str, duration: int, *, audio: bool) -> int:
        """Credits for a new (or extended) video of these settings, before any off-peak discount.

        A model the catalogue no longer lists (a job queued before the operator removed
        it) costs as the dearest model for the same settings: never under-charge.
        """
        if model in self._catalogue:
            return _video_credits(self._catalogue.get(model), quality, duration, audio)
        return max(
            _video_credits(self._catalogue.get(name), quality, duration, audio) for name in self._catalogue.names
        )

    def upscale_credits(self, duration: int) -> int:
        """Credits for upscaling a video this long."""
        return _lookup(self._catalogue.upscale_prices, duration)

    def off_peak(self, credits: int) -> int:
        """`credits` after the off-peak discount (rounded up)."""
        return math.ceil(credits * (1 - self._catalogue.off_peak_discount))


def _video_credits(spec: ModelSpec, quality: str, duration: int, audio: bool) -> int:
    prices = spec.prices
    if quality not in prices.create:  # validation refuses such a request; price it as the best quality
        quality = max(prices.create, key=quality_rank)
    cost = _lookup(prices.create[quality], duration)
    if audio and quality in prices.audio_extra:
        cost += _lookup(prices.audio_extra[quality], duration)
    return cost


def _lookup(row: CreditsByDuration, duration: int) -> int:
    # Durations between listed ones cost as the next listed one up (never under-charge).
    for seconds in sorted(row):
        if duration <= seconds:
            return row[seconds]
    # Longer than the table (a modify of a long video the user sent): the longest row
    # once per started stretch of its length.
    longest = max(row)
    return row[longest] * math.ceil(duration / longest)
