"""What every generation command shares: the typed inputs' base (`_Command`), parsing
with errors users can read, and the `RequestBuilder` that applies the operator's
defaults and checks a request against the model catalogue. Each kind's own command
and build step live in its module under bot/kinds/.

The v1 API (seeds/v1-*.txt) had parameters v2 has no field for. Each is mapped
explicitly (here and in bot/kinds/create.py, animate.py) and listed in README.md
("v1 → v2 mapping"); none is dropped:
- style (Realistic | Anime | 3D Animation) → a style phrase appended to the prompt;
- character (Anime only) → "featuring <character>" appended to the prompt;
- negative_prompt → "Avoid: …" appended to the prompt;
- motion 1…10 → a motion phrase appended to the prompt (5, the v1 default, adds none);
- hd_quality Yes/No → quality (operator's HD quality, default 720p / the default quality); an explicit
  quality naming another resolution is refused rather than overridden;
- seed_value 0 (v1 "random") → a random seed the bot picks and shows, so a result can be repeated.
"""

from __future__ import annotations

import importlib
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from bot.catalogue import Catalogue, Feature, shipped_catalogue
from bot.domain import GenerationRequest
from bot.errors import InvalidInput
from bot.settings import Settings
from bot.text_options import V1_PROMPT_MAX, V1_SEED_MAX
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


def one_of(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    for option in allowed:
        if value.strip().lower() == option.lower():
            return option
    raise ValueError(f"{value!r} is not supported; use one of {', '.join(allowed)}")


def yes_no(value: Any) -> bool:
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
    # --preview (only the kinds whose endpoint has `preview_mode` offer it: create, animate).
    preview: bool | None = None

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
        return None if value is None else one_of(value, catalogue_of(info).names)

    @field_validator("quality")
    @classmethod
    def _quality(cls, value: str | None) -> str | None:
        if value is None:
            return None
        allowed = [q.value for q in up.Quality]
        try:
            # "720" means 720p; the error quotes what the user typed, not what we guessed.
            return one_of(value if value.lower().endswith("p") else f"{value}p", allowed)
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
        return None if value is None else yes_no(value)


def check_prompt(value: str | None) -> str | None:
    """A prompt (or negative prompt) within v1's length limit; the message says by how much not."""
    if value is not None and len(value) > V1_PROMPT_MAX:
        raise ValueError(f"is {len(value)} characters long; at most {V1_PROMPT_MAX} are allowed")
    return value


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

    @property
    def settings(self) -> Settings:
        """The operator's settings the defaults come from."""
        return self._settings

    @property
    def catalogue(self) -> Catalogue:
        """The models the requests are checked against."""
        return self._catalogue

    def common(self, cmd: _Command, feature: Feature | None = None) -> dict[str, Any]:
        """The request fields every kind takes: the user's options, else the operator's defaults.

        Without a --model, a kind that needs `feature` gets the default model when it has
        it, else the first model that does.
        """
        s = self._settings
        if cmd.model:
            model = self._catalogue.resolve(cmd.model)
        else:
            model = s.default_model
            having = self._catalogue.having(feature) if feature is not None else []
            if feature is not None and not self._catalogue.get(model).has(feature) and having:
                model = having[0]
        if cmd.preview:
            self._catalogue.require(model, Feature.PREVIEW, "--preview")
        return {
            "model": model,
            "preview": bool(cmd.preview),
            "duration": cmd.duration or s.default_duration,
            "quality": cmd.quality or s.default_quality.value,
            "audio": self._audio(cmd.audio, model),
            "off_peak": s.default_off_peak if cmd.off_peak is None else cmd.off_peak,
            "seed": cmd.seed_value or random_seed(),
        }

    def _audio(self, asked: bool | None, model: str) -> bool:
        """The user's --audio as given (a model without audio refuses it later, naming the
        models that have it); the operator's default only where the model can make audio."""
        if asked is not None:
            return asked
        return self._settings.default_audio and self._catalogue.get(model).has(Feature.AUDIO)

    # The v1 commands' entry points, kept for callers that build a request directly
    # (the kinds build through GenerationKind.build). Imported on call: the kind
    # modules import this one.
    def create_single(self, cmd: Any) -> GenerationRequest:
        """/create_single's request for `cmd` (built by bot/kinds/create.py)."""
        from bot.kinds import create

        return create.build(self, cmd)

    def animate(self, cmd: Any, image_blob_id: str) -> GenerationRequest:
        """/animate's request for `cmd` and the stored picture (built by bot/kinds/animate.py)."""
        from bot.kinds import animate

        return animate.build(self, cmd, (image_blob_id,))

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


def check_choice(field: str, value: str, allowed: list[str]) -> str:
    """`value` spelt as in `allowed` (any case), else InvalidInput naming the choices."""
    try:
        return one_of(value, allowed)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


# The kinds' commands, still importable from here (bot.commands.CreateSingle …). Looked
# up on first use: the kind modules import this one, so an import here would be circular.
_KIND_COMMANDS = {"CreateSingle": "bot.kinds.create", "Animate": "bot.kinds.animate", "Frames": "bot.kinds.frames"}


def __getattr__(name: str) -> Any:
    if name in _KIND_COMMANDS:
        return getattr(importlib.import_module(_KIND_COMMANDS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
