"""Turning a job into the upstream request that runs it."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from bot.catalogue import Catalogue, Feature, shipped_catalogue
from bot.domain import GenerationRequest, ImageRef, Job, JobKind
from bot.errors import ActionUnavailable
from bot.kinds import kind_of
from bot.kinds.base import PENDING_UPLOAD, upstream_refusal
from bot.upstream import models as up

UpstreamRequest = BaseModel  # one of the request models of bot.upstream.models


def extend_model(model: str, catalogue: Catalogue | None = None) -> str:
    """The model an extend of a `model` video runs on (Catalogue.extend_model_for).

    Raises ActionUnavailable when no model may extend it (the catalogue changed since
    the video was made, or its button is pressed anyway).
    """
    catalogue = catalogue or shipped_catalogue()
    runs_on = catalogue.extend_model_for(model)
    if runs_on is None:
        allowed = ", ".join(catalogue.having(Feature.EXTEND)) or "none"
        raise ActionUnavailable(f"Videos made with {model} cannot be extended; models that extend: {allowed}.")
    return runs_on


def source_account(request: GenerationRequest) -> str | None:
    """The account `request` must run on, or None when any will do.

    An upscale, extend, modify or lip-sync works on a video PixVerse keeps in the account
    that made it (the video id names that account): upscale and lip-sync run there
    implicitly, and the others are refused by any other account. A video the user uploaded (`source_video_path`)
    is reachable from every account.
    """
    return up.account_email_of(request.source_video_id) if request.source_video_id else None


def gets_callback(request: GenerationRequest) -> bool:
    """Whether the upstream is told the job's `replyUrl` (when webhooks are on).

    Off-peak jobs get none: the upstream holds them for hours under a status that
    looks final, and sending a callback URL would only mislead.
    """
    return not request.off_peak


def build_upstream_request(
    request: GenerationRequest,
    *,
    email: str | None = None,
    reply_ref: str | None = None,
    reply_url: str | None = None,
    catalogue: Catalogue | None = None,
) -> UpstreamRequest:
    """The v2 request for `request`; raises InvalidInput when it breaks an upstream limit."""
    catalogue = catalogue or shipped_catalogue()
    reply_url = reply_url if gets_callback(request) else None
    routing = {"replyRef": reply_ref, "replyUrl": reply_url}
    kind = kind_of(request.kind)
    if kind is not None:
        return kind.to_upstream(request, {"email": email, **routing}, catalogue)
    # An upscale or a lip-sync has no kind (only a button or /lipsync makes one); pydantic
    # checks its fields.
    context = {"catalogue": catalogue}
    try:
        if request.kind is JobKind.LIPSYNC:
            # One of the bot's videos (on the account that made it), or the user's own
            # (uploaded; it runs on the account the scheduler chose, so that one is named).
            # Words in a voice, or the audio track the user sent: it travels as the request's
            # first media file, uploaded like a picture (`image_path`).
            return up.LipSyncRequest.model_validate(
                {
                    "email": None if request.source_video_id else email,
                    "video_id": request.source_video_id,
                    "video_path": request.source_video_path,
                    "prompt": request.speech,
                    "speaker_id": request.speaker_id,
                    "audio_path": request.image_path,
                    "off_peak_mode": request.off_peak or None,
                    **routing,
                },
                context=context,
            )
        return up.UpscaleRequest.model_validate({"video_id": request.source_video_id or "", **routing}, context=context)
    except ValidationError as exc:
        raise upstream_refusal(exc) from None


def validate_for_upstream(job: Job, catalogue: Catalogue | None = None) -> None:
    """Dry run at accept time, so a request the upstream would refuse is refused at once."""
    validate_request(job.request, reply_ref=job.id, catalogue=catalogue)


def validate_request(
    request: GenerationRequest, *, reply_ref: str | None = None, catalogue: Catalogue | None = None
) -> None:
    """Raise InvalidInput when the upstream would refuse `request` (its pictures need not be uploaded yet)."""
    # Pictures are uploaded at submit time; validate with stand-in paths.
    request = request.with_images(tuple(ImageRef(i.blob_id, i.path or PENDING_UPLOAD) for i in request.images))
    build_upstream_request(request, reply_ref=reply_ref, catalogue=catalogue)
