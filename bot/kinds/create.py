"""/create_single: a video from a text prompt (POST videos/create)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.commands import RequestBuilder, check_choice, check_prompt, one_of
from bot.domain import GenerationRequest, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, common_body, sound_body
from bot.kinds.sound import SoundCommand, prepare_voice, sound_fields
from bot.settings import V1_STYLES
from bot.text_options import CREATE_OPTIONS, PREVIEW_OPTION, SOUND_OPTIONS
from bot.upstream import models as up
from bot.upstream.models import CreateVideoRequest


class CreateSingle(SoundCommand):
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
        return check_prompt(value) or value

    @field_validator("negative_prompt")
    @classmethod
    def _negative(cls, value: str | None) -> str | None:
        return check_prompt(value) or None

    @field_validator("style")
    @classmethod
    def _style(cls, value: str | None) -> str | None:
        return None if value is None else one_of(value, V1_STYLES)

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect(cls, value: str | None) -> str | None:
        return None if value is None else one_of(value, [a.value for a in up.AspectRatio])


def build(builder: RequestBuilder, cmd: CreateSingle, _blobs: tuple[str, ...] = ()) -> GenerationRequest:
    """The request for `cmd`: v1's style and character (Anime only) fold into the prompt."""
    settings = builder.settings
    style = cmd.style or settings.default_style
    if cmd.character is not None:
        if style != "Anime":
            raise InvalidInput("character", f"only works with style Anime (the style here is {style})")
        cmd = cmd.model_copy(update={"character": check_choice("character", cmd.character, settings.anime_characters)})
    common = builder.common(cmd)
    request = GenerationRequest(
        kind=JobKind.CREATE,
        user_prompt=cmd.prompt,
        style=style,
        character=cmd.character,
        negative_prompt=cmd.negative_prompt,
        aspect_ratio=cmd.aspect_ratio or settings.default_aspect_ratio.value,
        **common,
        **sound_fields(cmd, common["model"], builder.catalogue),
    )
    return builder.checked(builder.recompose(request))


def _body(request: GenerationRequest) -> dict[str, Any]:
    return common_body(request) | sound_body(request) | {"aspect_ratio": request.aspect_ratio}


CREATE = GenerationKind(
    name="create_single",
    job_kind=JobKind.CREATE,
    summary="Make a short video from a text prompt",
    usage="<prompt> [options]",
    example="create_single a fox running through snow --ar 9:16 --style anime",
    command=CreateSingle,
    options=(*CREATE_OPTIONS, *SOUND_OPTIONS, PREVIEW_OPTION),
    build=build,
    request_type=CreateVideoRequest,
    body=_body,
    prompt_required=True,
    prepare=prepare_voice,
    looked_up="voice",
)
