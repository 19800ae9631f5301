"""The lip-sync voices (GET videos/voices), fetched once in a while and found by name.

`--voice Emily` on /create_single, /animate and /lipsync names one of these; /voices
lists them with their sample audio. The list is the same on every account and changes
rarely, so it is kept for `refresh_seconds` (VOICES_CACHE_SECONDS) and, when a refresh
fails, the list already held keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import BotError, InvalidInput
from bot.upstream import errors as ue
from bot.upstream.models import VoiceList

log = logging.getLogger(__name__)


class VoicesUnavailable(BotError):
    """The voice list cannot be fetched now and none is held."""

    def __init__(self) -> None:
        super().__init__("The list of voices cannot be fetched from PixVerse right now; try again in a few minutes.")


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """One voice: its `speaker_id` for the upstream, its name, and a sample of it."""

    speaker_id: str
    name: str
    sample_url: str


class VoiceCatalogue:
    """The voices, fetched through `fetch` and kept for `refresh_seconds`."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[VoiceList]],
        *,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._voices: tuple[VoiceInfo, ...] = ()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def all(self) -> tuple[VoiceInfo, ...]:
        """Every voice, in the upstream's order; fetched again once the list is older than the TTL."""
        async with self._lock:
            if self._fetched_at is None or self._clock() - self._fetched_at >= self._refresh_seconds:
                await self._refresh()
        if not self._voices:
            raise VoicesUnavailable()
        return self._voices

    async def _refresh(self) -> None:
        try:
            listed = await self._fetch()
        except ue.UpstreamError as exc:
            log.warning("fetching the voice list failed (keeping %d held): %r", len(self._voices), exc)
            return
        self._voices = tuple(
            # The docs' own sample answer has a url ending in "\n": strip what is not the url.
            VoiceInfo(str(v.speaker_id).strip(), (v.display_name or "").strip(), (v.url or "").strip())
            for v in listed.tts_list
            if v.speaker_id and v.display_name
        )
        self._fetched_at = self._clock()

    async def find(self, name: str) -> VoiceInfo:
        """The voice called `name` (any case); InvalidInput listing the voices there are."""
        voices = await self.all()
        typed = " ".join(name.split())
        for voice in voices:
            if typed.lower() == voice.name.lower():
                return voice
        allowed = ", ".join(voice.name for voice in voices)
        raise InvalidInput("voice", f"{typed!r} is not a voice; use one of {allowed} (/voices plays them)")
