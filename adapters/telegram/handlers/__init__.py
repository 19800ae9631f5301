"""The update handlers, one Router per module."""

from __future__ import annotations

from aiogram import Router

from adapters.telegram.handlers import admin, buttons, effects, errors, generation, info


def routers() -> list[Router]:
    """Fresh routers in matching order: errors apply to all; info's private-chat fallback comes last."""
    return [errors.router(), generation.router(), effects.router(), buttons.router(), admin.router(), info.router()]
