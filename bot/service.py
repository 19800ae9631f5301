"""The core's public API: what every chat adapter calls.

Adapters parse their platform's input into the commands of `bot.commands`, call
these methods with a `Requester`, and render the result (or the `BotError`).
Progress and results come back later through the adapter's `Notifier`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.audio import convert
from bot.blobs import ImageStorageFull, check_image, new_blob_id
from bot.catalogue import Catalogue, Feature
from bot.commands import V1_PROMPT_MAX, RequestBuilder, random_seed
from bot.delivery import result_buttons
from bot.domain import (
    TEXT_ACTIONS,
    GenerationRequest,
    Job,
    JobKind,
    JobState,
    MediaType,
    Platform,
    Requester,
    ResultAction,
    UserRef,
    new_job_id,
)
from bot.effects import EffectsCatalogue
from bot.errors import ActionUnavailable, ButtonExpired, InvalidInput, JobNotFound, NotYourJob, TooManyOffPeakJobs
from bot.kinds import ANIMATE, CREATE, GenerationKind, kind_of
from bot.kinds.animate import Animate
from bot.kinds.base import PENDING_UPLOAD, Lookups
from bot.kinds.create import CreateSingle
from bot.kinds.edit import modify_quality
from bot.media import UserVideo, VideoIntake, VideoLimits
from bot.moderation.service import ModerationService
from bot.ports import (
    ImageStoreFull,
    JobAdmission,
    JobStore,
    NewImage,
    OffPeakLimitReached,
    Progress,
    ProgressStage,
    QuotaReservation,
)
from bot.progress import ProgressReporter
from bot.quota import QuotaService
from bot.retention import RetentionPolicy
from bot.submission import extend_model, validate_for_upstream, validate_request
from bot.text_options import LIPSYNC_SPEECH_MAX_CHARS
from bot.user_text import clean_user_text
from bot.voices import VoiceCatalogue, VoiceInfo

log = logging.getLogger(__name__)


class GenerationService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        admission: JobAdmission,
        builder: RequestBuilder,
        progress: ProgressReporter,
        moderation: ModerationService,
        quotas: QuotaService,
        on_queued: Callable[[], None],
        max_image_bytes: int,
        max_stored_image_bytes: int,
        admins_may_press_buttons: bool,
        retention: RetentionPolicy,
        max_off_peak_jobs_per_user: int,
        catalogue: Catalogue,
        effects: EffectsCatalogue,
        voices: VoiceCatalogue,
        videos: VideoIntake,
    ) -> None:
        self._catalogue = catalogue
        self._videos = videos
        self._effects = effects
        self._voices = voices
        self._lookups = Lookups(effects=effects, voices=voices)
        self._jobs = jobs
        self._admission = admission
        self._moderation = moderation
        self._quotas = quotas
        self._admins_may_press = admins_may_press_buttons
        self._builder = builder
        self._progress = progress
        self._on_queued = on_queued
        self._max_image_bytes = max_image_bytes
        self._max_stored_image_bytes = max_stored_image_bytes
        self._retention = retention
        self._max_off_peak = max_off_peak_jobs_per_user

    @property
    def catalogue(self) -> Catalogue:
        """The models on offer (adapters render choices and help from it)."""
        return self._catalogue

    @property
    def video_limits(self) -> VideoLimits:
        """How large and long a video users may send (adapters refuse larger ones before fetching)."""
        return self._videos.limits

    @property
    def effects(self) -> EffectsCatalogue:
        """The effect templates on offer (/effects lists them; /effect applies one)."""
        return self._effects

    @property
    def voices(self) -> VoiceCatalogue:
        """The lip-sync voices (/voices lists them; --voice names one)."""
        return self._voices

    async def generate(
        self,
        requester: Requester,
        kind: GenerationKind,
        command: object,
        images: list[bytes] | tuple[()] = (),
        video: bytes | None = None,
    ) -> Job:
        """Queue a job of `kind` from its validated `command` and its pictures, in order, or
        the user's own video for a kind that takes one (/modify, /extend).

        Each picture and video is checked by its content; pictures are stored only if the job
        is admitted, and only until the job has uploaded them. A video is uploaded once the
        request has passed every check but the quota's (see `accept`).
        """
        prepared = await self.prepare_job(requester, kind, command, images, video)
        return await self.accept(prepared, requester.context)

    async def prepare_job(
        self,
        requester: Requester,
        kind: GenerationKind,
        command: object,
        images: list[bytes] | tuple[()] = (),
        video: bytes | None = None,
    ) -> PreparedJob:
        """`generate`'s first step: every check of the request but the quota's (input,
        moderation) and the job it makes, with nothing written but a moderation refusal's
        record. An adapter may run it while its acknowledgement is on its way, and `accept`
        the job once the context it answers through is known; a job never accepted leaves
        nothing queued or charged."""
        if kind.pictures is not None:
            kind.pictures.check(len(images), kind.name)
        elif images:
            raise InvalidInput("image", f"/{kind.name} takes no picture")
        if kind.with_video is not None and video is None:
            raise InvalidInput("video", f"is missing; send a video with the caption /{kind.name} …")
        if kind.with_video is None and video is not None:
            raise InvalidInput("video", f"/{kind.name} takes no video")
        checked = [NewImage(data, check_image(data, max_bytes=self._max_image_bytes)) for data in images]
        sent = await self._videos.check(video) if video is not None else None
        command = await self.prepared(requester, kind, command)
        request = kind.build(self._builder, command, tuple(new_blob_id() for _ in checked))
        if kind.with_video is not None and sent is not None:
            request = kind.with_video(request, sent)
        return await self._checked_job(requester, request, images=checked, video=sent)

    async def prepared(self, requester: Requester, kind: GenerationKind, command: object) -> object:
        """`command` with what it names looked up (an effect by its name, a voice); unchanged for
        kinds that look nothing up. What is looked up is moderated first: answers quote it."""
        if kind.prepare is None:
            return command
        await self._moderation.check_texts(requester, [getattr(command, kind.looked_up, None)])
        return await kind.prepare(self._lookups, command)

    def check(self, kind: GenerationKind, command: object, pictures: int) -> None:
        """Raise InvalidInput when `command` with this many pictures would be refused, so an
        adapter can refuse it before fetching the pictures (a typo should not cost a download).
        A kind that looks something up takes its `prepared` command."""
        if kind.pictures is not None:
            kind.pictures.check(pictures, kind.name)
        blobs = tuple(new_blob_id() for _ in range(pictures))
        validate_request(kind.build(self._builder, command, blobs), catalogue=self._catalogue)

    async def create_single(self, requester: Requester, command: CreateSingle) -> Job:
        """v1 /create_single: queue a text-to-video job."""
        return await self.generate(requester, CREATE, command)

    async def animate(self, requester: Requester, command: Animate, image: bytes) -> Job:
        """v1 /animate: queue an image-to-video job, keeping the image (checked by content) with it."""
        return await self.generate(requester, ANIMATE, command, [image])

    async def press(
        self,
        requester: Requester,
        job_id: str,
        action: ResultAction,
        *,
        prompt: str | None = None,
    ) -> Job:
        """A result button: reroll, remix or modify (need `prompt`), upscale or extend a finished video.

        Only the requester may press, or a chat admin of that chat when the operator allows it.
        """
        parent = await self.button_target(requester, job_id)
        if not parent.has_video:
            raise ActionUnavailable(f"Job {job_id} has no finished video, so it has no buttons to press yet.")
        request = self.follow_up_request(parent, action, prompt)  # refuses with the specific reason first
        # Only the buttons the result shows: a typed command or a forged callback gets no more.
        offered = result_buttons(parent, self._catalogue)
        if action not in offered:
            raise ActionUnavailable(
                f"Job {job_id}'s result has no {action.value} button; it offers "
                + ", ".join(a.value for a in offered)
                + "."
            )
        return await self._accept(requester, request, parent=parent, action=action)

    async def button_target(self, requester: Requester, job_id: str) -> Job:
        """The job a button refers to, if this requester may press it.

        Adapters call this before asking for a remix prompt, so strangers are turned away first.
        """
        parent = await self._jobs.get(job_id)
        if parent is None:
            # Buttons carry ids of jobs the bot made: a missing one was deleted after its retention.
            raise ButtonExpired(job_id, None if self._retention.keeps_forever else self._retention.period)
        acting_admin = (
            self._admins_may_press and requester.is_group_admin and requester.chat.chat_id == parent.chat.chat_id
        )
        if parent.user.key != requester.user.key and not acting_admin:
            raise NotYourJob()
        return parent

    def follow_up_request(self, parent: Job, action: ResultAction, prompt: str | None) -> GenerationRequest:
        """What a button asks for, derived from the finished job it sits under."""
        request = parent.request
        kind = kind_of(request.kind)
        # A new seed from the range the kind's endpoint takes (fusion's is narrower).
        seed = kind.new_seed() if kind is not None else random_seed()
        if action is ResultAction.REROLL:
            # Same request (for upscale/extend: the same step on the same source), new seed.
            return request.with_changes(seed=seed)
        if request.makes is MediaType.PICTURE:
            raise ActionUnavailable("A picture made by an effect can only be made again (🔄 reroll).")
        if action is ResultAction.LIPSYNC:
            # Its text comes with a voice or an audio track instead: `lipsync` takes those.
            raise ActionUnavailable("Lip-sync needs words to speak or an audio track: use 🗣 or /lipsync.")
        if action in TEXT_ACTIONS:
            text = clean_user_text(prompt)
            if not text:
                wanted = "the new prompt to use" if action is ResultAction.REMIX else "the change to make"
                raise InvalidInput("prompt", f"is empty; {action.value} needs {wanted}")
            if len(text) > V1_PROMPT_MAX:
                raise InvalidInput("prompt", f"is {len(text)} characters long; at most {V1_PROMPT_MAX} are allowed")
            if action is ResultAction.MODIFY:
                return self._modify_request(parent, text)
            if kind is None or not kind.remixable:
                raise ActionUnavailable("Remix works on videos made from a prompt, not on upscales or extensions.")
            return RequestBuilder.recompose(kind.remix(request, text).with_changes(seed=seed))
        if action is ResultAction.UPSCALE:
            if request.kind is JobKind.UPSCALE:
                raise ActionUnavailable("This video is already upscaled.")
            if not self._catalogue.can_upscale(request.model):
                allowed = ", ".join(self._catalogue.having(Feature.UPSCALE)) or "none"
                raise ActionUnavailable(
                    f"Videos made with {request.model} cannot be upscaled; models that can: {allowed}."
                )
            return GenerationRequest(
                kind=JobKind.UPSCALE,
                user_prompt=request.user_prompt,
                model=request.model,
                duration=request.duration,
                quality=request.quality,
                aspect_ratio=request.aspect_ratio,
                seed=request.seed,
                source_video_id=parent.video_id,
            )
        # EXTEND: continue the video with the same prompt and settings, as far as extend has
        # them: its own models, no audio or sound fields (so none is shown, nor charged for), no preview.
        model = extend_model(request.model, self._catalogue)
        # A transition extends as one clip: as long as its longest transition; a modified
        # long video by as much as extend makes.
        longest = self._catalogue.get(model).max_duration(request.quality)
        return request.with_changes(
            kind=JobKind.EXTEND,
            source_video_id=parent.video_id,
            source_video_path=None,
            model=model,
            audio=False,
            sound_effect=None,
            auto_sound=None,
            speech=None,
            speaker_id=None,
            voice_name=None,
            preview=False,
            seed=random_seed(),
            duration=min(max(request.segment_durations or (request.duration,)), longest),
            segment_durations=(),
            segment_prompts=(),
        ).with_images(())

    def check_lipsync(self, job_id: str | None, *, video: bool, text: str | None, audio: bool) -> str:
        """The words a lip-sync speaks, cleaned. InvalidInput unless there is one video (one of
        the bot's by `job_id`, or the user's own) and words (at most 200 characters) or an audio
        track, not both. Adapters call it before fetching anything."""
        if (job_id is None) != video:
            raise InvalidInput(
                "video",
                "is one too many; lip-sync one of my videos (its job) or your own, not both"
                if video
                else "is missing; lip-sync one of my videos (its job) or your own (MP4 or MOV)",
            )
        words = clean_user_text(text or "")
        if audio and words:
            raise InvalidInput("text", "give words to speak or an audio track, not both")
        if not audio and not words:
            raise InvalidInput(
                "text",
                f"is empty; give the words to speak (up to {LIPSYNC_SPEECH_MAX_CHARS} characters)"
                " or send a voice note or audio file",
            )
        if len(words) > LIPSYNC_SPEECH_MAX_CHARS:
            raise InvalidInput(
                "text", f"is {len(words)} characters long; lip-sync speaks at most {LIPSYNC_SPEECH_MAX_CHARS}"
            )
        return words

    async def lipsync(
        self,
        requester: Requester,
        job_id: str | None = None,
        *,
        video: bytes | None = None,
        text: str | None = None,
        voice: str | None = None,
        audio: bytes | None = None,
    ) -> Job:
        """🗣 Lip-sync (and /lipsync): make a video speak `text` (in `voice`, a name /voices
        lists) or play `audio` (a voice note or audio file, at most 60 s).

        The video is the finished one of job `job_id` (v5 videos only), which runs on the
        account that made it and costs like a new video of its model, quality and length;
        or `video`, the user's own, checked by content like /modify's and uploaded with
        POST files once the request has passed every other check (`video_path`): it runs on
        any account and costs like a new video of the lip-sync model at the default quality,
        as long as the video.
        """
        words = self.check_lipsync(job_id, video=video is not None, text=text, audio=audio is not None)
        parent: Job | None = None
        sent: UserVideo | None = None
        if job_id is not None:
            parent = await self.button_target(requester, job_id)
            if not parent.has_video:
                raise ActionUnavailable(f"Job {job_id} has no finished video to lip-sync yet.")
            if ResultAction.LIPSYNC not in result_buttons(parent, self._catalogue):
                allowed = ", ".join(self._catalogue.having(Feature.LIPSYNC_VIDEO)) or "none"
                raise ActionUnavailable(
                    f"Videos made with {parent.request.model or 'an effect'} cannot be lip-synced;"
                    f" only videos made with {allowed} can."
                )
        speaker: VoiceInfo | None = None
        if voice:
            if audio is not None:
                raise InvalidInput("voice", "is for words to speak; an audio track speaks in its own voice")
            await self._moderation.check_texts(requester, [voice])  # the refusal quotes it
            speaker = await self._voices.find(voice)
        track = await convert(audio) if audio is not None else None
        if parent is not None:
            source = parent.request
            # The video PixVerse made, by its id: never the upload it may have been made from.
            target = source.with_changes(
                duration=max(source.segment_durations or (source.duration,)),
                source_video_id=parent.video_id,
                source_video_path=None,
            )
        else:
            sent = await self._videos.check(video or b"")
            target = self._own_video_to_lipsync(sent)
        request = GenerationRequest(
            kind=JobKind.LIPSYNC,
            user_prompt=target.user_prompt,
            model=target.model,
            duration=target.duration,
            quality=target.quality,
            aspect_ratio=target.aspect_ratio,
            source_video_id=target.source_video_id,
            source_video_path=target.source_video_path,
            speech=words or None,
            speaker_id=speaker.speaker_id if speaker else None,
            voice_name=speaker.name if speaker else None,
            image_blob_id=new_blob_id() if track else None,
        )
        images = [NewImage(track.data, track.content_type)] if track else None
        action = ResultAction.LIPSYNC if parent is not None else None
        return await self._accept(requester, request, parent=parent, action=action, images=images, video=sent)

    def _own_video_to_lipsync(self, video: UserVideo) -> GenerationRequest:
        """What a lip-sync of the user's own video is priced and described by: the lip-sync
        model (no model made it here) at the default quality, as long as the video. Its
        upstream path is filled in once it is uploaded."""
        models = self._catalogue.having(Feature.LIPSYNC_VIDEO)
        if not models:
            raise ActionUnavailable("No model this bot offers can lip-sync videos.")
        return GenerationRequest(
            kind=JobKind.LIPSYNC,
            model=models[0],
            duration=video.whole_seconds,
            quality=self._builder.settings.default_quality.value,
            source_video_path=PENDING_UPLOAD,
        )

    def _modify_request(self, parent: Job, change: str) -> GenerationRequest:
        """✏️ Modify under `parent`'s video: its video changed as `change` says, on the account
        that made it, at its quality where modify makes that (else modify's best)."""
        models = self._catalogue.having(Feature.MODIFY)
        if not models:
            raise ActionUnavailable("No model this bot offers can modify videos.")
        request = parent.request
        return RequestBuilder.recompose(
            GenerationRequest(
                kind=JobKind.MODIFY,
                user_prompt=change,
                model=models[0],
                # The result is as long as the video it changes.
                duration=request.duration,
                quality=modify_quality(request.quality),
                aspect_ratio=request.aspect_ratio,
                seed=random_seed(),
                source_video_id=parent.video_id,
            )
        )

    async def recent_jobs(self, user: UserRef, limit: int = 10) -> list[Job]:
        return await self._jobs.recent_for_user(user, limit)

    async def job_status(self, user: UserRef, job_id: str) -> Job:
        if not job_id.strip():
            raise InvalidInput("job", "is missing; e.g. /status abc123 (/jobs lists yours)")
        job = await self._jobs.get(job_id.strip())
        if job is None or job.user.key != user.key:
            raise JobNotFound(job_id)
        return job

    async def unfinished(self, platform: Platform) -> int:
        """How many jobs asked on `platform` have not reached their chat yet (this run's or an earlier one's)."""
        pending = await self._jobs.in_states([state for state in JobState if state is not JobState.DELIVERED])
        return sum(job.chat.platform is platform for job in pending)

    async def _accept(
        self,
        requester: Requester,
        request: GenerationRequest,
        *,
        parent: Job | None = None,
        action: ResultAction | None = None,
        images: list[NewImage] | None = None,
        video: UserVideo | None = None,
    ) -> Job:
        prepared = await self._checked_job(requester, request, parent=parent, action=action, images=images, video=video)
        return await self.accept(prepared, requester.context)

    async def _checked_job(
        self,
        requester: Requester,
        request: GenerationRequest,
        *,
        parent: Job | None = None,
        action: ResultAction | None = None,
        images: list[NewImage] | None = None,
        video: UserVideo | None = None,
    ) -> PreparedJob:
        """The job asking for `request`, checked (upstream's rules, moderation) and priced."""
        job = Job(
            id=new_job_id(),
            requester=requester,
            request=request,
            parent_id=parent.id if parent else None,
            action=action,
        )
        validate_for_upstream(job, self._catalogue)
        # Everything that reaches PixVerse is moderated: prompt, negative prompt, remix
        # prompt, image caption (the /animate and /frames prompt), each transition's prompt,
        # the sound effect and the words a video speaks.
        await self._moderation.check_texts(
            requester,
            [
                request.user_prompt,
                request.negative_prompt,
                request.effect_name,
                *request.segment_prompts,
                request.sound_effect,
                request.speech,
            ],
        )
        # What the job would take and the limits it must fit: only read here, recorded by `accept`.
        reservation = await self._quotas.reservation(job)
        return PreparedJob(job, reservation, tuple(images or ()), video)

    async def accept(self, prepared: PreparedJob, context: dict[str, Any]) -> Job:
        """`generate`'s second step: queue the `prepared` job, answered through the adapter's
        `context` (see `Requester.context`), if the quotas still have room for it."""
        job = prepared.job.evolve(requester=replace(prepared.job.requester, context=context))
        request = job.request
        if prepared.video is not None:
            # The user's video goes up only now, checked and with its request accepted so far;
            # an upload costs no credits, and a failed one leaves nothing charged or queued.
            job = job.evolve(request=request.with_changes(source_video_path=await self._videos.upload(prepared.video)))
        # One atomic unit records the reservation, keeps the image and inserts the job: a
        # refused request leaves nothing behind, and a caller cancelled while the unit is
        # queued leaves all of it (the job runs, and is charged like any other).
        reservation = prepared.reservation
        images = prepared.images
        first, more = (images[0], list(images[1:])) if images else (None, [])
        refused = await self._admission.admit(
            job,
            reservation,
            first,
            more_images=more,
            image_store_limit=self._max_stored_image_bytes,
            off_peak_limit=self._max_off_peak,
        )
        if isinstance(refused, ImageStoreFull):
            raise ImageStorageFull(refused)
        if isinstance(refused, OffPeakLimitReached):
            raise TooManyOffPeakJobs(refused.limit)
        if refused is not None:
            raise self._quotas.exceeded(refused, reservation)
        log.info("job %s queued for %s (%s)", job.id, job.user.key, request.kind)
        position = await self._jobs.fair_place(job)
        await self._progress.report(job, Progress(ProgressStage.QUEUED, queue_position=position))
        self._on_queued()
        return job


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """A job that passed every check but the quota's (`GenerationService.prepare_job`), to `accept`."""

    job: Job
    reservation: QuotaReservation
    images: tuple[NewImage, ...]
    video: UserVideo | None
