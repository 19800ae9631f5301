"""The v1 commands (/create_single, /animate) as platform-neutral requests, and their mapping onto v2.

The v1 API (seeds/v1-*.txt) had parameters v2 has no field for. Each is mapped
explicitly here and listed in README.md ("v1 → v2 mapping"); none is dropped:
- style (Realistic | Anime | 3D Animation) → a style phrase appended to the prompt;
- character (Anime only) → "featuring <character>" appended to the prompt;
- negative_prompt → "Avoid: …" appended to the prompt;
- motion 1…10 → a motion phrase appended to the prompt (5, the v1 default, adds none);
- hd_quality Yes/No → quality (operator's HD quality, default 720p / the default quality); an explicit
  quality naming another resolution is refused rather than overridden;
- seed_value 0 (v1 "random") → a random seed the bot picks and shows, so a result can be repeated.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from bot.catalogue import Catalogue, Feature, shipped_catalogue
from bot.domain import GenerationRequest, ImageRef, JobKind
from bot.errors import InvalidInput
from bot.settings import V1_STYLES, Settings
from bot.text_options import MOTION_DEFAULT, MOTION_MAX, MOTION_MIN, V1_PROMPT_MAX, V1_SEED_MAX
from bot.upstream import models as up
from bot.upstream.models import catalogue_of
from bot.user_text import clean_user_text

STYLE_PHRASES = {
    "Realistic": "realistic, photographic style",
    "Anime": "anime style",
    "3D Animation": "3D animation style",
}
MOTION_PHRASES = {
    1: "almost still, very subtle motion",
    2: "very gentle motion",
    3: "gentle motion",
    4: "calm motion",
    5: "",
    6: "lively motion",
    7: "energetic motion",
    8: "strong, dynamic motion",
    9: "very dynamic, fast motion",
    10: "extreme, fast-paced motion",
}


def _one_of(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    for option in allowed:
        if value.strip().lower() == option.lower():
            return option
    raise ValueError(f"{value!r} is not supported; use one of {', '.join(allowed)}")


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"yes", "y", "true", "on", "1"}:
        return True
    if text in {"no", "n", "false", "off", "0"}:
        return False
    raise ValueError(f"{value!r} is not Yes or No")


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # v2 options, all commands; None means "operator default".
    model: str | None = None
    duration: int | None = None
    quality: str | None = None
    audio: bool | None = None
    off_peak: bool | None = None
    seed_value: int | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        # Every text a user typed, before anything else looks at it (see bot.user_text).
        return clean_user_text(value) if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The models are data the operator may extend (MODELS_FILE): the catalogue comes
        # as validation context (see parse_command).
        return None if value is None else _one_of(value, catalogue_of(info).names)

    @field_validator("quality")
    @classmethod
    def _quality(cls, value: str | None) -> str | None:
        if value is None:
            return None
        allowed = [q.value for q in up.Quality]
        try:
            # "720" means 720p; the error quotes what the user typed, not what we guessed.
            return _one_of(value if value.lower().endswith("p") else f"{value}p", allowed)
        except ValueError:
            raise ValueError(f"{value!r} is not supported; use one of {', '.join(allowed)}") from None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int | None) -> int | None:
        if value is not None and not up.DURATION_MIN <= value <= up.DURATION_MAX:
            raise ValueError(f"{value} is out of range; use {up.DURATION_MIN} to {up.DURATION_MAX} seconds")
        return value

    @field_validator("seed_value")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= V1_SEED_MAX:
            raise ValueError(f"{value} is out of range; use 0 (random) to {V1_SEED_MAX}")
        return value

    @field_validator("audio", "off_peak", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return None if value is None else _yes_no(value)


def _check_prompt(value: str | None) -> str | None:
    if value is not None and len(value) > V1_PROMPT_MAX:
        raise ValueError(f"is {len(value)} characters long; at most {V1_PROMPT_MAX} are allowed")
    return value


class CreateSingle(_Command):
    """v1 /create_single: text to video."""

    prompt: str
    style: str | None = None
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    character: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; describe the video you want")
        return _check_prompt(value) or value

    @field_validator("negative_prompt")
    @classmethod
    def _negative(cls, value: str | None) -> str | None:
        return _check_prompt(value) or None

    @field_validator("style")
    @classmethod
    def _style(cls, value: str | None) -> str | None:
        return None if value is None else _one_of(value, V1_STYLES)

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect(cls, value: str | None) -> str | None:
        return None if value is None else _one_of(value, [a.value for a in up.AspectRatio])


class Animate(_Command):
    """v1 /animate: an image brought to life."""

    prompt: str | None = None
    motion: int | None = None
    hd_quality: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return _check_prompt(value) or None

    @field_validator("motion")
    @classmethod
    def _motion(cls, value: int | None) -> int | None:
        if value is not None and not MOTION_MIN <= value <= MOTION_MAX:
            raise ValueError(f"{value} is out of range; use {MOTION_MIN} to {MOTION_MAX} (default {MOTION_DEFAULT})")
        return value

    @field_validator("hd_quality", mode="before")
    @classmethod
    def _hd(cls, value: Any) -> Any:
        return None if value is None else _yes_no(value)


class Frames(_Command):
    """/frames: a video from a first to a last frame."""

    prompt: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return _check_prompt(value) or None


def parse_command(command_type: type[_Command], /, catalogue: Catalogue | None = None, **fields: Any) -> Any:
    """Validate raw options into a command; the error names the field and what is allowed.

    Models are checked against `catalogue` (the shipped one when None)."""
    try:
        return command_type.model_validate(
            {k: v for k, v in fields.items() if v is not None}, context={"catalogue": catalogue or shipped_catalogue()}
        )
    except ValidationError as exc:
        raise invalid_input_from(exc) from None


def invalid_input_from(exc: ValidationError) -> InvalidInput:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "request"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "is required"
    elif err["type"] == "extra_forbidden":
        message = "is not an option of this command"
    elif err["type"] in {"int_parsing", "int_from_float"}:
        message = f"{err.get('input')!r} is not a whole number"
    elif err["type"] == "string_unicode":
        message = "contains bytes that are not UTF-8 text; type it again"
    return InvalidInput(field, message)


def random_seed() -> int:
    return secrets.randbelow(up.SEED_MAX) + up.SEED_MIN


def compose_prompt(
    user_prompt: str,
    *,
    style: str | None = None,
    character: str | None = None,
    negative_prompt: str | None = None,
    motion: int | None = None,
) -> str:
    """Fold the v1 parameters v2 has no field for into the prompt text (see module doc)."""
    parts = [user_prompt.strip().rstrip(".")] if user_prompt.strip() else []
    if character:
        parts.append(f"featuring {character}")
    if style:
        parts.append(STYLE_PHRASES[style])
    if motion is not None and MOTION_PHRASES[motion]:
        parts.append(MOTION_PHRASES[motion])
    text = ", ".join(parts)
    if negative_prompt:
        text = f"{text}. Avoid: {negative_prompt.strip()}" if text else f"Avoid: {negative_prompt.strip()}"
    return text


class RequestBuilder:
    """Turns validated commands into `GenerationRequest`s using the operator's defaults."""

    def __init__(self, settings: Settings, catalogue: Catalogue | None = None) -> None:
        self._settings = settings
        self._catalogue = catalogue or settings.catalogue()

    def _common(self, cmd: _Command) -> dict[str, Any]:
        s = self._settings
        model = self._catalogue.resolve(cmd.model) if cmd.model else s.default_model
        return {
            "model": model,
            "duration": cmd.duration or s.default_duration,
            "quality": cmd.quality or s.default_quality.value,
            "audio": self._audio(cmd.audio, model),
            "off_peak": s.default_off_peak if cmd.off_peak is None else cmd.off_peak,
            "seed": cmd.seed_value or random_seed(),
        }

    @property
    def settings(self) -> Settings:
        """The operator's settings the defaults come from."""
        return self._settings

    def common(self, cmd: _Command, feature: Feature | None = None) -> dict[str, Any]:
        """The options every kind shares, with the operator's defaults. Without a --model, a
        kind that needs `feature` gets the default model when it has it, else the first that does."""
        if (
            cmd.model is None
            and feature is not None
            and not self._catalogue.get(self._settings.default_model).has(feature)
        ):
            having = self._catalogue.having(feature)
            if having:
                cmd = cmd.model_copy(update={"model": having[0]})
        return self._common(cmd)

    def _audio(self, asked: bool | None, model: str) -> bool:
        """The user's --audio as given (a model without audio refuses it later, naming the
        models that have it); the operator's default only where the model can make audio."""
        if asked is not None:
            return asked
        return self._settings.default_audio and self._catalogue.get(model).has(Feature.AUDIO)

    def _animate_quality(self, cmd: Animate) -> str:
        """v1's hd_quality picks the operator's HD or standard quality; an explicit quality
        that names another resolution contradicts it and is refused, never overridden."""
        s = self._settings
        if cmd.hd_quality is None:
            return cmd.quality or s.default_quality.value
        by_hd = (s.default_hd_quality if cmd.hd_quality else s.default_quality).value
        if cmd.quality is not None and cmd.quality != by_hd:
            hd = "yes" if cmd.hd_quality else "no"
            raise InvalidInput(
                "quality",
                f"{cmd.quality} contradicts hd_quality {hd} (which means {by_hd} here); give only one of them",
            )
        return by_hd

    def create_single(self, cmd: CreateSingle) -> GenerationRequest:
        style = cmd.style or self._settings.default_style
        if cmd.character is not None:
            if style != "Anime":
                raise InvalidInput("character", f"only works with style Anime (the style here is {style})")
            cmd = cmd.model_copy(update={"character": self._character(cmd.character)})
        request = GenerationRequest(
            kind=JobKind.CREATE,
            user_prompt=cmd.prompt,
            style=style,
            character=cmd.character,
            negative_prompt=cmd.negative_prompt,
            aspect_ratio=cmd.aspect_ratio or self._settings.default_aspect_ratio.value,
            **self._common(cmd),
        )
        return self.checked(self.recompose(request))

    def animate(self, cmd: Animate, image_blob_id: str) -> GenerationRequest:
        common = self._common(cmd) | {"quality": self._animate_quality(cmd)}
        request = GenerationRequest(
            kind=JobKind.ANIMATE,
            user_prompt=cmd.prompt or "",
            motion=cmd.motion,
            hd_quality=cmd.hd_quality,
            image_blob_id=image_blob_id,
            **common,
        )
        return self.checked(self.recompose(request))

    def frames(self, cmd: Frames, image_blob_ids: tuple[str, ...]) -> GenerationRequest:
        request = GenerationRequest(kind=JobKind.FRAMES, user_prompt=cmd.prompt or "", **self._common(cmd))
        if request.duration > up.FRAMES_DURATION_MAX:
            raise InvalidInput(
                "duration", f"{request.duration} is out of range for /frames; use 1 to {up.FRAMES_DURATION_MAX} seconds"
            )
        request = request.with_images(tuple(ImageRef(blob_id=blob) for blob in image_blob_ids))
        return self.checked(self.recompose(request), Feature.FRAMES, "/frames")

    def checked(self, request: GenerationRequest, feature: Feature | None = None, what: str = "") -> GenerationRequest:
        """`request` if its model has what it asks for: the kind's `feature`, its quality
        and duration (per the catalogue); else InvalidInput naming what is allowed.
        Options a model lacks (audio …) are refused by the upstream request's own check."""
        spec = self._catalogue.get(request.model)
        if feature is not None:
            self._catalogue.require(request.model, feature, what)
        if request.quality not in spec.qualities:
            raise InvalidInput(
                "quality", f"{request.quality} is not available on {spec.name}; use one of {', '.join(spec.qualities)}"
            )
        longest = spec.max_duration(request.quality)
        if request.duration > longest and longest < spec.duration_max:
            raise InvalidInput(
                "duration",
                f"duration {request.duration}s is too long for {request.quality}; {request.quality} allows at most"
                f" {longest} seconds (other qualities up to {spec.duration_max})",
            )
        if not spec.duration_min <= request.duration <= spec.duration_max:
            raise InvalidInput(
                "duration",
                f"{request.duration} is out of range for {spec.name};"
                f" use {spec.duration_min} to {spec.duration_max} seconds",
            )
        return request

    def _character(self, name: str) -> str:
        allowed = self._settings.anime_characters
        return _check_choice("character", name, allowed)

    @staticmethod
    def recompose(request: GenerationRequest) -> GenerationRequest:
        """Rebuild the upstream prompt from the user's text and the v1 parameters."""
        prompt = compose_prompt(
            request.user_prompt,
            style=request.style,
            character=request.character,
            negative_prompt=request.negative_prompt,
            motion=request.motion,
        )
        return request.with_changes(prompt=prompt)


def _check_choice(field: str, value: str, allowed: list[str]) -> str:
    try:
        return _one_of(value, allowed)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None
