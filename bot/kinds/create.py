"""/create_single: a video from a text prompt (POST videos/create)."""

from __future__ import annotations

from typing import Any

from bot.commands import CreateSingle, RequestBuilder
from bot.domain import GenerationRequest, JobKind
from bot.kinds.base import GenerationKind, common_body
from bot.text_options import CREATE_OPTIONS
from bot.upstream.models import CreateVideoRequest


def _build(builder: RequestBuilder, command: CreateSingle, _blobs: tuple[str, ...]) -> GenerationRequest:
    return builder.create_single(command)


def _body(request: GenerationRequest) -> dict[str, Any]:
    return common_body(request) | {"aspect_ratio": request.aspect_ratio}


CREATE = GenerationKind(
    name="create_single",
    job_kind=JobKind.CREATE,
    summary="Make a short video from a text prompt",
    usage="<prompt> [options]",
    example="create_single a fox running through snow --ar 9:16 --style anime",
    command=CreateSingle,
    options=CREATE_OPTIONS,
    build=_build,
    request_type=CreateVideoRequest,
    body=_body,
    prompt_required=True,
)
