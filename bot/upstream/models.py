"""Typed shapes of the useapi.net PixVerse v2 API (requests and responses).

Requests validate the documented limits, so a bad request fails here with a message
that names the field, before anything reaches the network. Responses allow extra
fields: the upstream adds fields over time and we must not break when it does.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bot.catalogue import Catalogue, Feature, shipped_catalogue

# Documented limits (seeds/v2/post-pixverse-videos-create-v4.md, model-capabilities.md).
MAX_PROMPT_CHARS = 2048
MAX_LIP_SYNC_TTS_CHARS = 140
# POST videos/lipsync: its text prompt, and the longest audio track it takes.
MAX_LIPSYNC_PROMPT_CHARS = 200
MAX_LIPSYNC_AUDIO_SECONDS = 60
MAX_REPLY_FIELD_CHARS = 1024
SEED_MIN, SEED_MAX = 1, 2_147_483_647
DURATION_MIN, DURATION_MAX = 1, 10
DURATION_MAX_1080P = 8
FRAMES_DURATION_MAX = 8  # create-frames is limited to 8 s (model-capabilities.md)
MAX_JOBS_MIN, MAX_JOBS_MAX = 1, 8
# create-transition (seeds/v2/post-pixverse-videos-create-transition.md): 2 to 7 frames,
# each transition 1 to 8 seconds; 3 or more frames only on the models with transition_multi.
TRANSITION_FRAMES_MIN, TRANSITION_FRAMES_MAX = 2, 7
TRANSITION_SEGMENT_MIN, TRANSITION_SEGMENT_MAX = 1, 8
UPSTREAM_DEFAULT_MULTI_TRANSITION_MODEL = "v5"
# create-fusion (seeds/v2/post-pixverse-videos-create-fusion.md): up to 3 pictures the
# prompt names @pic1 … @pic3, model v5 only, its own seed range.
FUSION_PICTURES_MAX = 3
FUSION_SEED_MIN, FUSION_SEED_MAX = 1, 999_999
UPSTREAM_DEFAULT_FUSION_MODEL = "v5"
_PICTURE_REFERENCE = re.compile(r"@pic(\d+)", re.IGNORECASE)
# The Content-Types POST files accepts (seeds/v2/post-pixverse-files.md), lower-cased:
# MIME types compare case-insensitively.
UPLOAD_CONTENT_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp",
        "video/mp4", "video/quicktime", "video/3gpp", "video/x-matroska", "video/x-flv", "video/mpeg",
        "video/mp2t", "video/x-msvideo", "video/x-motion-jpeg", "video/webm", "video/ogg",
        "audio/wav", "audio/wave", "audio/mpeg",
    }
)  # fmt: skip


# The model each endpoint uses when none is named (its doc page).
UPSTREAM_DEFAULT_MODEL = "v5.6"
UPSTREAM_DEFAULT_EXTEND_MODEL = "v5.5"
# videos/modify runs on v5.5 only, up to 720p (seeds/v2/post-pixverse-videos-modify.md).
UPSTREAM_DEFAULT_MODIFY_MODEL = "v5.5"
MODIFY_QUALITIES = ("360p", "540p", "720p")


class Quality(StrEnum):
    P360 = "360p"
    P540 = "540p"
    P720 = "720p"
    P1080 = "1080p"


class AspectRatio(StrEnum):
    WIDE = "16:9"
    TALL = "9:16"
    SQUARE = "1:1"
    CLASSIC = "4:3"
    PORTRAIT = "3:4"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, populate_by_name=True)

    def payload(self) -> dict[str, Any]:
        """The JSON body to send: unset options are left out, as the docs show."""
        return self.model_dump(exclude_none=True, by_alias=True)


def catalogue_of(info: ValidationInfo) -> Catalogue:
    """The model catalogue a request is validated against: the one passed as validation
    context (`model_validate(data, context={"catalogue": ...})`), else the shipped one."""
    context = info.context if isinstance(info.context, dict) else {}
    catalogue = context.get("catalogue")
    return catalogue if isinstance(catalogue, Catalogue) else shipped_catalogue()


class RoutedRequest(_Request):
    """What every generation request may carry: the callback and useapi.net's routing."""

    replyUrl: str | None = Field(default=None, max_length=MAX_REPLY_FIELD_CHARS)
    replyRef: str | None = Field(default=None, max_length=MAX_REPLY_FIELD_CHARS)
    maxJobs: int | None = Field(default=None, ge=MAX_JOBS_MIN, le=MAX_JOBS_MAX)


