"""/fusion: up to three pictures fused into one video (POST videos/create-fusion).

The prompt names the pictures `@pic1`, `@pic2`, `@pic3`, in the order they were sent.
The endpoint has its own seed range (1…999999) and runs on the models with `fusion` (v5).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.catalogue import Catalogue, Feature
from bot.commands import RequestBuilder, _Command, check_prompt, one_of
from bot.domain import GenerationRequest, ImageRef, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, Pictures, common_body
from bot.text_options import Option
from bot.upstream.models import (
    FUSION_PICTURES_MAX,
    FUSION_SEED_MAX,
    FUSION_SEED_MIN,
    AspectRatio,
    CreateFusionRequest,
    picture_references,
)


class Fusion(_Command):
    """/fusion: a prompt naming the pictures @pic1 … @pic3, and the video's shape."""

    prompt: str
    aspect_ratio: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; describe the video and name the pictures @pic1, @pic2, @pic3")
        return check_prompt(value) or value

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect(cls, value: str | None) -> str | None:
        return None if value is None else one_of(value, [a.value for a in AspectRatio])


def build_fusion(builder: RequestBuilder, cmd: Fusion, blobs: tuple[str, ...]) -> GenerationRequest:
    """The request for `cmd` on these pictures; InvalidInput when the seed, a @pic or --audio does not fit."""
    if cmd.audio:
        # create-fusion has no audio field: a sound asked for would be dropped, yet charged and captioned.
        raise InvalidInput("audio", "/fusion makes no sound (create-fusion has no audio field); leave --audio out")
    if cmd.seed_value is not None and cmd.seed_value > FUSION_SEED_MAX:
        raise InvalidInput(
            "seed_value", f"{cmd.seed_value} is out of range for /fusion; use 0 (random) to {FUSION_SEED_MAX}"
        )
    for number in picture_references(cmd.prompt):
        if not 1 <= number <= len(blobs):
            names = ", ".join(f"@pic{n}" for n in range(1, len(blobs) + 1))
            raise InvalidInput(
                "prompt",
                f"names @pic{number}, but {len(blobs)} picture{'s' if len(blobs) > 1 else ''} came;"
                f" name them {names} (in the order they were sent)",
            )
    common = builder.common(cmd, Feature.FUSION) | {"seed": cmd.seed_value or FUSION.new_seed()}
    request = GenerationRequest(
        kind=JobKind.FUSION,
        user_prompt=cmd.prompt,
        aspect_ratio=cmd.aspect_ratio or builder.settings.default_aspect_ratio.value,
        **common,
    ).with_images(tuple(ImageRef(blob_id=blob) for blob in blobs))
    return builder.checked(RequestBuilder.recompose(request), Feature.FUSION, "/fusion")


def _body(request: GenerationRequest) -> dict[str, Any]:
    body = common_body(request) | {"aspect_ratio": request.aspect_ratio}
    body.pop("audio")  # create-fusion has no audio field
    return body | {f"frame_{n}_path": path for n, path in enumerate(request.image_paths, 1)}


def _aspect_ratios(catalogue: Catalogue) -> tuple[str, ...]:
    return catalogue.aspect_ratios


FUSION = GenerationKind(
    name="fusion",
    job_kind=JobKind.FUSION,
    summary="Fuse up to three pictures into one video; the prompt names them @pic1 @pic2 @pic3",
    usage="<prompt naming @pic1 @pic2 @pic3> [options]",
    example="fusion @pic1 hugs @pic2 on a beach --ar 16:9",
    command=Fusion,
    options=(
        Option("aspect_ratio", ("ar", "aspect", "aspect_ratio"), help="Shape of the video", choices=_aspect_ratios),
    ),
    build=build_fusion,
    request_type=CreateFusionRequest,
    body=_body,
    prompt_required=True,
    prompt_help="The video, naming the pictures @pic1, @pic2, @pic3 in the order sent",
    pictures=Pictures(roles=tuple(f"@pic{n}" for n in range(1, FUSION_PICTURES_MAX + 1)), required=1),
    feature=Feature.FUSION,
    picture_help=tuple(f"@pic{n} in the prompt ({ALLOWED_IMAGE_TYPES})" for n in range(1, FUSION_PICTURES_MAX + 1)),
    seed_range=(FUSION_SEED_MIN, FUSION_SEED_MAX),
)
