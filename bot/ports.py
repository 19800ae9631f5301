"""The ports: what the core needs from the outside world, in the core's own types.

Storage (`storage/`), the upstream client (`bot/upstream`) and the chat adapters
(`adapters/`) implement these. Tests use `Fake*` implementations of the same ports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.domain import IN_FLIGHT_STATES, ChatRef, Job, JobState, MediaType, Platform, ResultAction, UserRef
from bot.upstream import models as up


@dataclass(frozen=True, slots=True)
class QueueUser:
    """A user with queued jobs, as the scheduler's fair order sees them."""

    user_key: str
    queued: int  # how many of their jobs are queued
    oldest: datetime  # when their oldest queued job was made
    last_served: datetime | None  # when a job of theirs was last sent; None: never


class JobStore(Protocol):
    """Persistence of jobs. Every state change is a compare-and-set."""

    async def add(self, job: Job) -> None:
        """Insert a new job (its id is unique)."""

    async def get(self, job_id: str) -> Job | None: ...

    async def transition(
        self, job_id: str, expected: JobState | Iterable[JobState], new_state: JobState, **changes: Any
    ) -> Job | None:
        """Move a job from one of `expected` to `new_state`, writing `changes` with it.

        Returns the updated job, or None when the job is not in an expected state
        (someone else moved it first). This is what makes duplicate callbacks and
        restart races harmless.
        """

    async def update(self, job_id: str, **changes: Any) -> Job | None:
        """Change non-state fields (status message id, not_before, attempts …)."""

    async def in_states(self, states: Iterable[JobState]) -> list[Job]:
        """Jobs in any of `states`, oldest first."""

    async def claimable(self, states: Iterable[JobState], *, platforms: Iterable[Platform] | None = None) -> list[Job]:
        """Jobs in any of `states` this process is responsible for, oldest first: those it
        owns, and those whose owner is gone (its lease ran out), taken over now. With
        `platforms`, only jobs of those chat platforms."""

    async def release(self, job_id: str) -> None:
        """Give up this process's ownership of the job (another process may claim it now)."""

    async def claim(self, job_id: str, states: Iterable[JobState]) -> Job | None:
        """The job, if it is in one of `states` and this process owns it or has just taken it
        over from a process that is gone; None when it is not, or another live process owns it."""

    async def recent_for_user(self, user: UserRef, limit: int = 10) -> list[Job]:
        """A user's newest jobs first."""

    async def find_by_video_id(self, video_id: str) -> Job | None: ...

    async def count_in_flight_by_user(
        self, states: Iterable[JobState] = IN_FLIGHT_STATES, *, off_peak: bool | None = None
    ) -> dict[str, int]:
        """How many jobs each user (UserRef.key) has in `states`; users with none are absent.

        `off_peak` True or False counts only off-peak jobs or only the others; None counts all."""

    # The queue in pieces: a scheduler pass reads what it sends and reports, never the whole queue.

    async def queued_users(self, *, after: QueueUser | None = None, limit: int) -> list[QueueUser]:
        """Users with queued jobs, never served first, then served longest ago, then oldest
        job first; at most `limit`, starting after `after`."""

    async def queued_users_named(self, user_keys: Iterable[str]) -> list[QueueUser]:
        """Those of `user_keys` that have queued jobs."""

    async def next_queued(
        self, user_key: str, *, now: datetime, after: Job | None = None, limit: int, off_peak: bool | None = None
    ) -> list[Job]:
        """The user's queued jobs that may be sent at `now`, oldest first, after `after`;
        `off_peak` True or False: only off-peak jobs or only the others."""

    async def queued_off_peak(self, *, now: datetime, after: Job | None = None, limit: int) -> list[Job]:
        """Queued off-peak jobs that may be sent at `now`, oldest first, after `after`."""

    async def queued_slice(
        self, *, offset: int = 0, after: Job | None = None, limit: int, created_before: datetime | None = None
    ) -> list[Job]:
        """Queued jobs oldest first, `limit` from place `offset` (0-based), counted from just
        after `after` when given; only older than `created_before` when given."""

    # A user's or a group's own jobs: /queue and /cancel (bot/cancellation.py).

    async def unfinished(self, *, user_key: str | None = None, group_key: str | None = None, limit: int) -> list[Job]:
        """The unfinished jobs of one user or one group (`ChatRef.group_key`), oldest first."""

    async def queued_rank(self, job: Job) -> int:
        """Which of its user's queued jobs `job` is (1: their oldest); 0 when not queued."""

    async def fair_ahead(self, user_key: str, rank: int) -> int:
        """Other users' queued jobs the fair order sends before the user's `rank`-th queued job."""

    async def fair_place(self, job: Job) -> int:
        """1-based place of a queued job in the scheduler's fair order (users take turns): the
        place /queue shows and progress messages say; 0 when it is not queued."""

    async def fair_slice(self, *, offset: int, limit: int) -> list[Job]:
        """Queued jobs in the fair order, `limit` from 0-based place `offset` (the first is at
        fair_place `offset + 1`); reads the users with queued jobs, not the queue."""

    async def queued_total(self) -> int:
        """How many jobs are queued in all."""

    async def recent_run_seconds(self, limit: int) -> list[float]:
        """How long the newest `limit` videos made took (sent to finished; no off-peak ones), newest first."""

    async def request_cancel(self, job_id: str, requested_by: str) -> Job | None:
        """Mark a SUBMITTING job to be cancelled once it moves on; None when it is not SUBMITTING."""

    async def clear_cancel_request(self, job_id: str) -> None:
        """Forget a cancel that can no longer be done."""