class _ModelRequest(RoutedRequest):
    """A request that names a PixVerse model: the model must be one the catalogue knows,
    and the options it is given must be ones that model has. It runs on `email`'s account."""

    model: str | None = None
    email: str | None = None
    quality: Quality | None = None
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    off_peak_mode: bool | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in catalogue_of(info):
            raise ValueError(f"{value!r} is not supported; use one of {', '.join(catalogue_of(info).names)}")
        return value

    def _require(self, info: ValidationInfo, feature: Feature, what: str, default_model: str) -> None:
        catalogue = catalogue_of(info)
        model = self.model or default_model
        if model in catalogue and not catalogue.get(model).has(feature):
            allowed = ", ".join(sorted(catalogue.having(feature)))
            raise ValueError(f"{what} {allowed}, not {model}")


class _SoundRequest(_ModelRequest):
    """A request that may ask for sound: generated audio, sound effects, speech, a preview."""

    audio: bool | None = None
    auto_sound: bool | None = None
    sound_effect_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    lip_sync_tts_prompt: str | None = Field(default=None, max_length=MAX_LIP_SYNC_TTS_CHARS)
    lip_sync_tts_speaker_id: str | None = None
    preview_mode: bool | None = None


def _check_duration_quality(duration: int | None, quality: str | None) -> None:
    if duration is not None and quality == Quality.P1080 and duration > DURATION_MAX_1080P:
        raise ValueError(
            f"duration {duration}s is too long for 1080p; 1080p allows at most "
            f"{DURATION_MAX_1080P} seconds (other qualities up to {DURATION_MAX})"
        )


class CreateVideoRequest(_SoundRequest):
    """POST videos/create."""

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    first_frame_path: str | None = None
    last_frame_path: str | None = None
    template_id: int | None = None
    duration: int | None = Field(default=None, ge=DURATION_MIN, le=DURATION_MAX)
    aspect_ratio: AspectRatio | None = None

    @model_validator(mode="after")
    def _model_specific_options(self, info: ValidationInfo) -> CreateVideoRequest:
        _check_duration_quality(self.duration, self.quality)
        if self.template_id is not None and self.model is not None:
            raise ValueError("model must not be set together with template_id (the effect decides)")
        _check_audio(self, info)
        return self


def _check_audio(
    request: _SoundRequest,
    info: ValidationInfo,
    default_model: str = UPSTREAM_DEFAULT_MODEL,
) -> None:
    if request.audio:
        request._require(info, Feature.AUDIO, "audio is only available on models", default_model)
    if request.lip_sync_tts_prompt:
        request._require(info, Feature.LIP_SYNC, "lip_sync_tts_prompt is only available on models", default_model)
    if request.sound_effect_prompt:
        request._require(info, Feature.SOUND_EFFECTS, "sound_effect_prompt is only available on models", default_model)
    if request.auto_sound:
        request._require(info, Feature.AUTO_SOUND, "auto_sound is only available on models", default_model)


class CreateFramesRequest(_SoundRequest):
    """POST videos/create-frames: a video from a first to a last frame (at most 8 s)."""

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    first_frame_path: str = Field(min_length=1)
    last_frame_path: str = Field(min_length=1)
    duration: int | None = Field(default=None, ge=DURATION_MIN, le=FRAMES_DURATION_MAX)

    @model_validator(mode="after")
    def _model_specific_options(self, info: ValidationInfo) -> CreateFramesRequest:
        self._require(info, Feature.FRAMES, "create-frames works with models", UPSTREAM_DEFAULT_MODEL)
        _check_audio(self, info)
        return self


