"""Editing a video: /modify (POST videos/modify) and /extend (POST videos/extend).

Both work on a video PixVerse made (the ✏️ Modify and ➕ Extend buttons under a result:
`video_id`, on the account that made it) or on one the user sends with the command as
its caption (`video_path`, after the upload; bot.media checks it first).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from bot.catalogue import Feature
from bot.commands import RequestBuilder, _Command, check_prompt
from bot.domain import GenerationRequest, JobKind
from bot.errors import InvalidInput
from bot.kinds.base import PENDING_UPLOAD, GenerationKind
from bot.media import ALLOWED_VIDEO_TYPES, UserVideo
from bot.text_options import COMMON_OPTIONS, Option
from bot.upstream.models import MODIFY_QUALITIES, ExtendRequest, ModifyRequest


def _common(*fields: str) -> tuple[Option, ...]:
    """The shared options an edit takes (modify has no model, length or audio to choose)."""
    return tuple(option for option in COMMON_OPTIONS if option.field in fields)


class Modify(_Command):
    """/modify: the change to make to the user's video."""

    prompt: str

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; say what to change, e.g. /modify make it snow")
        return check_prompt(value) or value


def modify_quality(quality: str) -> str:
    """`quality` where modify makes it, else its best (a 1080p video is modified at 720p)."""
    return quality if quality in MODIFY_QUALITIES else MODIFY_QUALITIES[-1]


def _build_modify(builder: RequestBuilder, cmd: Modify, _blobs: tuple[str, ...] = ()) -> GenerationRequest:
    common = builder.common(cmd, Feature.MODIFY)
    builder.catalogue.require(common["model"], Feature.MODIFY, "/modify")
    if common["quality"] not in MODIFY_QUALITIES and cmd.quality:
        raise InvalidInput("quality", f"{cmd.quality} is not available for /modify; use {', '.join(MODIFY_QUALITIES)}")
    request = GenerationRequest(
        kind=JobKind.MODIFY,
        user_prompt=cmd.prompt,
        model=common["model"],
        quality=modify_quality(common["quality"]),
        seed=common["seed"],
        off_peak=common["off_peak"],
        source_video_path=PENDING_UPLOAD,
    )
    return builder.recompose(request)


def _modify_body(request: GenerationRequest) -> dict[str, Any]:
    return {
        "model": request.model,
        "prompt": request.prompt,
        "video_id": request.source_video_id,
        "video_path": request.source_video_path,
        "quality": request.quality,
        "seed": request.seed,
        "off_peak_mode": request.off_peak or None,
    }


def _modified_length(request: GenerationRequest, video: UserVideo) -> GenerationRequest:
    # The result is as long as the source: that is what it costs and what its caption says.
    return request.with_changes(duration=video.whole_seconds)


MODIFY = GenerationKind(
    name="modify",
    job_kind=JobKind.MODIFY,
    summary="Change your own video as you describe",
    usage="<the change> [options] (as the caption of a video you send)",
    example="modify make it snow",
    command=Modify,
    options=(),
    build=_build_modify,
    request_type=ModifyRequest,
    body=_modify_body,
    prompt_required=True,
    prompt_help="What to change in the video",
    prompt_name="change",
    feature=Feature.MODIFY,
    common_options=_common("seed_value", "quality", "off_peak"),
    with_video=_modified_length,
    video_help=f"The video to change ({ALLOWED_VIDEO_TYPES})",
)


class Extend(_Command):
    """/extend: how the user's video goes on (optional)."""

    prompt: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return check_prompt(value) or None


def _build_extend(builder: RequestBuilder, cmd: Extend, _blobs: tuple[str, ...] = ()) -> GenerationRequest:
    request = GenerationRequest(
        kind=JobKind.EXTEND,
        user_prompt=cmd.prompt or "",
        **(builder.common(cmd, Feature.EXTEND) | {"audio": False}),  # extend has no audio field
        source_video_path=PENDING_UPLOAD,
    )
    return builder.checked(builder.recompose(request), Feature.EXTEND, "/extend")


def _extend_body(request: GenerationRequest) -> dict[str, Any]:
    return {
        "model": request.model,
        "prompt": request.prompt or None,
        "video_id": request.source_video_id,
        "video_path": request.source_video_path,
        "duration": request.duration,
        "quality": request.quality,
        "seed": request.seed,
        "off_peak_mode": request.off_peak or None,
    }


def _as_is(request: GenerationRequest, _video: UserVideo) -> GenerationRequest:
    return request  # the extension's length is the --duration asked, whatever the source's


EXTEND = GenerationKind(
    name="extend",
    job_kind=JobKind.EXTEND,
    summary="Make your own video longer",
    usage="[prompt] [options] (as the caption of a video you send)",
    example="extend the camera pulls back --duration 5",
    command=Extend,
    options=(),
    build=_build_extend,
    request_type=ExtendRequest,
    body=_extend_body,
    prompt_help="How the video goes on",
    feature=Feature.EXTEND,
    remixable=False,  # an extension is continued or made again, not remixed
    common_options=_common("seed_value", "model", "duration", "quality", "off_peak"),
    with_video=_as_is,
    video_help=f"The video to continue ({ALLOWED_VIDEO_TYPES})",
)
