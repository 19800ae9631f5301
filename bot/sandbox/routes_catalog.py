"""GET videos/effects and GET videos/voices: small static lists in the documented shapes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both, queried_account

_QUALITIES = ["360p", "540p", "720p", "1080p"]
_EFFECTS: list[dict[str, Any]] = [
    {
        "template_id": 100000000000001,
        "display_name": "Sandbox Spin",
        "workflow_tag": "sandbox_spin",
        "display_prompt": "The subject spins around",
        "effect_type": "1",
        "template_type": 1,
        "duration": 5,
        "qualities": _QUALITIES,
        "video_base_cost": 20,
        "fixed_cost": 0,
        "example_text": "Upload a person photo",
        "marker": "new",
    },
    {
        "template_id": 100000000000002,
        "display_name": "Sandbox Hug",
        "workflow_tag": "sandbox_hug",
        "display_prompt": "Two people hug",
        "effect_type": "2",
        "template_type": 1,
        "duration": 5,
        "qualities": _QUALITIES,
        "video_base_cost": 20,
        "fixed_cost": 20,
        "example_text": "Upload two person photos",
        "marker": "hot",
    },
]
_VOICES = [
    {"speaker_id": str(number), "display_name": name, "url": ""}
    for number, name in enumerate(("Emily", "James", "Isabella", "Liam"), start=1)
]


class CatalogRoutes(RouteGroup):
    """Lists that never change while the sandbox runs."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("GET", f"{API_PREFIX}/videos/effects", self.effects),
            *on_both("GET", f"{API_PREFIX}/videos/voices", self.voices),
        ]

    async def effects(self, request: web.Request) -> web.Response:
        queried_account(self.sandbox, request)
        return web.json_response({"items": _EFFECTS, "total": len(_EFFECTS), "next_offset": 0})

    async def voices(self, request: web.Request) -> web.Response:
        queried_account(self.sandbox, request)
        return web.json_response({"tts_list": _VOICES})