def picture_references(prompt: str) -> list[int]:
    """The picture numbers a fusion prompt names (`@pic2` → 2), in order of first mention."""
    return list(dict.fromkeys(int(n) for n in _PICTURE_REFERENCE.findall(prompt)))


def _segment_seconds(value: Any) -> Any:
    """A transition's seconds as the docs show them (`"3"`); a number is taken too."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or not TRANSITION_SEGMENT_MIN <= int(text) <= TRANSITION_SEGMENT_MAX:
        raise ValueError(f"{value!r} is not supported; use {TRANSITION_SEGMENT_MIN} to {TRANSITION_SEGMENT_MAX}")
    return str(int(text))


class CreateTransitionRequest(_SoundRequest):
    """POST videos/create-transition: 2 to 7 frames, a duration and a prompt per transition."""

    frame_1_path: str = Field(min_length=1)
    frame_2_path: str = Field(min_length=1)
    frame_3_path: str | None = None
    frame_4_path: str | None = None
    frame_5_path: str | None = None
    frame_6_path: str | None = None
    frame_7_path: str | None = None
    duration_1_to_2: str | None = None
    duration_2_to_3: str | None = None
    duration_3_to_4: str | None = None
    duration_4_to_5: str | None = None
    duration_5_to_6: str | None = None
    duration_6_to_7: str | None = None
    prompt_1_to_2: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    prompt_2_to_3: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    prompt_3_to_4: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    prompt_4_to_5: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    prompt_5_to_6: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    prompt_6_to_7: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    # Shorter here than on create: the create-transition docs allow 140 characters.
    sound_effect_prompt: str | None = Field(default=None, max_length=MAX_LIP_SYNC_TTS_CHARS)

    @field_validator(*(f"duration_{n}_to_{n + 1}" for n in range(1, TRANSITION_FRAMES_MAX)), mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return _segment_seconds(value)

    @property
    def frame_paths(self) -> list[str]:
        """The frames given, in order (they must come without gaps)."""
        paths = [getattr(self, f"frame_{n}_path") for n in range(1, TRANSITION_FRAMES_MAX + 1)]
        return [p for p in paths if p]

    @model_validator(mode="after")
    def _frames_and_model(self, info: ValidationInfo) -> CreateTransitionRequest:
        frames = len(self.frame_paths)
        for n in range(1, TRANSITION_FRAMES_MAX + 1):
            if getattr(self, f"frame_{n}_path") is None and n <= frames:
                raise ValueError(f"frame_{n}_path is missing; frames must be given in order, without gaps")
        for n in range(frames, TRANSITION_FRAMES_MAX):
            for name in (f"duration_{n}_to_{n + 1}", f"prompt_{n}_to_{n + 1}"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is given, but frame_{n + 1}_path is not")
        if frames > TRANSITION_FRAMES_MIN:
            if self.audio:
                raise ValueError("audio is only available with 2 frames")
            self._require(
                info,
                Feature.TRANSITION_MULTI,
                "create-transition with 3 or more frames works with models",
                UPSTREAM_DEFAULT_MULTI_TRANSITION_MODEL,
            )
        else:
            self._require(info, Feature.TRANSITION, "create-transition works with models", UPSTREAM_DEFAULT_MODEL)
        default_model = UPSTREAM_DEFAULT_MULTI_TRANSITION_MODEL if frames > 2 else UPSTREAM_DEFAULT_MODEL
        _check_audio(self, info, default_model)
        return self


class CreateFusionRequest(_ModelRequest):
    """POST videos/create-fusion: up to three pictures the prompt names @pic1 … @pic3 (v5 only)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    frame_1_path: str = Field(min_length=1)
    frame_2_path: str | None = None
    frame_3_path: str | None = None
    duration: int | None = Field(default=None, ge=DURATION_MIN, le=DURATION_MAX)
    aspect_ratio: AspectRatio | None = None
    # Fusion has a seed range of its own.
    seed: int | None = Field(default=None, ge=FUSION_SEED_MIN, le=FUSION_SEED_MAX)

    @property
    def frame_paths(self) -> list[str]:
        return [p for p in (self.frame_1_path, self.frame_2_path, self.frame_3_path) if p]

    @model_validator(mode="after")
    def _pictures_and_model(self, info: ValidationInfo) -> CreateFusionRequest:
        if self.frame_3_path and not self.frame_2_path:
            raise ValueError("frame_2_path is missing; frame_3_path needs it (pictures come in order)")
        given = len(self.frame_paths)
        for number in picture_references(self.prompt):
            if not 1 <= number <= given:
                raise ValueError(f"prompt names @pic{number}, but only frame_1_path … frame_{given}_path are given")
        self._require(info, Feature.FUSION, "create-fusion works with models", UPSTREAM_DEFAULT_FUSION_MODEL)
        _check_duration_quality(self.duration, self.quality)
        return self