class BlobStore(Protocol):
    """Images kept across restarts until their job has uploaded them (stored by `JobAdmission`)."""

    async def get(self, blob_id: str) -> tuple[bytes, str] | None:
        """The image's bytes and content type, or None if it is not stored (any more)."""

    async def delete(self, blob_id: str) -> bool:
        """Remove an image; True if it was stored."""

    async def total_bytes(self) -> int:
        """How many bytes the stored images take (what `MAX_STORED_IMAGE_BYTES` caps)."""

    async def delete_unreferenced(self) -> int:
        """Remove every image that no job still waiting to upload it (queued or submitting,
        not uploaded yet) names; returns how many went. Run at start, for what a crash left."""


class Upstream(Protocol):
    """The part of the PixVerse client the core uses (`bot.upstream.client.PixVerseClient`)."""

    async def upload_file(self, data: bytes, content_type: str, *, email: str | None = None) -> up.UploadedFile: ...

    async def create_video(self, request: up.CreateVideoRequest) -> up.VideoCreated: ...

    async def create_frames(self, request: up.CreateFramesRequest) -> up.VideoCreated: ...

    async def create_transition(self, request: up.CreateTransitionRequest) -> up.VideoCreated: ...

    async def create_fusion(self, request: up.CreateFusionRequest) -> up.VideoCreated: ...

    async def upscale_video(self, request: up.UpscaleRequest) -> up.VideoCreated: ...

    async def extend_video(self, request: up.ExtendRequest) -> up.VideoCreated: ...

    async def lipsync_video(self, request: up.LipSyncRequest) -> up.VideoCreated: ...

    async def voices(self, *, email: str | None = None) -> up.VoiceList:
        """GET videos/voices: the lip-sync voices."""

    async def modify_video(self, request: up.ModifyRequest) -> up.VideoCreated: ...

    async def find_submitted(
        self,
        reply_ref: str,
        *,
        email: str | None = None,
        since: datetime | None = None,
        prompt: str | None = None,
        seed: int | None = None,
    ) -> str | None:
        """The video id of an earlier create/upscale/extend sent with `reply_ref`, if it exists.

        `prompt` and `seed` let it match listings that do not carry replyRef.
        """

    async def list_videos(self, *, email: str | None = None, limit: int = 40, offset: int = 0) -> up.VideoPage: ...

    async def get_video(self, video_id: str) -> up.Video | None:
        """The video, or None while it is still processing (upstream 404)."""

    async def scheduler_available(self) -> up.SchedulerAvailability: ...

    async def delete_scheduled(self, video_id: str) -> None:
        """DEL scheduler/{video_id}: useapi.net stops tracking a running job (NotFound: it is not running)."""

    async def features(self, *, email: str | None = None) -> up.Features: ...

    async def download(self, url: str, destination: Path, *, max_bytes: int) -> int:
        """Stream `url` into `destination`; returns the size. Raises if over `max_bytes`."""


