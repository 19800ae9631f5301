"""POST videos/create, create-frames, create-transition, create-fusion, upscale, extend and modify."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from aiohttp import web

from bot.catalogue import Catalogue, Feature, shipped_catalogue
from bot.pricing import Pricing
from bot.sandbox.admission import Admission, admit, planned_outcome
from bot.sandbox.errors import ApiError
from bot.sandbox.media import Picture, probe
from bot.sandbox.routes_catalog import IMAGE_TEMPLATE, SandboxEffect, find_effect, require_voice
from bot.sandbox.videos import SandboxVideo, VideoPhase
from bot.sandbox.web_support import API_PREFIX, RouteGroup, origin, read_body, validated
from bot.upstream.models import (
    FUSION_SEED_MAX,
    FUSION_SEED_MIN,
    SEED_MAX,
    SEED_MIN,
    UPSTREAM_DEFAULT_EXTEND_MODEL,
    UPSTREAM_DEFAULT_FUSION_MODEL,
    UPSTREAM_DEFAULT_MODEL,
    UPSTREAM_DEFAULT_MODIFY_MODEL,
    UPSTREAM_DEFAULT_MULTI_TRANSITION_MODEL,
    AspectRatio,
    CreateFramesRequest,
    CreateFusionRequest,
    CreateTransitionRequest,
    CreateVideoRequest,
    ExtendRequest,
    LipSyncRequest,
    ModifyRequest,
    Quality,
    RoutedRequest,
    UpscaleRequest,
)

log = logging.getLogger(__name__)

# The documented defaults of videos/create and videos/extend.
DEFAULT_DURATION = 5
DEFAULT_QUALITY = Quality.P540.value
DEFAULT_ASPECT_RATIO = AspectRatio.WIDE.value
DEFAULT_CREATE_MODEL = UPSTREAM_DEFAULT_MODEL
DEFAULT_EXTEND_MODEL = UPSTREAM_DEFAULT_EXTEND_MODEL
# Documented POST endpoints (seeds/v2/post-pixverse-videos-*.md) the sandbox does not
# simulate. They answer a 404 that says so: without a route of their own, aiohttp would
# match them to GET videos/{video_id} and answer 405, which no client expects.
UNSIMULATED_GENERATIONS = ("videos/restyle",)


class GenerationRoutes(RouteGroup):
    """Handlers that start a job; each answers `{"video_id": ...}`."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{API_PREFIX}/videos/create", self.create),
            web.post(f"{API_PREFIX}/videos/create-frames", self.create_frames),
            web.post(f"{API_PREFIX}/videos/create-transition", self.create_transition),
            web.post(f"{API_PREFIX}/videos/create-fusion", self.create_fusion),
            web.post(f"{API_PREFIX}/videos/upscale", self.upscale),
            web.post(f"{API_PREFIX}/videos/extend", self.extend),
            web.post(f"{API_PREFIX}/videos/lipsync", self.lipsync),
            web.post(f"{API_PREFIX}/videos/modify", self.modify),
            *(web.post(f"{API_PREFIX}/{path}", self.unsimulated) for path in UNSIMULATED_GENERATIONS),
        ]

    def _pricing_catalogue(self) -> Catalogue:
        # The sandbox charges what the bot's catalogue says (the shipped one unless set).
        return self.sandbox.config.catalogue or shipped_catalogue()

    def _pricing(self) -> Pricing:
        return Pricing(self._pricing_catalogue())

    def _video_cost(self, model: str, quality: str, duration: int, *, audio: bool, off_peak: bool) -> int:
        pricing = self._pricing()
        cost = pricing.video_credits(model, quality, duration, audio=audio)
        return pricing.off_peak(cost) if off_peak else cost

    async def unsimulated(self, request: web.Request) -> web.Response:
        endpoint = request.path.removeprefix(f"{API_PREFIX}/")
        raise ApiError(404, f"POST {endpoint} is a documented endpoint the sandbox does not simulate")

    async def create(self, request: web.Request) -> web.Response:
        ask = validated(CreateVideoRequest, await read_body(request), self.sandbox.config.catalogue)
        for field, path in (("first_frame_path", ask.first_frame_path), ("last_frame_path", ask.last_frame_path)):
            if path:
                self.sandbox.uploads.require(path, "image", field)
        prompt, seed = ask.prompt or "", self._seed(ask.seed)
        quality, duration = ask.quality or DEFAULT_QUALITY, ask.duration or DEFAULT_DURATION
        aspect_ratio, model = ask.aspect_ratio or DEFAULT_ASPECT_RATIO, ask.model or DEFAULT_CREATE_MODEL
        off_peak, preview = bool(ask.off_peak_mode), bool(ask.preview_mode)
        # A preview is a draft at the catalogue's preview quality, and costs as one; any
        # sound adds the model's audio row, as the bot's pricing has it.
        charged_quality = self._pricing_catalogue().preview_quality if preview else quality
        cost = self._video_cost(model, charged_quality, duration, audio=bool(_soundtrack(ask)), off_peak=off_peak)
        effect = self._template(ask)
        if effect is not None:
            # The template decides the length, the model and the price.
            duration, model, cost = effect.duration, f"template-{effect.template_id}", effect.credits
        fingerprint = "|".join((prompt, str(seed), model, ask.first_frame_path or "", str(ask.template_id or "")))
        if ask.last_frame_path:  # a two-picture effect: the second picture shows too
            fingerprint = f"{fingerprint}|{ask.last_frame_path}"
        if ask.lip_sync_tts_speaker_id is not None:
            require_voice(ask.lip_sync_tts_speaker_id, "lip_sync_tts_speaker_id")
        picture = Picture.for_aspect(aspect_ratio, fingerprint)
        sound = _soundtrack(ask)
        if sound:
            picture = picture.with_sound(f"{fingerprint}|{sound}")
        return await self._start(
            request,
            ask,
            email=ask.email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            # A preview is a smaller draft: its upscale has the full video's size.
            picture=picture.previewed() if preview else picture,
            model=model,
            seed=seed,
            quality=quality,
            duration=duration,
            aspect_ratio=aspect_ratio,
            image=effect is not None and effect.template_type == IMAGE_TEMPLATE,
        )

    @staticmethod
    def _template(ask: CreateVideoRequest) -> SandboxEffect | None:
        """The effect `template_id` names, with the pictures it needs; 400 naming what is wrong."""
        if ask.template_id is None:
            return None
        effect = find_effect(ask.template_id)
        if effect is None:
            raise ApiError(400, f"template_id: {ask.template_id} is not an effect; GET videos/effects lists them")
        if not ask.first_frame_path:
            raise ApiError(400, f"first_frame_path: template {effect.template_id} ({effect.name}) needs a picture")
        template = f"template {effect.template_id} ({effect.name}) has effect_type {effect.pictures}"
        if effect.pictures == 2 and not ask.last_frame_path:
            raise ApiError(400, f"last_frame_path: {template} and needs a second picture")
        if effect.pictures == 1 and ask.last_frame_path:
            raise ApiError(400, f"last_frame_path: {template} and takes one picture")
        return effect

    async def create_frames(self, request: web.Request) -> web.Response:
        """A video from the first to the last frame; its picture is made from both uploads."""
        ask = validated(CreateFramesRequest, await read_body(request), self.sandbox.config.catalogue)
        self.sandbox.uploads.require(ask.first_frame_path, "image", "first_frame_path")
        self.sandbox.uploads.require(ask.last_frame_path, "image", "last_frame_path")
        prompt, seed = ask.prompt or "", self._seed(ask.seed)
        quality, duration = ask.quality or DEFAULT_QUALITY, ask.duration or DEFAULT_DURATION
        model, off_peak = ask.model or DEFAULT_CREATE_MODEL, bool(ask.off_peak_mode)
        cost = self._video_cost(model, quality, duration, audio=bool(ask.audio), off_peak=off_peak)
        fingerprint = "|".join(("frames", prompt, str(seed), model, ask.first_frame_path, ask.last_frame_path))
        return await self._start(
            request,
            ask,
            email=ask.email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            picture=Picture.for_aspect(DEFAULT_ASPECT_RATIO, fingerprint),
            model=model,
            seed=seed,
            quality=quality,
            duration=duration,
            # The video takes the pictures' shape; the sandbox does not probe it.
            aspect_ratio=DEFAULT_ASPECT_RATIO,
        )

    async def create_transition(self, request: web.Request) -> web.Response:
        """A video through 2 to 7 frames: one clip per transition, its look drawn from every input."""
        ask = validated(CreateTransitionRequest, await read_body(request), self.sandbox.config.catalogue)
        paths = ask.frame_paths
        for number, path in enumerate(paths, 1):
            self.sandbox.uploads.require(path, "image", f"frame_{number}_path")
        seconds = [int(getattr(ask, f"duration_{n}_to_{n + 1}") or DEFAULT_DURATION) for n in range(1, len(paths))]
        prompts = [getattr(ask, f"prompt_{n}_to_{n + 1}") or "" for n in range(1, len(paths))]
        seed, quality = self._seed(ask.seed), ask.quality or DEFAULT_QUALITY
        default_model = UPSTREAM_DEFAULT_MULTI_TRANSITION_MODEL if len(paths) > 2 else DEFAULT_CREATE_MODEL
        model, off_peak = ask.model or default_model, bool(ask.off_peak_mode)
        # Each transition is a clip of its own length, priced as one.
        cost = sum(self._video_cost(model, quality, s, audio=bool(ask.audio), off_peak=off_peak) for s in seconds)
        prompt = " | ".join(prompts)
        fingerprint = "|".join(("transition", *paths, *map(str, seconds), *prompts, str(seed), model))
        picture = Picture.for_aspect(DEFAULT_ASPECT_RATIO, f"{fingerprint}|1")
        for number in range(2, len(seconds) + 1):  # one more stretch per further transition
            picture = picture.extended(f"{fingerprint}|{number}")
        return await self._start(
            request,
            ask,
            email=ask.email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            picture=picture,
            model=model,
            seed=seed,
            quality=quality,
            duration=sum(seconds),
            # The video takes the pictures' shape; the sandbox does not probe it.
            aspect_ratio=DEFAULT_ASPECT_RATIO,
        )

    async def create_fusion(self, request: web.Request) -> web.Response:
        """Up to three pictures fused into one video; its look is drawn from the prompt and every picture."""
        ask = validated(CreateFusionRequest, await read_body(request), self.sandbox.config.catalogue)
        paths = ask.frame_paths
        for number, path in enumerate(paths, 1):
            self.sandbox.uploads.require(path, "image", f"frame_{number}_path")
        seed = ask.seed or self.sandbox.rng.randint(FUSION_SEED_MIN, FUSION_SEED_MAX)
        quality, duration = ask.quality or DEFAULT_QUALITY, ask.duration or DEFAULT_DURATION
        aspect_ratio, model = ask.aspect_ratio or DEFAULT_ASPECT_RATIO, ask.model or UPSTREAM_DEFAULT_FUSION_MODEL
        off_peak = bool(ask.off_peak_mode)
        cost = self._video_cost(model, quality, duration, audio=False, off_peak=off_peak)
        fingerprint = "|".join(("fusion", ask.prompt, str(seed), model, *paths))
        return await self._start(
            request,
            ask,
            email=ask.email,
            prompt=ask.prompt,
            off_peak=off_peak,
            cost=cost,
            picture=Picture.for_aspect(aspect_ratio, fingerprint),
            model=model,
            seed=seed,
            quality=quality,
            duration=duration,
            aspect_ratio=aspect_ratio,
        )

    async def upscale(self, request: web.Request) -> web.Response:
        ask = validated(UpscaleRequest, await read_body(request))
        source = self._completed_source(ask.video_id)
        cost = self._pricing().upscale_credits(source.video_duration)
        # An upscale runs on the account that made the source video.
        return await self._start(
            request,
            ask,
            email=source.email,
            prompt=source.prompt,
            off_peak=False,
            cost=cost,
            picture=source.picture.upscaled(),
            model=source.model,
            seed=source.seed,
            quality=source.quality,
            duration=source.duration,
            video_duration=source.video_duration,
            aspect_ratio=source.aspect_ratio,
            outcome=VideoPhase.COMPLETED,
            original_video_id=source.video_id,
            upscaled=True,
            extended=source.extended,
        )

    async def extend(self, request: web.Request) -> web.Response:
        ask = validated(ExtendRequest, await read_body(request), self.sandbox.config.catalogue)
        email: str | None
        if ask.video_id:
            source = self._completed_source(ask.video_id, on_account=ask.email)
            email, base, aspect_ratio = ask.email or source.email, source.picture, source.aspect_ratio
            source_seconds, original_id = source.video_duration, source.video_id
        else:
            upload = self.sandbox.uploads.require(ask.video_path or "", "video", "video_path")
            email, aspect_ratio = ask.email, DEFAULT_ASPECT_RATIO
            base = Picture.for_aspect(aspect_ratio, upload.path)
            # The length of an uploaded video is not probed: count only the extension.
            source_seconds, original_id = 0, ""
        prompt, seed = ask.prompt or "", self._seed(ask.seed)
        quality, duration = ask.quality or DEFAULT_QUALITY, ask.duration or DEFAULT_DURATION
        off_peak, model = bool(ask.off_peak_mode), ask.model or DEFAULT_EXTEND_MODEL
        cost = self._video_cost(model, quality, duration, audio=False, off_peak=off_peak)
        return await self._start(
            request,
            ask,
            email=email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            picture=base.extended(f"{base.fingerprint}|extend|{prompt}|{seed}"),
            model=model,
            seed=seed,
            quality=quality,
            duration=duration,
            video_duration=source_seconds + duration,
            aspect_ratio=aspect_ratio,
            original_video_id=original_id,
            extended=True,
        )

    async def lipsync(self, request: web.Request) -> web.Response:
        """A video made to speak a prompt in a voice, or to an uploaded audio track: a v5 video
        PixVerse made (on the account that made it) or one uploaded with POST files (on `email`,
        else any)."""
        ask = validated(LipSyncRequest, await read_body(request))
        if ask.audio_path:
            self.sandbox.uploads.require(ask.audio_path, "audio", "audio_path")
        if ask.speaker_id is not None:
            require_voice(ask.speaker_id, "speaker_id")
        sound = ask.audio_path or f"{ask.prompt}|{ask.speaker_id or ''}"
        off_peak = bool(ask.off_peak_mode)
        catalogue = self.sandbox.config.catalogue or shipped_catalogue()
        if not ask.video_id:
            # Any readable upload will do; it is priced like a new video of the lip-sync
            # model at the default quality, as long as the upload.
            base, seconds = self._uploaded_video(ask.video_path or "")
            model = catalogue.having(Feature.LIPSYNC_VIDEO)[0]
            return await self._start(
                request,
                ask,
                email=ask.email,
                prompt=ask.prompt or "",
                off_peak=off_peak,
                cost=self._video_cost(model, DEFAULT_QUALITY, seconds, audio=False, off_peak=off_peak),
                picture=base.with_sound(f"{base.fingerprint}|lipsync|{sound}"),
                model=model,
                seed=self._seed(None),
                quality=DEFAULT_QUALITY,
                duration=seconds,
                aspect_ratio=DEFAULT_ASPECT_RATIO,
            )
        source = self._completed_source(ask.video_id, on_account=ask.email)
        if not catalogue.can_lipsync(source.model):
            raise ApiError(400, f"video_id: {ask.video_id} was made with {source.model}; lipsync works with v5 videos")
        cost = self._video_cost(source.model, source.quality, source.duration, audio=False, off_peak=off_peak)
        # Like an upscale, it runs on the account that made the source video.
        return await self._start(
            request,
            ask,
            email=source.email,
            prompt=ask.prompt or "",
            off_peak=off_peak,
            cost=cost,
            picture=source.picture.with_sound(f"{source.picture.fingerprint}|lipsync|{sound}"),
            model=source.model,
            seed=source.seed,
            quality=source.quality,
            duration=source.duration,
            video_duration=source.video_duration,
            aspect_ratio=source.aspect_ratio,
            original_video_id=source.video_id,
            extended=source.extended,
        )

    async def modify(self, request: web.Request) -> web.Response:
        """A video changed as the prompt says: one PixVerse made (on the account that holds
        it) or one uploaded with POST files; the result is as long as the source."""
        ask = validated(ModifyRequest, await read_body(request), self.sandbox.config.catalogue)
        email: str | None
        if ask.video_id:
            source = self._completed_source(ask.video_id, on_account=ask.email)
            email, aspect_ratio, original_id = ask.email or source.email, source.aspect_ratio, source.video_id
            base, seconds = source.picture, source.video_duration
        else:
            email, aspect_ratio, original_id = ask.email, DEFAULT_ASPECT_RATIO, ""
            base, seconds = self._uploaded_video(ask.video_path or "")
        prompt, seed = ask.prompt, self._seed(ask.seed)
        quality, model = ask.quality or DEFAULT_QUALITY, ask.model or UPSTREAM_DEFAULT_MODIFY_MODEL
        off_peak = bool(ask.off_peak_mode)
        cost = self._video_cost(model, quality, seconds, audio=False, off_peak=off_peak)
        return await self._start(
            request,
            ask,
            email=email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            picture=base.modified(f"{base.fingerprint}|modify|{prompt}|{seed}"),
            model=model,
            seed=seed,
            quality=quality,
            duration=seconds,
            aspect_ratio=aspect_ratio,
            original_video_id=original_id,
        )

    async def _start(
        self,
        request: web.Request,
        ask: RoutedRequest,
        *,
        email: str | None,
        prompt: str,
        off_peak: bool,
        cost: int,
        picture: Picture,
        duration: int,
        video_duration: int | None = None,
        outcome: VideoPhase | None = None,
        **video: Any,
    ) -> web.Response:
        """Admit the job on its account (429/412 as documented), then start its video.

        Admission waits out `create_delay` first, as a create round trip at useapi.net does.
        """
        with self.sandbox.create_arriving(email, off_peak=off_peak):
            if self.sandbox.config.create_delay > 0:
                await asyncio.sleep(self.sandbox.config.create_delay)
        account = admit(self.sandbox, Admission(email, ask.maxJobs, off_peak, prompt, cost))
        started = SandboxVideo(
            number=self.sandbox.next_number(),
            email=account.email,
            prompt=prompt,
            off_peak=off_peak,
            cost=cost,
            picture=picture,
            duration=duration,
            video_duration=duration if video_duration is None else video_duration,
            outcome=planned_outcome(self.sandbox.config, prompt) if outcome is None else outcome,
            media_origin=origin(request),
            reply_url=ask.replyUrl,
            reply_ref=ask.replyRef,
            **video,
        )
        return await self._accepted(request, started)

    def _seed(self, requested: int | None) -> int:
        return requested or self.sandbox.rng.randint(SEED_MIN, SEED_MAX)

    def _uploaded_video(self, path: str) -> tuple[Picture, int]:
        """A video uploaded with POST files, as the clip a job starts from and its whole seconds."""
        upload = self.sandbox.uploads.require(path, "video", "video_path")
        probed = probe(upload.data)
        if probed is None:
            raise ApiError(400, f"video_path: {upload.path} is not a video PixVerse can read")
        return Picture.like(probed.width, probed.height, probed.seconds, upload.path), max(1, math.ceil(probed.seconds))

    def _completed_source(self, video_id: str, *, on_account: str | None = None) -> SandboxVideo:
        """The finished video a job starts from; 404 when `on_account` is not the account that holds it.

        PixVerse keeps a video in the account that made it: another account does not have it.
        """
        source = self.sandbox.require(video_id)
        if on_account and on_account.lower() != source.email.lower():
            raise ApiError(404, f"Video {video_id} was not found on account {on_account}")
        if source.phase is not VideoPhase.COMPLETED:
            raise ApiError(400, f"video_id: {video_id} is {source.phase.name}; only a COMPLETED video can be used")
        return source

    async def _accepted(self, request: web.Request, video: SandboxVideo) -> web.Response:
        self.sandbox.bodies[video.video_id] = await read_body(request)  # read once, kept by aiohttp
        self.sandbox.start(video)
        config = self.sandbox.config
        if config.drop_write_responses > 0 and request.transport is not None:
            config.drop_write_responses -= 1
            log.info("dropping the response to the request that created %s", video.video_id)
            # The job runs, but the client only sees the connection close.
            request.transport.close()
        return web.json_response({video.id_key: video.video_id})


def _soundtrack(ask: CreateVideoRequest) -> str:
    """What a created video's sound is drawn from; "" when it is asked for none."""
    parts = [
        "audio" if ask.audio else "",
        "auto" if ask.auto_sound else "",
        ask.sound_effect_prompt or "",
        ask.lip_sync_tts_prompt or "",
    ]
    return "|".join(parts) if any(parts) else ""