class UpscaleRequest(RoutedRequest):
    """POST videos/upscale (no email: it runs on the account that made the video)."""

    video_id: str = Field(min_length=1)


class ExtendRequest(_ModelRequest):
    """POST videos/extend (the models whose catalogue entry has `extend`)."""

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    video_id: str | None = None
    video_path: str | None = None
    duration: int | None = Field(default=None, ge=DURATION_MIN, le=DURATION_MAX)

    @model_validator(mode="after")
    def _source_and_model(self, info: ValidationInfo) -> ExtendRequest:
        if not (self.video_id or self.video_path):
            raise ValueError("extend needs video_id or video_path")
        self._require(info, Feature.EXTEND, "extend works with models", UPSTREAM_DEFAULT_EXTEND_MODEL)
        _check_duration_quality(self.duration, self.quality)
        return self


class LipSyncRequest(RoutedRequest):
    """POST videos/lipsync: a video made to speak `prompt` in a voice, or to an uploaded audio track.

    Without `email` it runs on the account that made `video_id` (v5 only), like an
    upscale; a `video_path` (an upload, reachable from every account) runs on `email`.
    """

    email: str | None = None
    video_id: str | None = None
    video_path: str | None = None
    audio_path: str | None = None
    prompt: str | None = Field(default=None, max_length=MAX_LIPSYNC_PROMPT_CHARS)
    speaker_id: str | None = None
    original_sound_switch: bool | None = None
    off_peak_mode: bool | None = None

    @model_validator(mode="after")
    def _source_and_sound(self) -> LipSyncRequest:
        if not (self.video_id or self.video_path):
            raise ValueError("lipsync needs video_id or video_path")
        if not (self.audio_path or self.prompt):
            raise ValueError("lipsync needs a prompt to speak or an audio_path")
        if self.audio_path and self.prompt:
            raise ValueError("lipsync takes a prompt or an audio_path, not both")
        return self