class ProgressStage(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    GENERATING = "generating"
    WAITING = "waiting"  # queued behind an account problem (credits, needs attention)
    OFF_PEAK = "off_peak"  # sent off-peak: PixVerse holds it (status QUEUED) until its hours


@dataclass(frozen=True, slots=True)
class Progress:
    stage: ProgressStage
    queue_position: int | None = None
    elapsed_seconds: int | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ChatBudget:
    """How fast a platform lets a bot post to or edit in one chat; its notifier declares it.

    At most one message every `min_gap` seconds and, when `per_window` is set, at most
    `per_window` messages in any `window` seconds. An edit counts like a new message.
    """

    min_gap: float = 0.0
    per_window: int | None = None
    window: float = 60.0


# A chat that takes messages as fast as they come (the console).
UNLIMITED = ChatBudget()


PICTURE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True, slots=True)
class VideoDelivery:
    """A finished result for the notifier: a file to upload, or a link when too large.

    `media` says what it is: a video (sent as one), or a picture (an image effect
    template's result, sent as a photo); `extension` names its file type.
    """

    caption: str
    buttons: Sequence[ResultAction]
    file: Path | None = None
    link: str | None = None
    size_bytes: int | None = None
    media: MediaType = MediaType.VIDEO

    @property
    def extension(self) -> str:
        if self.media is MediaType.VIDEO:
            return "mp4"
        suffix = (self.link or "").split("?", 1)[0].rsplit(".", 1)[-1].lower()
        return suffix if suffix in PICTURE_EXTENSIONS else "jpg"


@dataclass(frozen=True, slots=True)
class Posted:
    """What a notifier posted as a job's outcome, and what it left for `Notifier.finish`.

    Delivery is three steps so that a crash can post a video at most twice only while
    the platform is answering the post itself: the notifier posts the outcome and returns
    this; the core records the job DELIVERED; then the notifier finishes (marks the
    progress message final). A finish that fails, or never runs because the process
    died, leaves a stale progress message, never a second post.
    """

    # The platform's ids of the messages posted (for the log and the tests; the core keeps none).
    message_ids: tuple[str, ...] = ()
    # The progress message's last words in the platform's own text; None: nothing left to finish.
    status: str | None = None


class DeliveryFailed(Exception):
    """A notifier could not post; `retry` says whether trying later can help.

    Not retryable: the user blocked the bot, the chat is gone. Retryable: the
    platform is down or rate-limited beyond what the adapter waits out.
    `moved_to`: the chat lives on under a new id (a Telegram group that became a
    supergroup); the core moves the job there and posts again at once.
    """

    def __init__(self, reason: str, *, retry: bool, moved_to: str | None = None) -> None:
        self.retry = retry
        self.moved_to = moved_to
        super().__init__(reason)


class Notifier(Protocol):
    """How the core talks back to a chat platform. One per platform."""

    # The longest caption the platform shows with a video (Telegram 1024, Discord 2000).
    caption_limit: int

    def upload_limit(self, job: Job) -> int:
        """The largest file (bytes) this platform accepts for this job's chat."""

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        """How often the core may show progress in one budget scope of `chat` (the
        platform's flood limits)."""

    def budget_scope(self, job: Job) -> str:
        """Which budget the job's progress spends: jobs of one platform with the same
        scope share one `chat_budget(job.chat)`. The chat, where progress is a message
        in it that counts against the chat's limit (Telegram); the job itself, where it
        edits an answer with a rate limit of its own (a Discord interaction response)."""

    async def progress(self, job: Job, progress: Progress) -> str | None:
        """Show or update the job's progress message now; returns its id to persist.

        The core calls it at the pace `chat_budget` allows, one call at a time per budget
        scope and never after the job's outcome: the notifier neither throttles nor defers.
        """

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        """Post the finished video (or its link) with the result buttons, and nothing else:
        the core records the job delivered right after, and only then calls `finish`."""

    async def failed(self, job: Job, reason: str) -> Posted:
        """Tell the requester, in plain words, why the job produced no video (or why its
        video could not be posted, once the core gives up trying); `finish` follows as
        after `deliver`."""

    async def finish(self, job: Job, posted: Posted) -> None:
        """Mark the progress message final once the outcome is recorded (`job` as stored
        then). May raise or give up: the outcome is posted and recorded either way."""

    async def alert_operator(self, text: str) -> None:
        """Something needs the operator (out of credits, account needs attention)."""


# ---------------------------------------------------------------- governance (quotas, moderation)


@dataclass(frozen=True, slots=True)
class QuotaCharge:
    """One limit a reservation must fit: a user's or a group pool's, counted since `since`."""

    scope: str  # "user" or "group"
    subject: str  # user key or group key
    limit: int
    since: datetime | None  # start of the current window (None: all time)


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    committed: int = 0
    reserved: int = 0

    @property
    def total(self) -> int:
        return self.committed + self.reserved


