"""Is TELEGRAM_BOT_TOKEN a bot token Telegram accepts? (`pixverse-bot check` and `run` ask before starting.)"""

from __future__ import annotations

import re

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)

from adapters.telegram.app import build_bot
from bot.preflight import Finding, ok, unreachable, without_secret, wrong
from bot.settings import Settings

# What @BotFather hands out: the bot's numeric id, a colon, then 35 URL-safe characters.
# Lenient on the length, so only what cannot be a token is refused without asking Telegram.
TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,60}")
# getMe is tiny: past this, the server is not answering.
GET_ME_TIMEOUT = 15


async def check_telegram_token(settings: Settings) -> Finding | None:
    """Ask Telegram (getMe, at TELEGRAM_API_BASE when set) who the token belongs to; None without a token."""
    token = settings.telegram_bot_token
    if token is None:
        return None
    if not TOKEN_SHAPE.fullmatch(token.get_secret_value()):
        return wrong(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (from @BotFather: "
            "<bot id>:<35 letters, digits, - or _>, nothing around it)"
        )
    where = settings.telegram_api_base or "api.telegram.org"
    bot = build_bot(settings)
    try:
        me = await bot.get_me(request_timeout=GET_ME_TIMEOUT)
    except (TelegramUnauthorizedError, TelegramNotFound):  # Telegram says 404 for some unknown tokens
        return wrong(f"TELEGRAM_BOT_TOKEN was rejected by {where}: ask @BotFather for the bot's current token")
    except TelegramNetworkError as exc:
        return unreachable(f"TELEGRAM_BOT_TOKEN could not be checked: cannot reach {where} ({_said(exc, settings)})")
    except TelegramAPIError as exc:
        return unreachable(f"TELEGRAM_BOT_TOKEN could not be checked: {where} answered {_said(exc, settings)}")
    finally:
        await bot.session.close()
    return ok(f"Telegram: bot @{me.username} (id {me.id})")


def _said(exc: TelegramAPIError, settings: Settings) -> str:
    return without_secret(exc.message, settings.telegram_bot_token)
