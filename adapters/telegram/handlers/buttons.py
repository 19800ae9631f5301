"""The buttons under a finished video, the text answered to 🔀 Remix and ✏️ Modify (🗣
Lip-sync's answer, which may be a voice note, is handlers.sound's), and ✖️ Cancel under a
progress message.

Every press is answered (a short confirmation, or an alert from the error handlers).
Whether someone may press is the core's call; it learns whether the presser
administers the chat from `requester.is_group_admin` (set by the admission middleware).
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from adapters.telegram.keyboards import CancelButton, ResultButton
from adapters.telegram.places import reply_kwargs
from adapters.telegram.prompts import AnswerTo, asked_for, force_reply, text_question, text_question_of
from adapters.telegram.texts import ALERT_LIMIT, BUTTON_CONFIRMATIONS, STALE_BUTTON
from bot.bootstrap import Core
from bot.domain import TEXT_ACTIONS, Requester, ResultAction


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.callback_query.register(asks_for_text, ResultButton.filter(F.action.in_(TEXT_ACTIONS)))
    handlers.callback_query.register(pressed, ResultButton.filter())
    handlers.callback_query.register(cancel_pressed, CancelButton.filter())
    handlers.message.register(text_answered, AnswerTo(text_question_of(ResultAction.REMIX, ResultAction.MODIFY)))
    handlers.callback_query.register(unknown_button)
    return handlers


async def asks_for_text(
    query: CallbackQuery, callback_data: ResultButton, bot: Bot, core: Core, requester: Requester
) -> None:
    """🔀 Remix, ✏️ Modify and 🗣 Lip-sync: ask for the new prompt, the change or the words, with ForceReply."""
    # Turn strangers away before asking them anything.
    await core.service.button_target(requester, callback_data.job_id)
    action, job_id = callback_data.action, callback_data.job_id
    # A press's requester answers the message the button sits under: the video.
    await bot.send_message(
        reply_markup=force_reply(), **reply_kwargs(requester), **text_question(action, job_id, query.from_user)
    )
    await query.answer(asked_for(action))


async def pressed(query: CallbackQuery, callback_data: ResultButton, core: Core, requester: Requester) -> None:
    await core.service.press(requester, callback_data.job_id, callback_data.action)
    await query.answer(BUTTON_CONFIRMATIONS[callback_data.action])


async def cancel_pressed(query: CallbackQuery, callback_data: CancelButton, core: Core, requester: Requester) -> None:
    # What happened is the answer (an alert: it may say the video can no longer be stopped);
    # the progress message itself turns into "cancelled" once the outcome is settled.
    outcome = await core.control.cancel(requester, callback_data.job_id)
    await query.answer(outcome[:ALERT_LIMIT], show_alert=True)


async def text_answered(message: Message, job_id: str, action: str, core: Core, requester: Requester) -> None:
    await core.service.press(requester, job_id, ResultAction(action), prompt=message.text)


async def unknown_button(query: CallbackQuery) -> None:
    # A keyboard from an older version of the bot: stop the spinner and say so.
    await query.answer(STALE_BUTTON, show_alert=True)
