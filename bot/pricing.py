"""What a job costs in PixVerse credits, from a data table (bot/data/pricing.json).

The table follows the useapi.net overview's cost tables (model × duration × quality,
plus audio); upscale has its own row and extend costs like a new video of the same
settings. Off-peak jobs get the documented discount.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from bot.domain import GenerationRequest, JobKind


class PricingError(ValueError):
    """The pricing table is malformed; the message names the problem."""


class Pricing:
    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self._create: dict[str, dict[str, dict[int, int]]] = {
                model: {q: _by_duration(row) for q, row in qualities.items()}
                for model, qualities in table["create"].items()
            }
            self._audio = {
                model: {q: _by_duration(row) for q, row in qualities.items()}
                for model, qualities in table.get("audio_extra", {}).items()
            }
            self._upscale = _by_duration(table["upscale"])
            self._fallback = table["fallback_model"]
            self._off_peak = float(table.get("off_peak_discount", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise PricingError(f"pricing table is malformed: {exc!r}") from None
        if self._fallback not in self._create:
            raise PricingError(f"fallback_model {self._fallback!r} has no create prices")

    @classmethod
    def load(cls, path: Path | None = None) -> Pricing:
        """The operator's table at `path`, or the one shipped with the bot."""
        text = (
            path.read_text("utf-8") if path else resources.files("bot.data").joinpath("pricing.json").read_text("utf-8")
        )
        return cls(json.loads(text))

    def credits(self, request: GenerationRequest) -> int:
        """Estimated credits for one job (a transition costs what its transitions cost, each a clip)."""
        if request.segment_durations:
            return sum(
                self.credits(request.with_changes(duration=seconds, segment_durations=()))
                for seconds in request.segment_durations
            )
        if request.kind is JobKind.UPSCALE:
            cost = _lookup(self._upscale, request.duration)
        else:
            model = request.model if request.model in self._create else self._fallback
            qualities = self._create[model]
            quality = request.quality if request.quality in qualities else max(qualities, key=_quality_rank)
            cost = _lookup(qualities[quality], request.duration)
            if request.audio and model in self._audio and quality in self._audio[model]:
                cost += _lookup(self._audio[model][quality], request.duration)
        if request.off_peak:
            cost = math.ceil(cost * (1 - self._off_peak))
        return cost


def _by_duration(row: dict[str, int]) -> dict[int, int]:
    return {int(seconds): int(credits) for seconds, credits in row.items()}


def _lookup(row: dict[int, int], duration: int) -> int:
    # Durations between listed ones cost as the next listed one up (never under-charge).
    for seconds in sorted(row):
        if duration <= seconds:
            return row[seconds]
    return row[max(row)]


def _quality_rank(quality: str) -> int:
    return int(quality.rstrip("p")) if quality.rstrip("p").isdigit() else 0
