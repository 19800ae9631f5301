"""The core's own vocabulary: who asked, what was asked, and the job that does it.

These types are platform-neutral: adapters translate Telegram/Discord/console
objects into them, and storage persists them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


class Platform(StrEnum):
    TELEGRAM = "telegram"
    DISCORD = "discord"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True)
class ChatRef:
    """Where a conversation happens: a Telegram chat (+ forum topic), a Discord channel (+ thread)."""

    platform: Platform
    chat_id: str
    thread_id: str | None = None
    # A group/server the chat belongs to (Discord guild; Telegram group == chat).
    group_id: str | None = None
    is_private: bool = False

    @property
    def group_key(self) -> str | None:
        """The group whose admins and quota pool govern this chat (None for private chats)."""
        if self.is_private:
            return None
        return f"{self.platform}:{self.group_id or self.chat_id}"


@dataclass(frozen=True, slots=True)
class UserRef:
    platform: Platform
    user_id: str
    display_name: str = ""

    @property
    def key(self) -> str:
        """A stable id across platforms, e.g. `telegram:42`."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, where, and which message to answer."""

    user: UserRef
    chat: ChatRef
    reply_to: str | None = None
    # Set by the adapter from the platform (Telegram chat admin, Discord Manage Server):
    # may change this group's settings. Bot-wide operators come from settings.
    is_group_admin: bool = False
    # Platform-specific hints the adapter wants back with each event (e.g. a Discord
    # interaction token and its expiry). Opaque to the core; persisted with the job.
    context: dict[str, Any] = field(default_factory=dict)


class JobKind(StrEnum):
    """What the upstream is asked to do."""

    CREATE = "create"  # text to video (/create_single, reroll and remix of it)
    ANIMATE = "animate"  # image to video (/animate, reroll and remix of it)
    FRAMES = "frames"  # first and last frame to video (/frames, reroll and remix of it)
    TRANSITION = "transition"  # 2 to 7 pictures joined by transitions (/transition, reroll and remix of it)
    FUSION = "fusion"  # up to 3 pictures fused into one video (/fusion, reroll and remix of it)
    UPSCALE = "upscale"
    EXTEND = "extend"
    EFFECT = "effect"  # an effect template applied to one or two pictures (/effect, reroll of it)
    LIPSYNC = "lipsync"  # one of the bot's videos made to speak (🗣 button, /lipsync)
    MODIFY = "modify"  # a video changed as a prompt says (✏️ Modify, /modify on the user's own video)


class MediaType(StrEnum):
    """What a job makes: a video, or a picture (image effect templates, `template_type` 2)."""

    VIDEO = "video"
    PICTURE = "picture"


class ResultAction(StrEnum):
    """The buttons under a finished video."""

    REROLL = "reroll"
    REMIX = "remix"
    UPSCALE = "upscale"
    EXTEND = "extend"
    MODIFY = "modify"  # asks for the change to make, like remix asks for its prompt
    LIPSYNC = "lipsync"  # asks for the words to say (or a voice note, an audio file)


# The buttons that ask the presser for text first (the new prompt, the change to make, the
# words to say; lip-sync also takes a voice note or audio file instead where the chat can send one).
TEXT_ACTIONS = frozenset({ResultAction.REMIX, ResultAction.MODIFY, ResultAction.LIPSYNC})


class JobState(StrEnum):
    QUEUED = "queued"
    # Written before the create call, so a crash mid-call is resolved by looking
    # the job's replyRef up upstream instead of sending the request twice.
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    MODERATED = "moderated"
    CANCELLED = "cancelled"
    # The outcome has reached the chat (video, or the failure explained).
    DELIVERED = "delivered"


