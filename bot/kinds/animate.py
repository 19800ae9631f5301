"""/animate: a picture brought to life (POST videos/create with first_frame_path)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.commands import RequestBuilder, check_prompt, yes_no
from bot.domain import GenerationRequest, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, Pictures, common_body, sound_body
from bot.kinds.sound import SoundCommand, prepare_voice, sound_fields
from bot.text_options import ANIMATE_OPTIONS, MOTION_DEFAULT, MOTION_MAX, MOTION_MIN, PREVIEW_OPTION, SOUND_OPTIONS
from bot.upstream.models import CreateVideoRequest


class Animate(SoundCommand):
    """v1 /animate: an image brought to life."""

    prompt: str | None = None
    motion: int | None = None
    hd_quality: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return check_prompt(value) or None

    @field_validator("motion")
    @classmethod
    def _motion(cls, value: int | None) -> int | None:
        if value is not None and not MOTION_MIN <= value <= MOTION_MAX:
            raise ValueError(f"{value} is out of range; use {MOTION_MIN} to {MOTION_MAX} (default {MOTION_DEFAULT})")
        return value

    @field_validator("hd_quality", mode="before")
    @classmethod
    def _hd(cls, value: Any) -> Any:
        return None if value is None else yes_no(value)


def build(builder: RequestBuilder, cmd: Animate, blobs: tuple[str, ...]) -> GenerationRequest:
    """The request for `cmd` animating the stored picture `blobs[0]`; v1's motion folds into the prompt."""
    common = builder.common(cmd) | {"quality": _quality(builder, cmd)}
    request = GenerationRequest(
        kind=JobKind.ANIMATE,
        user_prompt=cmd.prompt or "",
        motion=cmd.motion,
        hd_quality=cmd.hd_quality,
        image_blob_id=blobs[0],
        **common,
        **sound_fields(cmd, common["model"], builder.catalogue),
    )
    return builder.checked(builder.recompose(request))


def _quality(builder: RequestBuilder, cmd: Animate) -> str:
    """v1's hd_quality picks the operator's HD or standard quality; an explicit quality
    that names another resolution contradicts it and is refused, never overridden."""
    s = builder.settings
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


def _body(request: GenerationRequest) -> dict[str, Any]:
    return common_body(request) | sound_body(request) | {"first_frame_path": request.image_path}


ANIMATE = GenerationKind(
    name="animate",
    job_kind=JobKind.ANIMATE,
    summary="Bring a picture to life",
    usage="[prompt] [options]",
    example="animate smiling and blinking --motion 7 --hd yes",
    command=Animate,
    options=(*ANIMATE_OPTIONS, *SOUND_OPTIONS, PREVIEW_OPTION),
    build=build,
    request_type=CreateVideoRequest,
    body=_body,
    prompt_help="What should happen in the video",
    pictures=Pictures(roles=("the picture",), required=1),
    picture_help=(f"The picture to animate ({ALLOWED_IMAGE_TYPES})",),
    prepare=prepare_voice,
    looked_up="voice",
)