@dataclass(frozen=True, slots=True)
class QuotaReservation:
    """What one job takes from quotas: checked against every charge and recorded with the job."""

    user_key: str
    group_key: str | None
    amount: int  # in the operator's quota unit
    charges: tuple[QuotaCharge, ...]
    credits: int = 0  # estimated PixVerse credits, for /stats
    user_name: str = ""
    at: datetime | None = None  # None: now


class QuotaStore(Protocol):
    async def settle(self, job_id: str, *, commit: bool) -> bool:
        """Commit or refund a job's reservation; False if it was already settled (or none)."""

    async def usage(self, scope: str, subject: str, since: datetime | None) -> QuotaUsage: ...

    async def release_orphans(self) -> int:
        """Refund reservations whose job was never stored (a direct `reserve`, or an older version's
        two-step accept interrupted between reserve and insert)."""

    async def get_override(self, scope: str, subject: str) -> tuple[bool, int | None]:
        """(has an override, its limit — None meaning unlimited)."""

    async def overrides(self, at_most: int) -> dict[tuple[str, str], int | None] | None:
        """Every override by (scope, subject), in one read; None when there are more than `at_most`."""

    async def set_override(self, scope: str, subject: str, limit: int | None) -> None: ...

    async def reset(self, scope: str, subject: str, at: datetime) -> None:
        """Usage before `at` no longer counts for this subject."""

    async def reset_at(self, scope: str, subject: str) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class NewImage:
    """An /animate image to keep until its job has uploaded it."""

    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class ImageStoreFull:
    """Admission refused: the stored images would exceed the operator's cap."""

    stored_bytes: int
    limit: int


@dataclass(frozen=True, slots=True)
class OffPeakLimitReached:
    """Admission refused: the user already has `limit` off-peak jobs unfinished."""

    limit: int


class JobAdmission(Protocol):
    """Admitting a new job: its quota reservation, its image and the job itself, all or nothing."""

    async def admit(
        self,
        job: Job,
        reservation: QuotaReservation,
        image: NewImage | None = None,
        *,
        more_images: Sequence[NewImage] = (),
        image_store_limit: int | None = None,
        off_peak_limit: int | None = None,
    ) -> QuotaCharge | ImageStoreFull | OffPeakLimitReached | None:
        """In one atomic unit: check every quota charge, (for an off-peak job) the user's
        unfinished off-peak jobs against `off_peak_limit` and (with pictures) the room left
        under `image_store_limit`, then record the reservation, store `image` and
        `more_images` under the blob ids of `job.request.images` (in order) and insert the job.

        Returns None when the job is admitted, else what refused it: the first charge the
        reservation would exceed, the off-peak cap, or the full image store. A refusal stores nothing; once
        the unit is queued it completes even if the caller is cancelled, and then all of
        it is kept — never a job without its reservation, nor a reservation without its job.
        """


@dataclass(frozen=True, slots=True)
class AccessLists:
    """Who is banned where, and muted where until when: the whole of both lists (`GovernanceStore.access_lists`)."""

    bans: frozenset[tuple[str, str]]  # (user key, scope)
    mutes: dict[tuple[str, str], datetime]  # (user key, group key or "*") → muted until

    def access(self, user_key: str, ban_scopes: Sequence[str], mute_scope: str) -> tuple[bool, datetime | None]:
        """What `GovernanceStore.access` answers, from these lists."""
        banned = any((user_key, scope) in self.bans for scope in ban_scopes)
        return banned, self.mutes.get((user_key, mute_scope))


@dataclass(frozen=True, slots=True)
class ModerationLogEntry:
    at: datetime
    group_key: str
    user_key: str
    user_name: str
    text: str
    rule: str
    source: str  # "blocklist", "external", "pixverse"
    action: str  # "rejected", "strike", "muted"


@dataclass(frozen=True, slots=True)
class UsageStats:
    subject: str  # user key (or group key)
    name: str
    jobs: int
    failures: int
    credits: int


