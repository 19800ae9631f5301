"""The Telegram adapter (aiogram 3): commands, buttons and progress in Telegram chats.

    async with open_core(settings) as core, running_telegram(core):
        async with serving_http(core.http_app, host, port):
            ...  # until signalled

A thin layer: handlers parse updates into the core's commands and render its answers;
`TelegramNotifier` renders the core's events (progress, videos, failures).
"""

from adapters.telegram.app import TelegramAdapter, running_telegram
from adapters.telegram.notifier import Pacing, TelegramNotifier

__all__ = ["Pacing", "TelegramAdapter", "TelegramNotifier", "running_telegram"]
