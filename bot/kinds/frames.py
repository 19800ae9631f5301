"""/frames: a video from a first to a last frame (POST videos/create-frames)."""

from __future__ import annotations

from typing import Any

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.catalogue import Feature
from bot.commands import Frames, RequestBuilder
from bot.domain import GenerationRequest, JobKind
from bot.kinds.base import GenerationKind, Pictures, common_body
from bot.upstream.models import CreateFramesRequest


def _build(builder: RequestBuilder, command: Frames, blobs: tuple[str, ...]) -> GenerationRequest:
    return builder.frames(command, blobs)


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
    build=_build,
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