RUNNING_STATES = frozenset({JobState.SUBMITTED, JobState.GENERATING})
IN_FLIGHT_STATES = frozenset({JobState.SUBMITTING, *RUNNING_STATES})
OUTCOME_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.MODERATED, JobState.CANCELLED})
# Which transitions are legal; storage enforces them with compare-and-set.
ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.SUBMITTING, JobState.FAILED, JobState.CANCELLED, JobState.MODERATED}),
    JobState.SUBMITTING: frozenset(
        {JobState.QUEUED, JobState.SUBMITTED, JobState.FAILED, JobState.MODERATED, JobState.CANCELLED}
    ),
    JobState.SUBMITTED: frozenset({JobState.GENERATING, *OUTCOME_STATES}),
    JobState.GENERATING: OUTCOME_STATES,
    JobState.COMPLETED: frozenset({JobState.DELIVERED}),
    JobState.FAILED: frozenset({JobState.DELIVERED}),
    JobState.MODERATED: frozenset({JobState.DELIVERED}),
    JobState.CANCELLED: frozenset({JobState.DELIVERED}),
    JobState.DELIVERED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One picture of a request: its stored copy until uploaded, then its upstream path."""

    blob_id: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A fully resolved v2 generation: what will be sent upstream (minus routing fields).

    `prompt` is the text sent to PixVerse (v1 style, character, negative prompt and
    motion already folded in); `user_prompt` is what the user typed, kept for captions,
    remix and moderation.
    """

    kind: JobKind
    user_prompt: str = ""
    prompt: str = ""
    model: str = "v5.5"
    duration: int = 5
    quality: str = "540p"
    aspect_ratio: str = "16:9"
    seed: int = 0
    audio: bool = False
    off_peak: bool = False
    # v1 parameters as given, for captions and for rebuilding on remix.
    style: str | None = None
    negative_prompt: str | None = None
    character: str | None = None
    motion: int | None = None
    hd_quality: bool | None = None
    # The first picture (/animate's, /frames' first frame): its upstream path (set once
    # uploaded) and its stored copy until then.
    image_path: str | None = None
    image_blob_id: str | None = None
    # The pictures after the first, in order (/frames' last frame).
    more_images: tuple[ImageRef, ...] = ()
    # /transition: each transition's length and prompt, in order (one fewer than the
    # pictures); `duration` is their sum. No prompts: every transition takes `prompt`.
    segment_durations: tuple[int, ...] = ()
    segment_prompts: tuple[str, ...] = ()
    # upscale/extend/modify: the source video at the upstream, a video PixVerse made
    # (`source_video_id`) or one the user sent, uploaded with POST files (`source_video_path`).
    source_video_id: str | None = None
    source_video_path: str | None = None
    # create/animate --preview: a fast, cheaper draft (`preview_mode`); ⬆️ Upscale makes the full video.
    preview: bool = False
    # /effect: the template (it chooses its own model), its name for captions, its price
    # in credits when asked (video_base_cost + fixed_cost) and what it makes.
    template_id: int | None = None
    effect_name: str | None = None
    effect_credits: int | None = None
    makes: MediaType = MediaType.VIDEO
    # Sound on create (v5): a sound effect to describe, PixVerse's own soundtrack (None:
    # the upstream's default), and words the video speaks in a voice (`speaker_id`, with
    # its name for captions). A lip-sync job speaks `speech` too, or plays an audio
    # track: that file travels as the request's first media file (`image_blob_id` until
    # uploaded, then `image_path`), through the same store-then-upload path as a picture.
    sound_effect: str | None = None
    auto_sound: bool | None = None
    speech: str | None = None
    speaker_id: str | None = None
    voice_name: str | None = None

    @property
    def has_sound(self) -> bool:
        """Whether the video is asked to have sound of any kind (captions, prices)."""
        return bool(self.audio or self.sound_effect or self.auto_sound or self.speech)

    def with_changes(self, **changes: Any) -> GenerationRequest:
        return replace(self, **changes)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        """Every picture of the request, in order (none for text to video)."""
        if self.image_path is None and self.image_blob_id is None:
            return self.more_images
        return (ImageRef(self.image_blob_id, self.image_path), *self.more_images)

    @property
    def image_paths(self) -> tuple[str | None, ...]:
        return tuple(image.path for image in self.images)

    def with_images(self, images: tuple[ImageRef, ...]) -> GenerationRequest:
        """The request with these pictures (the first in the first-image fields)."""
        first = images[0] if images else ImageRef()
        return replace(self, image_blob_id=first.blob_id, image_path=first.path, more_images=tuple(images[1:]))


def new_job_id() -> str:
    """A short id: fits Telegram's 64-byte callback_data and Discord's custom_id."""
    return secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    requester: Requester
    request: GenerationRequest
    state: JobState = JobState.QUEUED
    # The outcome (completed/failed/moderated/cancelled), kept once the job is delivered.
    outcome: JobState | None = None
    action: ResultAction | None = None  # set when a button made this job
    parent_id: str | None = None
    video_id: str | None = None
    account: str | None = None
    result_url: str | None = None
    failure: str | None = None
    # Adapter's handle of the progress message it keeps editing.
    status_message_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    # When the scheduler may try again after a "busy" answer.
    not_before: datetime | None = None
    attempts: int = 0
    # Failed tries to post the outcome, and when the next may run (the Deliverer's
    # backoff; kept here so a restart does not start it over).
    delivery_attempts: int = 0
    deliver_after: datetime | None = None
    # Who asked to cancel the job while it was being sent (SUBMITTING): whoever moves it
    # on — back to the queue, or to running — cancels it then (bot/cancellation.py).
    cancel_requested_by: str | None = None
    # The bot process (bot/instances.py) responsible for the job's next step: the one that
    # moved it last. Another process takes the job over only once that one's lease ran out.
    owner: str | None = None

    @property
    def user(self) -> UserRef:
        return self.requester.user

    @property
    def chat(self) -> ChatRef:
        return self.requester.chat

    @property
    def is_finished(self) -> bool:
        return self.state in OUTCOME_STATES or self.state is JobState.DELIVERED

    @property
    def has_video(self) -> bool:
        """True when the job produced a video (buttons work on it)."""
        return (self.outcome or self.state) is JobState.COMPLETED and bool(self.video_id)

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)
