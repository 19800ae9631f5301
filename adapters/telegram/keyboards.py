"""The result buttons under a finished video, the ✖️ Cancel button under a progress
message, and the data they carry back.

`callback_data` must fit 64 bytes: `px:<action>:<job id>` and `pxc:<job id>` (job ids are
8 characters), so every button keeps working after a restart — the job is looked up in
the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from adapters.telegram.texts import BUTTON_LABELS, CANCEL_LABEL
from bot.domain import ResultAction

BUTTONS_PER_ROW = 2


class ResultButton(CallbackData, prefix="px"):
    """A press of 🔄/🔀/⬆️/➕ under job `job_id`'s video."""

    action: ResultAction
    job_id: str


def result_keyboard(job_id: str, actions: Sequence[ResultAction]) -> InlineKeyboardMarkup | None:
    """The buttons the core chose for this video, two to a row (None when there are none)."""
    buttons = [
        InlineKeyboardButton(
            text=BUTTON_LABELS[action], callback_data=ResultButton(action=action, job_id=job_id).pack()
        )
        for action in actions
    ]
    if not buttons:
        return None
    rows = [buttons[i : i + BUTTONS_PER_ROW] for i in range(0, len(buttons), BUTTONS_PER_ROW)]
    return InlineKeyboardMarkup(inline_keyboard=rows)


class CancelButton(CallbackData, prefix="pxc"):
    """A press of ✖️ Cancel under job `job_id`'s progress message."""

    job_id: str


def cancel_keyboard(job_id: str) -> InlineKeyboardMarkup:
    """The ✖️ Cancel button a progress message carries until the job's outcome replaces it."""
    button = InlineKeyboardButton(text=CANCEL_LABEL, callback_data=CancelButton(job_id=job_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])
