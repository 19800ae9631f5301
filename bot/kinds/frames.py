"""/frames: a video from a first to a last frame (POST videos/create-frames)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.catalogue import Feature
from bot.commands import RequestBuilder, _Command, check_prompt
from bot.domain import GenerationRequest, ImageRef, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, Pictures, common_body
from bot.upstream import models as up
from bot.upstream.models import CreateFramesRequest


class Frames(_Command):
    """/frames: a video from a first to a last frame."""

    prompt: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return check_prompt(value) or None


def build(builder: RequestBuilder, cmd: Frames, blobs: tuple[str, ...]) -> GenerationRequest:
    """The request for `cmd` between the stored pictures `blobs` (first frame, last frame)."""
    request = GenerationRequest(kind=JobKind.FRAMES, user_prompt=cmd.prompt or "", **builder.common(cmd))
    if request.duration > up.FRAMES_DURATION_MAX:
        raise InvalidInput(
            "duration", f"{request.duration} is out of range for /frames; use 1 to {up.FRAMES_DURATION_MAX} seconds"
        )
    request = request.with_images(tuple(ImageRef(blob_id=blob) for blob in blobs))
    return builder.checked(builder.recompose(request), Feature.FRAMES, "/frames")


def _body(request: GenerationRequest) -> dict[str, Any]:
    first, last = request.image_paths
    return common_body(request) | {"first_frame_path": first, "last_frame_path": last}


FRAMES = GenerationKind(
    name="frames",
    job_kind=JobKind.FRAMES,
    summary="A video from a first to a last picture",
    usage="[prompt] [options]",
    example="frames the flower opens --duration 5",
    command=Frames,
    options=(),
    build=build,
    request_type=CreateFramesRequest,
    body=_body,
    prompt_help="What happens between the two pictures",
    pictures=Pictures(roles=("the first frame", "the last frame"), required=2),
    feature=Feature.FRAMES,
    picture_help=(
        f"The first frame ({ALLOWED_IMAGE_TYPES})",
        f"The last frame ({ALLOWED_IMAGE_TYPES})",
    ),
)
