"""/effects [words]: the effect templates as embeds with their animated previews, and ◀/▶ to page.

/effect's `effect` option offers the names as you type (autocomplete), so the listing is
for browsing; its buttons live as long as Discord lets the answer be edited.
"""

from __future__ import annotations

import discord
from discord.app_commands import Choice

from bot.effects import EffectPageView, EffectsCatalogue

PAGE_SIZE = 5  # embeds per answer (Discord allows 10; five keep it readable)
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
PAGER_TIMEOUT = 15 * 60.0  # an interaction's answer can be edited for 15 minutes


def effect_embeds(catalogue: EffectsCatalogue, view: EffectPageView) -> list[discord.Embed]:
    embeds = []
    for effect in view.effects:
        embed = discord.Embed(title=effect.name[:256], description=catalogue.describe(effect))
        if effect.preview_gif:
            embed.set_image(url=effect.preview_gif)
        elif effect.preview_video:
            embed.url = effect.preview_video
        embeds.append(embed)
    return embeds


def listing_text(catalogue: EffectsCatalogue, view: EffectPageView) -> str:
    found = f"matching “{view.words}”" if view.words else "on offer"
    if not view.effects:
        return f"No effects {found}. /effects lists them all."
    return (
        f"Effects {found}: {view.total} (page {view.page + 1} of {view.pages})."
        " Apply one with /effect (the names are offered as you type)."
    )


class EffectsPager(discord.ui.View):
    """◀/▶ under a listing: edits it to the previous or next page."""

    def __init__(self, catalogue: EffectsCatalogue, view: EffectPageView) -> None:
        super().__init__(timeout=PAGER_TIMEOUT)
        self._catalogue = catalogue
        self._view = view
        self.previous.disabled = view.page == 0
        self.next.disabled = view.page + 1 >= view.pages

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _button: discord.ui.Button[EffectsPager]) -> None:
        await self._show(interaction, self._view.page - 1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _button: discord.ui.Button[EffectsPager]) -> None:
        await self._show(interaction, self._view.page + 1)

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        view = await self._catalogue.page(self._view.words, page, PAGE_SIZE)
        pager = EffectsPager(self._catalogue, view)
        await interaction.response.edit_message(
            content=listing_text(self._catalogue, view), embeds=effect_embeds(self._catalogue, view), view=pager
        )
        self.stop()


async def show_listing(interaction: discord.Interaction, catalogue: EffectsCatalogue, words: str) -> None:
    """Answer a deferred /effects with the first page."""
    view = await catalogue.page(words, 0, PAGE_SIZE)
    pager = EffectsPager(catalogue, view) if view.pages > 1 else discord.utils.MISSING
    await interaction.edit_original_response(
        content=listing_text(catalogue, view), embeds=effect_embeds(catalogue, view), view=pager
    )


async def effect_choices(catalogue: EffectsCatalogue, typed: str) -> list[Choice[str]]:
    """Effect names for /effect's autocomplete: name, what it takes and its price."""
    found = await catalogue.names(typed, MAX_CHOICES)
    return [
        Choice(name=f"{effect.name} — {effect.needs}, {catalogue.price_of(effect)}"[:100], value=effect.name[:100])
        for effect in found
    ]
