"""The buttons under a finished video, and the new prompt answered to 🔀 Remix.

Every press is answered (a short confirmation, or an alert from the error handlers).
Whether someone may press is the core's call; the adapter only tells it, for a press
by someone other than the requester, whether that person administers the chat.
"""

from __future__ import annotations

from dataclasses import replace

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from adapters.telegram.keyboards import ResultButton
from adapters.telegram.parsing import is_chat_admin
from adapters.telegram.places import reply_kwargs
from adapters.telegram.prompts import AnswerTo, force_reply, read_remix_question, remix_question
from adapters.telegram.texts import BUTTON_CONFIRMATIONS, REMIX_ASKED, STALE_BUTTON
from bot.bootstrap import Core
from bot.domain import Requester, ResultAction
from bot.errors import NotYourJob


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.callback_query.register(remix_pressed, ResultButton.filter(F.action == ResultAction.REMIX))
    handlers.callback_query.register(pressed, ResultButton.filter())
    handlers.message.register(remix_answered, AnswerTo(read_remix_question))
    handlers.callback_query.register(unknown_button)
    return handlers


async def remix_pressed(
    query: CallbackQuery, callback_data: ResultButton, bot: Bot, core: Core, requester: Requester
) -> None:
    # Turn strangers away before asking them anything.
    await _acting(core, bot, query, requester, callback_data.job_id)
    # A press's requester answers the message the button sits under: the video.
    await bot.send_message(
        reply_markup=force_reply(), **reply_kwargs(requester), **remix_question(callback_data.job_id, query.from_user)
    )
    await query.answer(REMIX_ASKED)


async def pressed(
    query: CallbackQuery, callback_data: ResultButton, bot: Bot, core: Core, requester: Requester
) -> None:
    acting = await _acting(core, bot, query, requester, callback_data.job_id)
    await core.service.press(acting, callback_data.job_id, callback_data.action)
    await query.answer(BUTTON_CONFIRMATIONS[callback_data.action])


async def remix_answered(message: Message, job_id: str, bot: Bot, core: Core, requester: Requester) -> None:
    acting = await _acting(core, bot, message, requester, job_id)
    await core.service.press(acting, job_id, ResultAction.REMIX, prompt=message.text)


async def unknown_button(query: CallbackQuery) -> None:
    # A keyboard from an older version of the bot: stop the spinner and say so.
    await query.answer(STALE_BUTTON, show_alert=True)


async def _acting(core: Core, bot: Bot, event: CallbackQuery | Message, requester: Requester, job_id: str) -> Requester:
    """The requester as the core should see them for this job: a chat admin counts as one only when needed.

    Asking Telegram who administers the chat costs a request, so only a press by
    someone other than the job's requester asks it.
    """
    try:
        await core.service.button_target(requester, job_id)
        return requester
    except NotYourJob:
        if requester.chat.is_private or not await is_chat_admin(bot, event):
            raise
    acting = replace(requester, is_group_admin=True)
    await core.service.button_target(acting, job_id)
    return acting
