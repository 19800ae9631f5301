"""The effect templates (GET videos/effects): cached, searched, looked up and priced.

PixVerse offers ready-made effects ("templates") that turn one picture, or two, into a
video (or, for image templates, into a picture). The list changes upstream from time to
time, so it is fetched on first use and again once it is an hour old; when a refresh
fails, the list already held is kept (and the next use tries again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain import MediaType
from bot.errors import BotError, InvalidInput
from bot.upstream import errors as ue
from bot.upstream.models import Effect, EffectPage

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3600.0
# template_type 2: the template makes a picture (image_id), not a video.
IMAGE_TEMPLATE_TYPE = 2
TWO_PICTURES = "2"
DEFAULT_DURATION = 5  # seconds; the docs list 5 or 8


class EffectsUnavailable(BotError):
    """The effects list could not be fetched and none is held yet."""

    def __init__(self) -> None:
        super().__init__("The effects list cannot be fetched from PixVerse right now; please try again in a minute.")


@dataclass(frozen=True, slots=True)
class EffectInfo:
    """One effect template as the bot offers it."""

    template_id: int
    name: str
    pictures: int  # 1 or 2 (effect_type)
    makes: MediaType
    credits: int  # video_base_cost + fixed_cost
    duration: int
    description: str = ""
    hint: str = ""  # the upstream's usage hint ("Upload a person photo")
    preview_gif: str = ""
    preview_video: str = ""
    marker: str = ""  # "new", "hot" or ""

    @property
    def needs(self) -> str:
        """What the effect takes, in words."""
        return "two pictures" if self.pictures == 2 else "one picture"

    @property
    def preview(self) -> str:
        """An animated preview url (the GIF where there is one), or ""."""
        return self.preview_gif or self.preview_video

    def matches(self, words: list[str]) -> bool:
        text = f"{self.name} {self.description} {self.hint} {self.marker}".lower()
        return all(word in text for word in words)


def effect_info(effect: Effect) -> EffectInfo | None:
    """The effect as the bot offers it; None for an entry without an id or a name."""
    if effect.template_id is None or not effect.display_name:
        return None
    return EffectInfo(
        template_id=effect.template_id,
        name=effect.display_name.strip(),
        pictures=2 if effect.effect_type == TWO_PICTURES else 1,
        makes=MediaType.PICTURE if effect.template_type == IMAGE_TEMPLATE_TYPE else MediaType.VIDEO,
        credits=(effect.video_base_cost or 0) + (effect.fixed_cost or 0),
        duration=effect.duration or DEFAULT_DURATION,
        description=effect.display_prompt or "",
        hint=effect.example_text or "",
        preview_gif=effect.thumbnail_gif_path or "",
        preview_video=effect.thumbnail_video_path or "",
        marker=effect.marker or "",
    )


@dataclass(frozen=True, slots=True)
class EffectPageView:
    """One page of a listing: the effects on it, where it sits, and the words searched for."""

    effects: tuple[EffectInfo, ...]
    page: int  # 0-based
    pages: int
    total: int
    words: str


class EffectsCatalogue:
    """The effect templates, fetched through `fetch` and kept for `refresh_seconds`."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[EffectPage]],
        *,
        price: Callable[[int], str] = lambda credits: f"{credits} credits",
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._price = price
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._effects: tuple[EffectInfo, ...] = ()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def price_of(self, effect: EffectInfo) -> str:
        """What applying `effect` takes from a quota, in the operator's unit."""
        return self._price(effect.credits)

    def describe(self, effect: EffectInfo) -> str:
        """One line: name, what it takes and makes, its price and id."""
        makes = "makes a picture" if effect.makes is MediaType.PICTURE else f"{effect.duration}s video"
        marker = f" [{effect.marker}]" if effect.marker else ""
        return f"{effect.name}{marker} — {effect.needs}, {makes}, {self.price_of(effect)} (id {effect.template_id})"

    def page_text(self, view: EffectPageView, command_prefix: str = "/") -> str:
        """A listing page as every chat shows it, with how to apply an effect."""
        p = command_prefix
        found = f"matching “{view.words}”" if view.words else "on offer"
        if not view.effects:
            return f"No effects {found}. {p}effects lists them all."
        head = f"Effects {found}: {view.total} (page {view.page + 1} of {view.pages})"
        lines = "\n".join(f"• {self.describe(effect)}" for effect in view.effects)
        how = (
            f"Apply one: send a photo with the caption {p}effect <name or id> (an album of two photos for"
            f" two-picture effects). {p}effects <words> searches."
        )
        return f"{head}\n{lines}\n\n{how}"

    async def all(self) -> tuple[EffectInfo, ...]:
        """Every effect, in the upstream's order; fetched again once the list is an hour old."""
        async with self._lock:
            due = self._fetched_at is None or self._clock() - self._fetched_at >= self._refresh_seconds
            if due:
                await self._refresh()
        if not self._effects:
            raise EffectsUnavailable()
        return self._effects

    async def _refresh(self) -> None:
        try:
            page = await self._fetch()
        except ue.UpstreamError as exc:
            log.warning("fetching the effects list failed (keeping %d held): %r", len(self._effects), exc)
            return
        found = (effect_info(item) for item in page.items)
        self._effects = tuple(effect for effect in found if effect is not None)
        self._fetched_at = self._clock()

    async def search(self, words: str) -> tuple[EffectInfo, ...]:
        """The effects whose name, description or hint holds every one of `words` (all when none)."""
        wanted = words.lower().split()
        return tuple(effect for effect in await self.all() if effect.matches(wanted))

    async def page(self, words: str, page: int, size: int) -> EffectPageView:
        """Page `page` (0-based, clamped to the last) of the effects matching `words`."""
        found = await self.search(words)
        pages = max(1, -(-len(found) // size))
        page = min(max(page, 0), pages - 1)
        return EffectPageView(found[page * size : (page + 1) * size], page, pages, len(found), words.strip())

    async def find(self, name_or_id: str) -> EffectInfo:
        """The effect with this template id or name (any case); InvalidInput saying how to find one."""
        typed = " ".join(name_or_id.split())
        if not typed:
            raise InvalidInput("effect", "is missing; name one, e.g. /effect Hug (/effects lists them)")
        effects = await self.all()
        for effect in effects:
            if typed == str(effect.template_id) or typed.lower() == effect.name.lower():
                return effect
        close = [effect.name for effect in effects if typed.lower() in effect.name.lower()]
        if len(close) == 1:
            return next(effect for effect in effects if effect.name == close[0])
        hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
        raise InvalidInput(
            "effect", f"there is no effect {typed!r}{hint}; /effects lists them and /effects <words> searches them"
        )

    async def names(self, typed: str, limit: int) -> list[EffectInfo]:
        """Up to `limit` effects whose name holds `typed` (for autocomplete)."""
        wanted = typed.strip().lower()
        return [effect for effect in await self.all() if wanted in effect.name.lower()][:limit]