class ModifyRequest(_ModelRequest):
    """POST videos/modify: a PixVerse video (`video_id`) or an uploaded one (`video_path`)
    changed as `prompt` says; no duration (the result is as long as the source)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    video_id: str | None = None
    video_path: str | None = None

    @model_validator(mode="after")
    def _source_model_quality(self, info: ValidationInfo) -> ModifyRequest:
        if not (self.video_id or self.video_path):
            raise ValueError("modify needs video_id or video_path")
        if self.quality is not None and self.quality not in MODIFY_QUALITIES:
            raise ValueError(f"quality {self.quality} is not supported by modify; use {', '.join(MODIFY_QUALITIES)}")
        self._require(info, Feature.MODIFY, "modify works with models", UPSTREAM_DEFAULT_MODIFY_MODEL)
        return self


class AccountConfigRequest(_Request):
    """POST accounts/{email}."""

    email: str = Field(min_length=3)
    password: str = Field(min_length=1)
    maxJobs: int = Field(ge=MAX_JOBS_MIN, le=MAX_JOBS_MAX)
    token: str | None = None

    def __repr_args__(self):  # never show the password in a repr
        return [(k, "…secured…" if k in {"password", "token"} and v else v) for k, v in super().__repr_args__()]


# ---------------------------------------------------------------- responses


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class VideoStatus(StrEnum):
    """The `video_status_name`s of the documented status table."""

    COMPLETED = "COMPLETED"
    QUEUED = "QUEUED"
    MODERATED = "MODERATED"
    GENERATING = "GENERATING"


# The status table of seeds/v2/get-pixverse-videos.md: `video_status` → its name. The
# API derives `video_status_name` and `video_status_final` from the code, so the code
# decides when both are present. QUEUED is *final* there although the video is not
# made yet: an off-peak video waiting for its hours.
DOCUMENTED_STATUSES: dict[int, VideoStatus] = {
    1: VideoStatus.COMPLETED,
    5: VideoStatus.QUEUED,
    7: VideoStatus.MODERATED,
    9: VideoStatus.GENERATING,
    10: VideoStatus.GENERATING,
}


class VideoStage(StrEnum):
    """Where a video stands, read from the documented status table (`Video.stage`)."""

    WAITING_OFF_PEAK = "waiting_off_peak"  # 5 QUEUED: an off-peak video waiting for its hours
    GENERATING = "generating"  # 9, 10 GENERATING
    SUCCEEDED = "succeeded"  # 1 COMPLETED with a url
    MODERATED = "moderated"  # 7 MODERATED
    # A final video the table has no status for, carrying the model's `error` text:
    # the docs report a failure no other way (the table lists no failure status).
    FAILED = "failed"
    # Anything else (a status the table does not list, COMPLETED without a url): not
    # guessed at; the tracker logs it once and waits until the job's time-out.
    UNEXPECTED = "unexpected"


FINISHED_STAGES = frozenset({VideoStage.SUCCEEDED, VideoStage.MODERATED, VideoStage.FAILED})


class Video(_Response):
    """A video as GET videos/{id}, GET videos and the replyUrl callback describe it."""

    video_id: str | None = None
    image_id: str | None = None
    video_status: int | None = None
    video_status_name: str | None = None
    video_status_final: bool | None = None
    url: str | None = None
    prompt: str | None = None
    model: str | None = None
    seed: int | None = None
    quality: str | None = None
    duration: int | None = None
    video_duration: int | None = None
    aspect_ratio: str | None = None
    off_peak: int | None = None
    created_at: str | None = None
    first_frame: str | None = None
    output_width: int | None = None
    output_height: int | None = None
    replyRef: str | None = None
    error: str | None = None

    @field_validator("seed", "video_status", "off_peak", "duration", "video_duration", mode="before")
    @classmethod
    def _lenient_int(cls, value: Any) -> Any:
        # The upstream sometimes sends numbers as strings (or "" for none).
        if value == "" or value is None:
            return None
        return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else value

    @property
    def status(self) -> VideoStatus | None:
        """The documented status, from the code (or the name when no code came); None when unlisted."""
        if self.video_status is not None:
            return DOCUMENTED_STATUSES.get(self.video_status)
        name = self.video_status_name
        return VideoStatus(name) if name is not None and name in frozenset(VideoStatus) else None

    @property
    def stage(self) -> VideoStage:
        """What the video's status means for its job (see `VideoStage`)."""
        match self.status:
            case VideoStatus.COMPLETED:
                return VideoStage.SUCCEEDED if self.url else VideoStage.UNEXPECTED
            case VideoStatus.MODERATED:
                return VideoStage.MODERATED
            case VideoStatus.QUEUED:
                return VideoStage.WAITING_OFF_PEAK
            case VideoStatus.GENERATING:
                return VideoStage.GENERATING
        if self.video_status_final and self.error:
            return VideoStage.FAILED
        return VideoStage.UNEXPECTED

    @property
    def is_finished(self) -> bool:
        """Made, refused or failed for good. Not `video_status_final`, which a QUEUED
        off-peak video also carries while it waits for its hours."""
        return self.stage in FINISHED_STAGES

    @property
    def succeeded(self) -> bool:
        """Success is COMPLETED *with* a url."""
        return self.stage is VideoStage.SUCCEEDED

    @property
    def moderated(self) -> bool:
        return self.stage is VideoStage.MODERATED

    def describe_status(self) -> str:
        """The raw status fields, for logs."""
        return (
            f"video_status={self.video_status!r} video_status_name={self.video_status_name!r} "
            f"video_status_final={self.video_status_final!r} url={'yes' if self.url else 'no'}"
        )

    @classmethod
    def from_callback(cls, body: dict[str, Any]) -> Video:
        """Parse a replyUrl POST body; `replyRef` may be top-level or under `response`."""
        data = dict(body)
        nested = data.get("response")
        if isinstance(nested, dict):
            merged = {**nested, **{k: v for k, v in data.items() if k != "response"}}
            ref = data.get("replyRef") or nested.get("replyRef")
            data = merged | ({"replyRef": ref} if ref else {})
        return cls.model_validate(data)


