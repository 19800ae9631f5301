"""/transition: 2 to 7 pictures joined by transitions (POST videos/create-transition).

Each transition (picture k to picture k+1) has its own length (`--durations 3,2`, 1 to 8
seconds each) and prompt (`--prompts "a|b"`, or on Telegram the captions of the album's
later photos; the command's own prompt fills any left empty). Three or more pictures
need a model with `transition_multi` (the upstream offers only v5 for them).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.catalogue import Feature
from bot.commands import RequestBuilder, _Command, check_prompt
from bot.domain import GenerationRequest, ImageRef, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, Pictures
from bot.text_options import V1_PROMPT_MAX, Option
from bot.upstream.models import (
    TRANSITION_FRAMES_MAX,
    TRANSITION_FRAMES_MIN,
    TRANSITION_SEGMENT_MAX,
    TRANSITION_SEGMENT_MIN,
    CreateTransitionRequest,
)
from bot.user_text import clean_user_text

SEGMENTS = f"{TRANSITION_SEGMENT_MIN} to {TRANSITION_SEGMENT_MAX} seconds"
PROMPT_SEPARATOR = "|"


class Transition(_Command):
    """/transition: the prompt every transition takes unless it has its own, and each one's length and prompt."""

    prompt: str | None = None
    durations: tuple[int, ...] | None = None
    prompts: tuple[str, ...] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return check_prompt(value) or None

    @field_validator("durations", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        words = value.split(",") if isinstance(value, str) else value
        seconds = []
        for word in words:
            text = str(word).strip()
            if not text.isdigit():
                raise ValueError(f"{text!r} is not a whole number; give each transition's seconds, e.g. 3,2")
            if not TRANSITION_SEGMENT_MIN <= int(text) <= TRANSITION_SEGMENT_MAX:
                raise ValueError(f"{text} is out of range; each transition lasts {SEGMENTS}")
            seconds.append(int(text))
        return tuple(seconds)

    @field_validator("prompts", mode="before")
    @classmethod
    def _prompts(cls, value: Any) -> Any:
        texts = value.split(PROMPT_SEPARATOR) if isinstance(value, str) else value
        cleaned = tuple(clean_user_text(str(text)).strip() for text in texts)
        for number, text in enumerate(cleaned, 1):
            if len(text) > V1_PROMPT_MAX:
                raise ValueError(f"prompt {number} is {len(text)} characters long; at most {V1_PROMPT_MAX} are allowed")
        return cleaned


def build_transition(builder: RequestBuilder, cmd: Transition, blobs: tuple[str, ...]) -> GenerationRequest:
    """The request for `cmd` on these pictures; InvalidInput when its lengths, prompts or model do not fit."""
    pictures, segments = len(blobs), len(blobs) - 1
    many = pictures > TRANSITION_FRAMES_MIN
    feature = Feature.TRANSITION_MULTI if many else Feature.TRANSITION
    common = builder.common(cmd, feature)
    example = ",".join(["3"] * segments)
    if cmd.durations is not None:
        if cmd.duration is not None:
            raise InvalidInput("durations", "give either --duration (every transition) or --durations (each one)")
        durations = cmd.durations
    elif cmd.duration is not None:
        if cmd.duration > TRANSITION_SEGMENT_MAX:
            raise InvalidInput("duration", f"{cmd.duration} is out of range for /transition; use {SEGMENTS}")
        durations = (cmd.duration,) * segments
    else:
        durations = (min(common["duration"], TRANSITION_SEGMENT_MAX),) * segments
    if len(durations) != segments:
        raise InvalidInput(
            "durations",
            f"gives {len(durations)} lengths for the {segments} transitions of {pictures} pictures;"
            f" give one per transition, e.g. --durations {example}",
        )
    shared = cmd.prompt or ""
    prompts: tuple[str, ...] = ()
    if cmd.prompts is not None:
        _check_count("prompts", len(cmd.prompts), pictures)
        prompts = tuple(text or shared for text in cmd.prompts)
    request = GenerationRequest(
        kind=JobKind.TRANSITION,
        user_prompt=_shown(shared, prompts),
        segment_durations=durations,
        segment_prompts=prompts,
        **common | {"duration": sum(durations)},
    ).with_images(tuple(ImageRef(blob_id=blob) for blob in blobs))
    what = f"a transition of {TRANSITION_FRAMES_MIN + 1} or more pictures" if many else "/transition"
    # Each transition is one clip: its model and quality are checked on the longest one
    # (the sum may well exceed what a single clip may last).
    builder.checked(request.with_changes(duration=max(durations)), feature, what)
    return RequestBuilder.recompose(request)


def _check_count(field: str, given: int, pictures: int) -> None:
    """InvalidInput unless `given` prompts fit the transitions of `pictures` pictures."""
    segments = pictures - 1
    if given != segments:
        raise InvalidInput(
            field,
            f"gives {given} prompts for the {segments} transitions of {pictures} pictures;"
            f' give one per transition, separated by |, e.g. --prompts "{"|".join(["…"] * segments)}"',
        )


def _shown(shared: str, prompts: tuple[str, ...]) -> str:
    """What captions, job lists and the remix dialog show as the prompt: each transition's, when they differ."""
    if not prompts or len(set(prompts)) == 1:
        return prompts[0] if prompts else shared
    return f" {PROMPT_SEPARATOR} ".join(prompts)


def remix_transition(request: GenerationRequest, text: str) -> GenerationRequest:
    """A remix's text is one prompt for every transition, or one per transition separated by |."""
    parts = tuple(part.strip() for part in text.split(PROMPT_SEPARATOR))
    if len(parts) == 1:
        return request.with_changes(user_prompt=text, segment_prompts=())
    _check_count("prompt", len(parts), len(request.images))
    return request.with_changes(user_prompt=_shown("", parts), segment_prompts=parts)


def _body(request: GenerationRequest) -> dict[str, Any]:
    paths = request.image_paths
    prompts = request.segment_prompts or (request.prompt,) * len(request.segment_durations)
    body: dict[str, Any] = {
        "model": request.model,
        "quality": request.quality,
        "seed": request.seed,
        "audio": request.audio or None,
        "off_peak_mode": request.off_peak or None,
    }
    body |= {f"frame_{n}_path": path for n, path in enumerate(paths, 1)}
    for n, (seconds, prompt) in enumerate(zip(request.segment_durations, prompts, strict=True), 1):
        body[f"duration_{n}_to_{n + 1}"] = str(seconds)
        body[f"prompt_{n}_to_{n + 1}"] = prompt or None
    return body


TRANSITION_OPTIONS = (
    Option(
        "durations",
        ("durations", "durs"),
        value_hint="3,2,…",
        help=f"Each transition's length, {SEGMENTS}, comma-separated (one per transition)",
    ),
    Option(
        "prompts",
        ("prompts",),
        value_hint='"a|b|…"',
        help="Each transition's prompt, separated by | (one per transition)",
    ),
)

TRANSITION = GenerationKind(
    name="transition",
    job_kind=JobKind.TRANSITION,
    summary="A video through 2 to 7 pictures, with a transition between each two",
    usage="[prompt] [options]",
    example='transition --durations 3,2 --prompts "the sun sets|the stars come out"',
    command=Transition,
    options=TRANSITION_OPTIONS,
    build=build_transition,
    request_type=CreateTransitionRequest,
    body=_body,
    prompt_help="What every transition shows (unless prompts gives each its own)",
    pictures=Pictures(
        roles=tuple(f"picture {n}" for n in range(1, TRANSITION_FRAMES_MAX + 1)), required=TRANSITION_FRAMES_MIN
    ),
    feature=Feature.TRANSITION,
    picture_help=tuple(
        f"Picture {n} ({ALLOWED_IMAGE_TYPES})"
        + ("" if n <= TRANSITION_FRAMES_MIN else "; 3 or more pictures: not on every model")
        for n in range(1, TRANSITION_FRAMES_MAX + 1)
    ),
    album_captions="prompts",
    remix=remix_transition,
)