class GovernanceStore(Protocol):
    """Per-group settings, filters, strikes, mutes, bans and the moderation log."""

    async def group_settings(self, group_key: str) -> dict[str, Any] | None: ...

    async def all_group_settings(self) -> dict[str, dict[str, Any]]:
        """Every group's stored settings (for the longest strike window any group uses)."""

    async def save_group_settings(self, group_key: str, settings: dict[str, Any]) -> None: ...

    async def filters(self, group_key: str) -> list[str]: ...

    async def add_filter(self, group_key: str, entry: str, added_by: str) -> bool: ...

    async def remove_filter(self, group_key: str, entry: str) -> bool: ...

    async def add_strike(self, user_key: str, group_key: str, at: datetime, reason: str) -> None: ...

    async def count_strikes(self, user_key: str, group_key: str, since: datetime) -> int: ...

    async def set_mute(self, user_key: str, group_key: str, until: datetime) -> None: ...

    async def remove_mutes(self, user_key: str, group_key: str | None, now: datetime) -> bool:
        """Lift the mute and clear the strikes in one group (None: everywhere); True if a mute was in force."""

    async def known_name(self, user_key: str) -> str | None:
        """The name the user last went by in a job or a moderation record, if any."""

    async def set_ban(self, user_key: str, scope: str, banned_by: str, at: datetime) -> None: ...

    async def remove_ban(self, user_key: str, scope: str) -> bool: ...

    async def access(self, user_key: str, ban_scopes: Sequence[str], mute_scope: str) -> tuple[bool, datetime | None]:
        """(banned in any of `ban_scopes`, muted until) for one user, in one read."""

    async def access_lists(self, at_most: int, now: datetime) -> AccessLists | None:
        """Every ban and every mute still in force at `now`, in one read; None when there are more than `at_most`."""

    async def log_moderation(self, entry: ModerationLogEntry) -> None: ...

    async def moderation_log(self, group_key: str | None, limit: int) -> list[ModerationLogEntry]: ...

    async def usage_stats(self, group_key: str | None, since: datetime) -> list[UsageStats]:
        """Per user: jobs, failures and credits committed since `since` (optionally in one group)."""


# ---------------------------------------------------------------- retention


class RetentionStore(Protocol):
    """Deletes records past their retention, a few at a time.

    Every call is one short unit of work that deletes at most `limit` rows and says how
    many it deleted; a caller repeats it until fewer than `limit` come back, so other
    work is never kept waiting behind a whole prune.
    """

    async def prune_jobs(self, finished_before: datetime, limit: int) -> int:
        """Delete delivered jobs that finished before `finished_before` (never a job still
        queued, running or waiting for delivery). A kept job made from a deleted one
        (a reroll, upscale …) loses its `parent_id` reference."""

    async def prune_quota_ledger(self, state: str, created_before: datetime, limit: int) -> int:
        """Delete settled ledger rows in `state` ("committed" or "refunded") created before
        `created_before`. Reservations still open are never deleted."""

    async def prune_moderation_log(self, before: datetime, limit: int) -> int: ...

    async def prune_strikes(self, before: datetime, limit: int) -> int: ...

    async def prune_mutes(self, ended_before: datetime, limit: int) -> int:
        """Delete mutes that ran out before `ended_before`."""


class InstanceRegistry(Protocol):
    """The running bot processes and their leases (`bot.instances`)."""

    async def register(self, instance_id: str, *, lease: float, alone: bool) -> None:
        """Record the process with a lease of `lease` seconds from now; `alone` forgets every other one."""

    async def renew(self, instance_id: str, *, lease: float) -> None:
        """Extend the process's lease to `lease` seconds from now (recording it again if it was removed)."""

    async def retire(self, instance_id: str) -> None:
        """Forget the process: its jobs are free to be taken over at once."""


class Coordinator(Protocol):
    """What bot processes sharing one database need of each other: process-wide locks and
    cache invalidation. With one process (SQLite) it holds every lock and sends nothing."""

    async def hold(self, lock: str) -> bool:
        """Whether this process holds `lock` now, taking it if it is free. Held until the
        process (or its database session) ends; another process then takes it."""

    async def announce(self, topic: str) -> None:
        """Tell every process (this one too) that what is cached under `topic` changed."""

    def signal(self, topic: str) -> None:
        """`announce` in the background, from code that cannot wait (several signals of one
        topic while one is being sent make one more announcement, not many)."""

    def subscribe(self, topic: str, forget: Callable[[], None]) -> None:
        """Call `forget` whenever `topic` is announced (or announcements may have been missed)."""

    async def start(self) -> None:
        """Open what it needs (a database session of its own)."""

    async def check(self) -> None:
        """Make sure the session lives; after it was lost, open a new one (locks are then
        taken anew and every subscriber forgets, since announcements may have been missed)."""

    async def close(self) -> None:
        """Release every lock and close the session."""


class UpdateLog(Protocol):
    """Which chat-platform updates were taken already, by any process on the database."""

    async def first_time(self, platform: str, update_id: int) -> bool:
        """Record the update as taken; False when it had been (a redelivery: drop it)."""
