"""/effect: an effect template applied to one picture or two (POST videos/create with template_id).

The template decides the model (the request never names one), how long the video is
and what it costs (`video_base_cost + fixed_cost` credits). An effect of `effect_type`
"2" takes two pictures, the second sent as `last_frame_path`; an image template
(`template_type` 2) makes a picture instead of a video.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.commands import RequestBuilder, _Command, random_seed
from bot.domain import GenerationRequest, ImageRef, JobKind
from bot.effects import EffectInfo
from bot.errors import InvalidInput
from bot.kinds.base import GenerationKind, Lookups, Pictures
from bot.text_options import COMMON_OPTIONS
from bot.upstream.models import CreateVideoRequest

# An effect has no prompt, model, length or quality of its own to choose: only the seed.
EFFECT_OPTIONS = tuple(option for option in COMMON_OPTIONS if option.field == "seed_value")
EFFECT_NAME_MAX = 100


class EffectCommand(_Command):
    """/effect <name or id>: `prompt` holds the effect as typed; `effect` is what it names."""

    prompt: str
    effect: EffectInfo | None = None  # set by `_prepare`, never by the user

    @field_validator("prompt")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; name the effect, e.g. /effect Hug (/effects lists them)")
        if len(value) > EFFECT_NAME_MAX:
            raise ValueError(f"is {len(value)} characters long; effect names have at most {EFFECT_NAME_MAX}")
        return value


async def _prepare(lookups: Lookups, command: EffectCommand) -> EffectCommand:
    return command.model_copy(update={"effect": await lookups.effects.find(command.prompt)})


def _build(_builder: RequestBuilder, command: EffectCommand, blobs: tuple[str, ...]) -> GenerationRequest:
    effect = command.effect
    if effect is None:
        raise ValueError("an /effect command is built only once its effect is looked up")
    if len(blobs) != effect.pictures:
        how = "an album of two photos" if effect.pictures == 2 else "one photo"
        raise InvalidInput(
            "image", f"the effect {effect.name} needs {effect.needs} (got {len(blobs)}); send {how} with the caption"
        )
    request = GenerationRequest(
        kind=JobKind.EFFECT,
        model="",  # the template's own
        duration=effect.duration,
        seed=command.seed_value or random_seed(),
        template_id=effect.template_id,
        effect_name=effect.name,
        effect_credits=effect.credits,
        makes=effect.makes,
    )
    return request.with_images(tuple(ImageRef(blob_id=blob) for blob in blobs))


def _body(request: GenerationRequest) -> dict[str, Any]:
    paths = request.image_paths
    return {
        # Never `model`: templates choose their own, and the upstream refuses both together.
        "template_id": request.template_id,
        "first_frame_path": paths[0] if paths else None,
        "last_frame_path": paths[1] if len(paths) > 1 else None,
        "seed": request.seed,
    }


EFFECT = GenerationKind(
    name="effect",
    job_kind=JobKind.EFFECT,
    summary="Apply a ready-made effect to a picture (or two)",
    usage="<effect name or id> [--seed N]",
    example="effect Hold Hands",
    command=EffectCommand,
    options=EFFECT_OPTIONS,
    common_options=(),
    build=_build,
    request_type=CreateVideoRequest,
    body=_body,
    prompt_required=True,
    prompt_help="The effect's name or id (/effects lists them)",
    pictures=Pictures(roles=("the picture", "a second one (two-picture effects)"), required=1),
    remixable=False,
    picture_help=(
        f"The picture ({ALLOWED_IMAGE_TYPES})",
        f"The second picture, for effects that take two ({ALLOWED_IMAGE_TYPES})",
    ),
    prepare=_prepare,
    prompt_name="effect",
    prompt_suggested=True,
)
