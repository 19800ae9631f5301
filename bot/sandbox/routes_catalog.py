"""GET videos/effects and GET videos/voices: lists in the documented shapes, and the effects' previews.

The effects catalogue has one- and two-picture templates (`effect_type` "1" / "2"),
video and image templates (`template_type` 1 / 2), basic and premium prices
(`fixed_cost` 0 / 20), and preview media (GIF and MP4) the sandbox renders and serves.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.errors import ApiError
from bot.sandbox.media import Picture, render, render_gif, render_sample
from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both, origin, queried_account

EFFECT_MEDIA_PREFIX = "/media/effects/"
_QUALITIES = ["360p", "540p", "720p", "1080p"]
IMAGE_TEMPLATE = 2
VIDEO_TEMPLATE = 1


@dataclass(frozen=True, slots=True)
class SandboxEffect:
    """One template: what it is called, what it takes, what it makes and costs."""

    template_id: int
    name: str
    pictures: int  # effect_type
    template_type: int
    duration: int
    fixed_cost: int
    marker: str = ""
    base_cost: int = 20

    @property
    def credits(self) -> int:
        """What a job with this template costs (the docs: video_base_cost + fixed_cost)."""
        return self.base_cost + self.fixed_cost

    def to_json(self, media_origin: str) -> dict[str, Any]:
        two = self.pictures == 2
        preview = f"{media_origin}{EFFECT_MEDIA_PREFIX}{self.template_id}"
        return {
            "template_id": self.template_id,
            "display_name": self.name,
            "workflow_tag": f"sandbox_{self.name.lower().replace(' ', '_')}",
            "display_prompt": f"{self.name}: a sandbox effect",
            "effect_type": str(self.pictures),
            "template_type": self.template_type,
            "duration": self.duration,
            "qualities": _QUALITIES,
            "video_base_cost": self.base_cost,
            "fixed_cost": self.fixed_cost,
            "example_text": "Upload two person photos" if two else "Upload a person photo",
            "thumbnail_path": f"{preview}.jpg",
            "thumbnail_video_path": f"{preview}.mp4",
            "thumbnail_gif_path": f"{preview}.gif",
            "audio_path": "",
            "marker": self.marker,
        }


# (name, pictures, template type, duration, fixed cost, marker)
_ROWS = (
    ("Sandbox Spin", 1, VIDEO_TEMPLATE, 5, 0, "new"),
    ("Sandbox Hug", 2, VIDEO_TEMPLATE, 5, 20, "hot"),
    ("Dance Party", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Kiss Together", 2, VIDEO_TEMPLATE, 5, 0, "hot"),
    ("Superhero Flight", 1, VIDEO_TEMPLATE, 8, 20, ""),
    ("Squish It", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Inflate", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Melt Away", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Explode Into Petals", 1, VIDEO_TEMPLATE, 5, 20, "new"),
    ("Old Photo Alive", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Zombie Walk", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Venom Transform", 1, VIDEO_TEMPLATE, 8, 20, ""),
    ("Cake Smash", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Hold Hands", 2, VIDEO_TEMPLATE, 5, 0, ""),
    ("Best Friends Forever", 2, VIDEO_TEMPLATE, 5, 0, ""),
    ("Forever Us", 2, VIDEO_TEMPLATE, 8, 20, "hot"),
    ("Pillow Fight", 2, VIDEO_TEMPLATE, 5, 0, ""),
    ("Wedding Day", 2, VIDEO_TEMPLATE, 5, 20, ""),
    ("Muscle Up", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Anime Me", 1, IMAGE_TEMPLATE, 5, 0, "new"),
    ("Figurine Portrait", 1, IMAGE_TEMPLATE, 5, 20, ""),
    ("Couple Portrait", 2, IMAGE_TEMPLATE, 5, 0, ""),
    ("Snow Globe", 1, VIDEO_TEMPLATE, 5, 0, ""),
    ("Rocket Launch", 1, VIDEO_TEMPLATE, 5, 0, ""),
)
EFFECTS: tuple[SandboxEffect, ...] = tuple(
    SandboxEffect(100000000000001 + n, name, pictures, kind, duration, fixed, marker)
    for n, (name, pictures, kind, duration, fixed, marker) in enumerate(_ROWS)
)
_BY_ID = {effect.template_id: effect for effect in EFFECTS}


def find_effect(template_id: int) -> SandboxEffect | None:
    return _BY_ID.get(template_id)


# The voices of the docs' sample answer; each sample is a short tone the sandbox serves.
VOICE_NAMES = ("Emily", "James", "Isabella", "Liam", "Chloe", "Adrian")
VOICE_MEDIA_PREFIX = "/media/voice/"
_VOICE_IDS = {str(number): name for number, name in enumerate(VOICE_NAMES, start=1)}


def require_voice(speaker_id: str, field: str) -> None:
    """400 naming the voices when `speaker_id` is none of them."""
    if str(speaker_id) not in _VOICE_IDS:
        raise ApiError(400, f"{field}: {speaker_id!r} is not a voice; GET videos/voices lists them")


@functools.cache
def _voice_sample(speaker_id: str) -> bytes:
    return render_sample(f"voice {speaker_id}")


_PREVIEW_TYPES = {"gif": "image/gif", "mp4": "video/mp4", "jpg": "image/jpeg"}


@functools.cache
def _preview(template_id: int, extension: str) -> bytes:
    picture = Picture.for_aspect("1:1", f"effect preview {template_id}")
    if extension == "gif":
        return render_gif(picture)
    rendered = render(picture)
    return rendered.mp4 if extension == "mp4" else rendered.first_frame_jpeg


class CatalogRoutes(RouteGroup):
    """Lists that never change while the sandbox runs, and the effects' preview files."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("GET", f"{API_PREFIX}/videos/effects", self.effects),
            *on_both("GET", f"{API_PREFIX}/videos/voices", self.voices),
            web.get(f"{VOICE_MEDIA_PREFIX}{{name}}", self.voice_sample),
            web.get(f"{EFFECT_MEDIA_PREFIX}{{name}}", self.preview),
        ]

    async def effects(self, request: web.Request) -> web.Response:
        queried_account(self.sandbox, request)
        items = [effect.to_json(origin(request)) for effect in EFFECTS]
        return web.json_response({"items": items, "total": len(items), "next_offset": 0})

    async def voices(self, request: web.Request) -> web.Response:
        queried_account(self.sandbox, request)
        voices = [
            {
                "speaker_id": voice,
                "url": f"{origin(request)}{VOICE_MEDIA_PREFIX}{voice}.wav",
                "display_name": name,
            }
            for voice, name in _VOICE_IDS.items()
        ]
        return web.json_response({"tts_list": voices})

    async def voice_sample(self, request: web.Request) -> web.Response:
        """`<speaker_id>.wav`: a second of the voice's tone."""
        stem, _, extension = request.match_info["name"].partition(".")
        if stem not in _VOICE_IDS or extension != "wav":
            raise ApiError(404, f"No such file: {request.path}")
        body = await asyncio.to_thread(_voice_sample, stem)
        return web.Response(body=body, content_type="audio/wav")

    async def preview(self, request: web.Request) -> web.Response:
        """`<template_id>.gif`, `.mp4` or `.jpg`: a preview drawn from the template id."""
        stem, _, extension = request.match_info["name"].partition(".")
        if not stem.isdigit() or find_effect(int(stem)) is None or extension not in _PREVIEW_TYPES:
            raise ApiError(404, f"No such file: {request.path}")
        body = await asyncio.to_thread(_preview, int(stem), extension)
        return web.Response(body=body, content_type=_PREVIEW_TYPES[extension])
