"""The buttons under a finished video, the new prompt answered to 🔀 Remix, and ✖️ Cancel
under a progress message.

Every press is answered (a short confirmation, or an alert from the error handlers).
Whether someone may press is the core's call; it learns whether the presser
administers the chat from `requester.is_group_admin` (set by the admission middleware).
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from adapters.telegram.keyboards import CancelButton, ResultButton
from adapters.telegram.places import reply_kwargs
from adapters.telegram.prompts import AnswerTo, force_reply, read_remix_question, remix_question
from adapters.telegram.texts import ALERT_LIMIT, BUTTON_CONFIRMATIONS, REMIX_ASKED, STALE_BUTTON
from bot.bootstrap import Core
from bot.domain import Requester, ResultAction


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.callback_query.register(remix_pressed, ResultButton.filter(F.action == ResultAction.REMIX))
    handlers.callback_query.register(pressed, ResultButton.filter())
    handlers.callback_query.register(cancel_pressed, CancelButton.filter())
    handlers.message.register(remix_answered, AnswerTo(read_remix_question))
    handlers.callback_query.register(unknown_button)
    return handlers


async def remix_pressed(
    query: CallbackQuery, callback_data: ResultButton, bot: Bot, core: Core, requester: Requester
) -> None:
    # Turn strangers away before asking them anything.
    await core.service.button_target(requester, callback_data.job_id)
    # A press's requester answers the message the button sits under: the video.
    await bot.send_message(
        reply_markup=force_reply(), **reply_kwargs(requester), **remix_question(callback_data.job_id, query.from_user)
    )
    await query.answer(REMIX_ASKED)


async def pressed(query: CallbackQuery, callback_data: ResultButton, core: Core, requester: Requester) -> None:
    await core.service.press(requester, callback_data.job_id, callback_data.action)
    await query.answer(BUTTON_CONFIRMATIONS[callback_data.action])


async def cancel_pressed(query: CallbackQuery, callback_data: CancelButton, core: Core, requester: Requester) -> None:
    # What happened is the answer (an alert: it may say the video can no longer be stopped);
    # the progress message itself turns into "cancelled" once the outcome is settled.
    outcome = await core.control.cancel(requester, callback_data.job_id)
    await query.answer(outcome[:ALERT_LIMIT], show_alert=True)


async def remix_answered(message: Message, job_id: str, core: Core, requester: Requester) -> None:
    await core.service.press(requester, job_id, ResultAction.REMIX, prompt=message.text)


async def unknown_button(query: CallbackQuery) -> None:
    # A keyboard from an older version of the bot: stop the spinner and say so.
    await query.answer(STALE_BUTTON, show_alert=True)
