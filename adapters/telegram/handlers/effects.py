"""/effects [words]: the effect templates, a page at a time, with a preview per effect.

The listing is one message whose inline keyboard holds a button per effect on the page
(its preview, sent as an animation) and ◀/▶ to page. Every button carries what it needs
in its `callback_data` (at most 64 bytes), so the keyboard works after a restart too.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from adapters.telegram.places import reply_kwargs
from bot.bootstrap import Core
from bot.domain import Requester
from bot.effects import EffectInfo, EffectPageView, EffectsCatalogue

log = logging.getLogger(__name__)

PAGE_SIZE = 8
CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit
CAPTION_LIMIT = 1024


class EffectsPage(CallbackData, prefix="fx"):
    """◀/▶ under a listing: show page `page` of the effects matching `words`."""

    page: int
    words: str


class EffectPreview(CallbackData, prefix="fxv"):
    """An effect's button: send its preview."""

    template_id: int


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.message.register(effects, Command("effects"))
    handlers.callback_query.register(page_pressed, EffectsPage.filter())
    handlers.callback_query.register(preview_pressed, EffectPreview.filter())
    return handlers


def page_button(text: str, page: int, words: str) -> InlineKeyboardButton:
    """A paging button; the search words are cut (at a character) so the data fits 64 bytes."""
    words = " ".join(words.replace(":", " ").split())
    while len(EffectsPage(page=page, words=words).pack().encode()) > CALLBACK_DATA_LIMIT:
        words = words[:-1]
    return InlineKeyboardButton(text=text, callback_data=EffectsPage(page=page, words=words).pack())


def listing_keyboard(view: EffectPageView) -> InlineKeyboardMarkup | None:
    rows = [
        [
            InlineKeyboardButton(
                text=f"🎞 {effect.name}"[:64], callback_data=EffectPreview(template_id=effect.template_id).pack()
            )
        ]
        for effect in view.effects
    ]
    paging = []
    if view.page > 0:
        paging.append(page_button("◀️ Previous", view.page - 1, view.words))
    if view.page + 1 < view.pages:
        paging.append(page_button("Next ▶️", view.page + 1, view.words))
    if paging:
        rows.append(paging)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def effects(message: Message, command: CommandObject, core: Core) -> None:
    catalogue = core.service.effects
    view = await catalogue.page(command.args or "", 0, PAGE_SIZE)
    await message.reply(catalogue.page_text(view), reply_markup=listing_keyboard(view))


async def page_pressed(query: CallbackQuery, callback_data: EffectsPage, core: Core) -> None:
    catalogue = core.service.effects
    view = await catalogue.page(callback_data.words, callback_data.page, PAGE_SIZE)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(catalogue.page_text(view), reply_markup=listing_keyboard(view))
        except TelegramBadRequest as exc:
            # The same page again (a double tap) is "not modified": nothing to change.
            log.info("effects page not changed: %s", exc.message)
    await query.answer(f"Page {view.page + 1} of {view.pages}")


async def preview_pressed(
    query: CallbackQuery, callback_data: EffectPreview, bot: Bot, core: Core, requester: Requester
) -> None:
    catalogue = core.service.effects
    effect = await catalogue.find(str(callback_data.template_id))
    await send_preview(bot, requester, catalogue, effect)
    await query.answer()


async def send_preview(bot: Bot, requester: Requester, catalogue: EffectsCatalogue, effect: EffectInfo) -> None:
    """The effect's preview as an animation with its details; its details alone when Telegram cannot fetch it."""
    caption = f"{catalogue.describe(effect)}\nApply it: a photo with the caption /effect {effect.name}"[:CAPTION_LIMIT]
    place = reply_kwargs(requester)
    if effect.preview:
        try:
            await bot.send_animation(animation=effect.preview, caption=caption, **place)
            return
        except TelegramBadRequest as exc:
            # Telegram fetches the url itself; one it cannot reach gets the link instead.
            log.info("preview of effect %s not sent as an animation: %s", effect.template_id, exc.message)
            caption = f"{caption}\nPreview: {effect.preview}"
    await bot.send_message(text=caption, **place)
