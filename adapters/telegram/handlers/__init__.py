"""The update handlers, one Router per module."""

from __future__ import annotations

from aiogram import Router

from adapters.telegram.handlers import admin, buttons, effects, errors, generation, info, sound


def routers() -> list[Router]:
    """Fresh routers in matching order: errors apply to all; info's private-chat fallback comes last."""
    # sound before buttons: its 🗣 handler must see the press before the generic one.
    return [
        errors.router(),
        generation.router(),
        effects.router(),
        sound.router(),
        buttons.router(),
        admin.router(),
        info.router(),
    ]
