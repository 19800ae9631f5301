"""Turning a job into the upstream request that runs it."""

from __future__ import annotations

from pydantic import ValidationError

from bot.domain import GenerationRequest, Job, JobKind
from bot.errors import InvalidInput
from bot.upstream import models as up

# The model extend falls back to when the source's model cannot extend (v5.6, v5-fast).
EXTEND_FALLBACK_MODEL = up.Model.V5_5

UpstreamRequest = up.CreateVideoRequest | up.UpscaleRequest | up.ExtendRequest


def build_upstream_request(
    request: GenerationRequest,
    *,
    email: str | None = None,
    reply_ref: str | None = None,
    reply_url: str | None = None,
) -> UpstreamRequest:
    """The v2 request for `request`; raises InvalidInput when it breaks an upstream limit."""
    # Off-peak jobs get no webhook upstream; sending one would only mislead.
    reply_url = None if request.off_peak else reply_url
    routing = {"replyRef": reply_ref, "replyUrl": reply_url}
    # Validated from plain values: pydantic turns the request's strings into the
    # upstream's enums and checks every documented limit on the way.
    try:
        if request.kind is JobKind.UPSCALE:
            return up.UpscaleRequest.model_validate({"video_id": request.source_video_id or "", **routing})
        if request.kind is JobKind.EXTEND:
            model = request.model if request.model in up.MODELS_THAT_EXTEND else EXTEND_FALLBACK_MODEL
            return up.ExtendRequest.model_validate(
                {
                    "email": email,
                    "model": model,
                    "prompt": request.prompt or None,
                    "video_id": request.source_video_id,
                    "duration": request.duration,
                    "quality": request.quality,
                    "seed": request.seed,
                    "off_peak_mode": request.off_peak or None,
                    **routing,
                }
            )
        return up.CreateVideoRequest.model_validate(
            {
                "email": email,
                "model": request.model,
                "prompt": request.prompt or None,
                "first_frame_path": request.image_path if request.kind is JobKind.ANIMATE else None,
                "duration": request.duration,
                "quality": request.quality,
                "aspect_ratio": request.aspect_ratio if request.kind is JobKind.CREATE else None,
                "audio": request.audio or None,
                "seed": request.seed,
                "off_peak_mode": request.off_peak or None,
                **routing,
            }
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        # Cross-field rules (1080p ≤ 8 s, audio only on …) have no location; their
        # message starts with the field it is about.
        field = ".".join(str(p) for p in err["loc"]) or message.split(" ", 1)[0]
        raise InvalidInput(field, message) from None


def validate_for_upstream(job: Job) -> None:
    """Dry run at accept time, so a request the upstream would refuse is refused at once."""
    validate_request(job.request, reply_ref=job.id)


def validate_request(request: GenerationRequest, *, reply_ref: str | None = None) -> None:
    """Raise InvalidInput when the upstream would refuse `request` (its image need not be uploaded yet)."""
    if request.kind is JobKind.ANIMATE and request.image_path is None:
        # The image is uploaded at submit time; validate with a stand-in path.
        request = request.with_changes(image_path="upload/pending")
    build_upstream_request(request, reply_ref=reply_ref)
