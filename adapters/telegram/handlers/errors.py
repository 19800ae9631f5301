"""Every refusal and every bug is answered here, in the place the user acted.

A `BotError` is the core's answer for the user (`str(error)`); silent ones get no
answer at all, though a pressed button still has its spinner stopped. Anything else
is a bug: logged with its traceback, and the user gets a short apology.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Update

from adapters.telegram.parsing import command_name
from adapters.telegram.texts import ALERT_LIMIT, APOLOGY, TEXT_LIMIT, USAGE
from bot.errors import BotError, InvalidInput

log = logging.getLogger(__name__)


def router() -> Router:
    """This module's handlers on a fresh Router (a Router joins one Dispatcher only)."""
    handlers = Router(name=__name__)
    handlers.errors.register(refused, ExceptionTypeFilter(BotError))
    handlers.errors.register(bug)
    return handlers


async def refused(event: ErrorEvent) -> None:
    error = event.exception
    assert isinstance(error, BotError)  # the filter guarantees it
    if error.silent:
        await _answer(event.update, None)
        return
    text = f"⚠️ {error}"
    message = event.update.message
    usage = USAGE.get(command_name(message) or "") if message is not None else None
    if isinstance(error, InvalidInput) and usage:
        text += f"\n{usage}"
    await _answer(event.update, text)


async def bug(event: ErrorEvent) -> None:
    log.error("handling update %s failed", event.update.update_id, exc_info=event.exception)
    await _answer(event.update, APOLOGY)


async def _answer(update: Update, text: str | None) -> None:
    """An alert on a pressed button, a reply to a message; None only stops a button's spinner."""
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text[:ALERT_LIMIT] if text else None, show_alert=bool(text))
        elif update.message is not None and text:
            await update.message.reply(text[:TEXT_LIMIT])
    except TelegramAPIError as exc:  # blocked meanwhile, query expired …: nothing more to say
        log.warning("could not answer update %s: %s", update.update_id, exc.message)
