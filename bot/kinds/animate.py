"""/animate: a picture brought to life (POST videos/create with first_frame_path)."""

from __future__ import annotations

from typing import Any

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.commands import Animate, RequestBuilder
from bot.domain import GenerationRequest, JobKind
from bot.kinds.base import GenerationKind, Pictures, common_body
from bot.text_options import ANIMATE_OPTIONS
from bot.upstream.models import CreateVideoRequest


def _build(builder: RequestBuilder, command: Animate, blobs: tuple[str, ...]) -> GenerationRequest:
    return builder.animate(command, blobs[0])


def _body(request: GenerationRequest) -> dict[str, Any]:
    return common_body(request) | {"first_frame_path": request.image_path}


ANIMATE = GenerationKind(
    name="animate",
    job_kind=JobKind.ANIMATE,
    summary="Bring a picture to life",
    usage="[prompt] [options]",
    example="animate smiling and blinking --motion 7 --hd yes",
    command=Animate,
    options=ANIMATE_OPTIONS,
    build=_build,
    request_type=CreateVideoRequest,
    body=_body,
    prompt_help="What should happen in the video",
    pictures=Pictures(roles=("the picture",), required=1),
    picture_help=(f"The picture to animate ({ALLOWED_IMAGE_TYPES})",),
)
