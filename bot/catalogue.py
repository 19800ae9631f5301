"""The PixVerse models as data: which exist, what each can do and what it costs
(bot/data/models.json).

The upstream adds models over time; an operator adds one by pointing MODELS_FILE at a
copy of the shipped file with the new entry and its prices (README "Models").
Validation, help, Discord choices, result buttons, pricing and the sandbox all read
this one catalogue.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from bot.errors import InvalidInput

QUALITY_1080P = "1080p"


class Feature(StrEnum):
    """What a model may be asked for besides a plain video (model-capabilities.md)."""

    AUDIO = "audio"  # integrated audio (`audio: true`)
    # v5's sound on create: each of its own (model-capabilities.md "v5: Lip sync + Sound effects")
    LIP_SYNC = "lip_sync"  # speech: lip_sync_tts_prompt and lip_sync_tts_speaker_id
    SOUND_EFFECTS = "sound_effects"  # sound_effect_prompt
    AUTO_SOUND = "auto_sound"  # auto_sound: a soundtrack PixVerse picks
    LIPSYNC_VIDEO = "lipsync_video"  # POST videos/lipsync may take this model's videos
    FRAMES = "frames"  # create-frames: first and last frame
    TRANSITION = "transition"  # create-transition with 2 frames
    TRANSITION_MULTI = "transition_multi"  # create-transition with 3 to 7 frames
    EXTEND = "extend"
    FUSION = "fusion"
    MODIFY = "modify"
    OFF_PEAK = "off_peak"
    PREVIEW = "preview"  # preview_mode: a fast, lower-quality draft
    UPSCALE = "upscale"


class CatalogueError(ValueError):
    """The models file is malformed; the message names the problem."""


# Credits by video length in seconds; a length between listed ones costs as the next one up.
CreditsByDuration = dict[int, int]


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """What a model's videos cost: per quality, by duration; audio adds its own row."""

    create: dict[str, CreditsByDuration]
    # Added when the video has sound: `--audio` (v5.5/v5.6), or speech, sound effects or
    # auto sound on a model that prices them here (none is published for v5).
    audio_extra: dict[str, CreditsByDuration]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its limits, features and prices."""

    name: str
    description: str
    duration_min: int
    duration_max: int
    max_duration_1080p: int
    qualities: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    features: frozenset[Feature]
    prices: ModelPrices

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def max_duration(self, quality: str) -> int:
        return min(self.duration_max, self.max_duration_1080p) if quality == QUALITY_1080P else self.duration_max


class Catalogue:
    """The known models, in the file's order (the first is listed first everywhere)."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            entries: dict[str, dict[str, Any]] = table["models"]
            own_prices = {name: _prices(name, e["prices"]) for name, e in entries.items() if "prices" in e}
            self._models = {
                name: _spec(name, entry, _priced(name, entry, own_prices)) for name, entry in entries.items()
            }
            self.extend_fallback: str = table.get("extend_fallback", "")
            shared = table["prices"]
            # Upscale costs the same whatever model made the video (useapi.net overview, "Other").
            self.upscale_prices: CreditsByDuration = _by_duration("upscale", shared["upscale"])
            self.off_peak_discount = float(shared.get("off_peak_discount", 0.0))
            # A --preview draft is charged as the same video at this quality (useapi.net
            # publishes no preview price; the shipped file says the lowest quality).
            self.preview_quality: str = str(shared.get("preview_quality", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogueError(f"models file is malformed: {exc!r}") from None
        if not self._models:
            raise CatalogueError("models file lists no models")
        if not 0 <= self.off_peak_discount < 1:
            raise CatalogueError(f"prices.off_peak_discount must be from 0 up to 1, not {self.off_peak_discount}")
        longest = self.duration_range[1]
        if max(self.upscale_prices) < longest:
            raise CatalogueError(f"prices.upscale lists no price for a {longest}s video")
        if self.having(Feature.PREVIEW) and not self.preview_quality:
            raise CatalogueError("prices.preview_quality is missing: models offer preview, so say what one costs")
        if self.extend_fallback and not self.get(self.extend_fallback).has(Feature.EXTEND):
            raise CatalogueError(f"extend_fallback {self.extend_fallback!r} is not a model that extends")

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        """The operator's catalogue at `path`, or the one shipped with the bot."""
        if path is None:
            return shipped_catalogue()
        try:
            return cls(json.loads(path.read_text("utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogueError(f"cannot read models file {path}: {exc}") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def get(self, name: str) -> ModelSpec:
        """The model called `name`; InvalidInput naming the known ones when there is none."""
        spec = self._models.get(name)
        if spec is None:
            raise InvalidInput("model", f"{name!r} is not supported; use one of {', '.join(self.names)}")
        return spec

    def resolve(self, typed: str) -> str:
        """The catalogue's spelling of a model name typed in any case."""
        for name in self._models:
            if typed.strip().lower() == name.lower():
                return name
        return self.get(typed.strip()).name  # raises, naming the known models

    def having(self, feature: Feature) -> tuple[str, ...]:
        """The models that have `feature`, in catalogue order."""
        return tuple(name for name, spec in self._models.items() if spec.has(feature))

    def require(self, name: str, feature: Feature, what: str) -> ModelSpec:
        """`name`'s spec if it has `feature`, else InvalidInput naming the models that do."""
        spec = self.get(name)
        if not spec.has(feature):
            allowed = ", ".join(self.having(feature)) or "none"
            raise InvalidInput("model", f"{what} is not available on {name}; models that have it: {allowed}")
        return spec

    def extend_model_for(self, model: str) -> str | None:
        """The model an extend of a `model` video runs on (extend has only some models):
        the same model when it extends, else the catalogue's `extend_fallback`; None when
        neither applies (such a video gets no Extend button)."""
        if model in self and self.get(model).has(Feature.EXTEND):
            return model
        return self.extend_fallback or None

    def can_lipsync(self, model: str) -> bool:
        """Whether videos made with `model` may be lip-synced (POST videos/lipsync)."""
        return model in self and self.get(model).has(Feature.LIPSYNC_VIDEO)

    def can_upscale(self, model: str) -> bool:
        """Whether videos made with `model` may be upscaled."""
        return model in self and self.get(model).has(Feature.UPSCALE)

    @property
    def qualities(self) -> tuple[str, ...]:
        """Every quality some model has, lowest first."""
        return tuple(sorted({q for s in self._models.values() for q in s.qualities}, key=quality_rank))

    @property
    def aspect_ratios(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for spec in self._models.values():
            seen.update(dict.fromkeys(spec.aspect_ratios))
        return tuple(seen)

    @property
    def duration_range(self) -> tuple[int, int]:
        """The widest duration range any model takes (each model checks its own)."""
        specs = self._models.values()
        return min(s.duration_min for s in specs), max(s.duration_max for s in specs)


def quality_rank(quality: str) -> int:
    digits = quality.rstrip("p")
    return int(digits) if digits.isdigit() else 0


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The catalogue shipped with the bot (bot/data/models.json), read once."""
    return Catalogue(json.loads(resources.files("bot.data").joinpath("models.json").read_text("utf-8")))


def _by_duration(where: str, row: dict[str, Any]) -> CreditsByDuration:
    prices = {int(seconds): int(credits) for seconds, credits in row.items()}
    if not prices or min(prices.values()) < 0:
        raise ValueError(f"{where}: give credits (0 or more) for at least one duration")
    return prices


def _prices(name: str, entry: dict[str, Any]) -> ModelPrices:
    return ModelPrices(
        create={q: _by_duration(f"{name} {q}", row) for q, row in entry["create"].items()},
        audio_extra={q: _by_duration(f"{name} audio {q}", row) for q, row in entry.get("audio_extra", {}).items()},
    )


def _priced(name: str, entry: dict[str, Any], own_prices: dict[str, ModelPrices]) -> ModelPrices:
    """The model's own prices, or those of the model it is `priced_as` (a model whose
    prices the upstream does not publish is charged like the one it is sold with)."""
    if name in own_prices:
        return own_prices[name]
    like = entry.get("priced_as")
    if like is None:
        raise ValueError(f'{name}: give its "prices" or name a model it is "priced_as"')
    if like not in own_prices:
        raise ValueError(f"{name}: priced_as {like!r} is not a model with its own prices")
    return own_prices[like]


def _spec(name: str, entry: dict[str, Any], prices: ModelPrices) -> ModelSpec:
    low, high = (int(x) for x in entry["durations"])
    if not 1 <= low <= high:
        raise ValueError(f"{name}: durations must be [low, high] with 1 <= low <= high")
    qualities = tuple(str(q) for q in entry["qualities"])
    if not qualities:
        raise ValueError(f"{name}: no qualities")
    spec = ModelSpec(
        name=name,
        description=str(entry.get("description", "")),
        duration_min=low,
        duration_max=high,
        max_duration_1080p=int(entry.get("max_duration_1080p", high)),
        qualities=qualities,
        aspect_ratios=tuple(str(a) for a in entry["aspect_ratios"]),
        features=frozenset(Feature(f) for f in entry.get("features", ())),
        prices=prices,
    )
    _check_prices_cover(spec)
    return spec


def _check_prices_cover(spec: ModelSpec) -> None:
    """Every quality and length the model offers has a price (none is charged as another)."""
    for quality in spec.qualities:
        rows = [("", spec.prices.create.get(quality))]
        if quality in spec.prices.audio_extra:
            rows.append(("audio ", spec.prices.audio_extra[quality]))
        for what, row in rows:
            if row is None:
                raise ValueError(f"{spec.name}: no {quality} prices")
            if max(row) < spec.max_duration(quality):
                raise ValueError(
                    f"{spec.name}: {what}{quality} prices stop at {max(row)}s, it makes {spec.max_duration(quality)}s"
                )