class VideoCreated(_Response):
    video_id: str | None = None
    image_id: str | None = None

    @property
    def id(self) -> str:
        return self.video_id or self.image_id or ""


class VideoPage(_Response):
    data: list[Video] = Field(default_factory=list)
    next_offset: int | None = None
    total: int | None = None


class UploadedImage(_Response):
    id: int | str | None = None
    url: str | None = None
    path: str | None = None
    size: int | None = None
    name: str | None = None
    err_msg: str | None = None


class UploadedFile(_Response):
    """POST files: images answer `result[0]` (id, path); video/audio answer `path`, `url`."""

    result: list[UploadedImage] | None = None
    path: str | None = None
    url: str | None = None

    @property
    def reference_path(self) -> str:
        """The path to pass as `first_frame_path` / `video_path`."""
        if self.result:
            return self.result[0].path or ""
        return self.path or ""


class SchedulerJob(_Response):
    """An entry of GET scheduler (`videoId`) or GET scheduler/available (`video_id`)."""

    video_id: str | None = Field(default=None, validation_alias="videoId")
    started: str | None = None
    elapsed: str | None = None
    replyUrl: str | None = None
    replyRef: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _either_id_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "video_id" in data and "videoId" not in data:
            data = {**data, "videoId": data["video_id"]}
        return data


class AccountCapacity(_Response):
    email: str
    maxJobs: int = 0
    executing: int = 0
    available: int = 0


class SchedulerAvailability(_Response):
    executing: list[SchedulerJob] = Field(default_factory=list)
    available: list[AccountCapacity] = Field(default_factory=list)


class Features(_Response):
    """GET features: the account's plan and credit balances."""

    plan_name: str | None = None
    credit_daily: int = 0
    credit_monthly: int = 0
    credit_package: int = 0
    gen_simultaneously: int | None = None

    @property
    def credits_left(self) -> int:
        return self.credit_daily + self.credit_monthly + self.credit_package


class Account(_Response):
    email: str | None = None
    maxJobs: int | None = None


class Effect(_Response):
    """One template of GET videos/effects (all fields optional, as documented)."""

    template_id: int | None = None
    display_name: str | None = None
    display_prompt: str | None = None
    effect_type: str | None = None  # "1": one picture, "2": two (the second as last_frame_path)
    template_type: int | None = None  # 1: makes a video, 2: makes a picture (image_id)
    duration: int | None = None
    qualities: list[str] = Field(default_factory=list)
    video_base_cost: int | None = None
    fixed_cost: int | None = None  # the template's own extra; a template costs both
    example_text: str | None = None
    thumbnail_path: str | None = None
    thumbnail_video_path: str | None = None
    thumbnail_gif_path: str | None = None
    marker: str | None = None


class EffectPage(_Response):
    items: list[Effect] = Field(default_factory=list)
    total: int | None = None
    next_offset: int | None = None


class Voice(_Response):
    speaker_id: str | None = None
    display_name: str | None = None
    url: str | None = None


class VoiceList(_Response):
    tts_list: list[Voice] = Field(default_factory=list)


def account_email_of(video_id: str) -> str | None:
    """The account email inside `user:<uid>-pixverse:<email>-video:<n>` (or `-image:<n>`, an image_id)."""
    marker = "-pixverse:"
    start = video_id.find(marker)
    stop = max(video_id.rfind("-video:"), video_id.rfind("-image:"))
    if start < 0 or stop < 0 or stop <= start:
        return None
    return video_id[start + len(marker) : stop] or None
