"""A generation kind: one command declared once, rendered by every adapter.

A kind names its command, says what it does, which inputs it takes (prompt, pictures
with their roles, options with their types, ranges and help), how its inputs become a
`GenerationRequest` (validated against the model catalogue) and how that request
becomes the upstream request. Adapters iterate `bot.kinds.KINDS` and render each
generically: text options and captions (Telegram, console), typed slash options with
attachments (Discord), the same help everywhere. Prices come from the model catalogue.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from bot.catalogue import Catalogue, Feature
from bot.domain import GenerationRequest, JobKind
from bot.errors import InvalidInput
from bot.text_options import COMMON_OPTIONS, Option
from bot.upstream.models import SEED_MAX, SEED_MIN

if TYPE_CHECKING:
    from bot.commands import RequestBuilder, _Command
    from bot.effects import EffectsCatalogue
    from bot.media import UserVideo
    from bot.voices import VoiceCatalogue

# Routing fields every upstream request carries (email, replyRef, replyUrl).
Routing = dict[str, str | None]
# The stand-in path of a picture not uploaded yet, for validating a job at accept time.
PENDING_UPLOAD = "upload/pending"


@dataclass(frozen=True, slots=True)
class Lookups:
    """What a kind's `prepare` may look a typed name up in: effects, voices."""

    effects: EffectsCatalogue
    voices: VoiceCatalogue


@dataclass(frozen=True, slots=True)
class Pictures:
    """The pictures a kind takes: one role per picture, in order; the first `required` must be given."""

    roles: tuple[str, ...]
    required: int

    def describe(self) -> str:
        """What to send, as help says it: "the first frame and the last frame", "2 to 7 pictures"."""
        if self.required == len(self.roles):
            return " and ".join(self.roles)
        return f"{self.required} to {len(self.roles)} pictures"

    def check(self, count: int, command: str) -> None:
        """InvalidInput naming what the kind needs when `count` pictures do not fit."""
        if self.required <= count <= len(self.roles):
            return
        if self.required == len(self.roles):
            need = f"exactly {self.required} pictures ({' and '.join(self.roles)})"
            if self.required == 1:
                need = f"one picture ({self.roles[0]})"
        else:
            need = f"{self.required} to {len(self.roles)} pictures"
        raise InvalidInput("image", f"/{command} needs {need}; got {count}")


def replace_prompt(request: GenerationRequest, text: str) -> GenerationRequest:
    """A remix of most kinds: the user's prompt replaced."""
    return request.with_changes(user_prompt=text)


@dataclass(frozen=True, slots=True)
class GenerationKind:
    """One generation command, declared once (see the module doc)."""

    name: str  # the command, without the slash
    job_kind: JobKind  # stored with the job; values never change
    summary: str  # one line: help, Discord's description, Telegram's menu
    usage: str  # the arguments as help shows them
    example: str  # a whole example command line, without the slash
    command: type[_Command]  # validates the typed inputs: types, ranges, choices
    options: tuple[Option, ...]  # the kind's own options; the common ones follow
    build: Callable[[RequestBuilder, Any, tuple[str, ...]], GenerationRequest]  # (builder, command, blob ids)
    request_type: type[BaseModel]  # the upstream request
    body: Callable[[GenerationRequest], dict[str, Any]]  # the request's fields in the upstream's words
    prompt_required: bool = False
    prompt_help: str = "What the video shows"
    pictures: Pictures | None = None
    feature: Feature | None = None  # what the model must have to run this kind
    remixable: bool = True  # has a prompt a remix can replace
    # The request with a remix's new prompt (the user's text, cleaned); InvalidInput when it does not fit.
    remix: Callable[[GenerationRequest, str], GenerationRequest] = replace_prompt
    picture_help: tuple[str, ...] = field(default=())  # per picture, for Discord's attachment options
    seed_range: tuple[int, int] = (SEED_MIN, SEED_MAX)  # the seeds its endpoint takes
    # The command field a Telegram album's captions fill (one per picture after the first,
    # whose caption holds the command) when the command does not set it.
    album_captions: str | None = None
    common_options: tuple[Option, ...] = COMMON_OPTIONS  # the shared options this kind takes
    # Looks up what the command names before it is built (an effect by its name), so
    # `build` stays a plain function of the command; None when there is nothing to look up.
    prepare: Callable[[Lookups, Any], Awaitable[Any]] | None = None
    looked_up: str = "prompt"  # the command field `prepare` looks up (moderated first: answers quote it)
    prompt_name: str = "prompt"  # the Discord option the free text fills
    prompt_suggested: bool = False  # Discord: the free text is offered as you type (effect names)
    # Set on a kind that takes one video of the user's own (/modify, /extend): the request
    # once that video is checked (its length known); the video's upstream path is filled in
    # when it is uploaded. None: the kind takes no video.
    with_video: Callable[[GenerationRequest, UserVideo], GenerationRequest] | None = None
    video_help: str = ""  # what the video is for, for Discord's attachment option and help

    @property
    def takes_video(self) -> bool:
        return self.with_video is not None

    @property
    def all_options(self) -> tuple[Option, ...]:
        return self.options + self.common_options

    def new_seed(self) -> int:
        """A random seed this kind's endpoint takes (picked for "random", reroll and remix)."""
        low, high = self.seed_range
        return low + secrets.randbelow(high - low + 1)

    def to_upstream(self, request: GenerationRequest, routing: Routing, catalogue: Catalogue) -> BaseModel:
        """The upstream request for `request`; InvalidInput when it breaks an upstream limit."""
        if request.kind is not self.job_kind:
            raise ValueError(f"{self.name} cannot send a {request.kind} request")
        fields = {**self.body(request), **routing}
        try:
            return self.request_type.model_validate(fields, context={"catalogue": catalogue})
        except ValidationError as exc:
            raise upstream_refusal(exc) from None


def upstream_refusal(exc: ValidationError) -> InvalidInput:
    """The first problem pydantic found in an upstream request, as the user reads it."""
    err = exc.errors()[0]
    message = err["msg"].removeprefix("Value error, ")
    # Cross-field rules (1080p ≤ 8 s, audio only on …) have no location; their
    # message starts with the field it is about.
    field = ".".join(str(p) for p in err["loc"]) or message.split(" ", 1)[0]
    return InvalidInput(field, message)


def common_body(request: GenerationRequest) -> dict[str, Any]:
    """The fields every video kind sends the same way."""
    return {
        "model": request.model,
        "prompt": request.prompt or None,
        "duration": request.duration,
        "quality": request.quality,
        "audio": request.audio or None,
        "seed": request.seed,
        "off_peak_mode": request.off_peak or None,
        # Only create and animate offer --preview (their endpoint has `preview_mode`).
        **({"preview_mode": True} if request.preview else {}),
    }


def sound_body(request: GenerationRequest) -> dict[str, Any]:
    """The sound fields of a `videos/create` request (v5's own; see bot/kinds/sound.py)."""
    return {
        "sound_effect_prompt": request.sound_effect,
        "auto_sound": request.auto_sound,
        "lip_sync_tts_prompt": request.speech,
        "lip_sync_tts_speaker_id": request.speaker_id,
    }
