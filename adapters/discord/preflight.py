"""Is DISCORD_BOT_TOKEN a bot token Discord accepts? (`pixverse-bot check` and `run` ask before starting.)"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import discord
from discord.http import HTTPClient

from adapters.discord.bot import discord_api_base
from bot.preflight import Finding, ok, unreachable, without_secret, wrong
from bot.settings import Settings

# Three dot-separated base64url parts (the bot's id, a timestamp, an HMAC), nothing around them.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# GET /users/@me is tiny: past this, Discord is not answering.
LOGIN_TIMEOUT = 15.0


async def check_discord_token(settings: Settings) -> Finding | None:
    """Log in the way the bot does (GET /users/@me) and say as whom; None without a token."""
    token = settings.discord_bot_token
    if token is None:
        return None
    raw = token.get_secret_value()
    if not TOKEN_SHAPE.fullmatch(raw):
        hint = " (leave out the 'Bot ' in front)" if raw.lower().startswith("bot ") else ""
        return wrong(
            "DISCORD_BOT_TOKEN does not look like a bot token (the Developer Portal's Bot → Reset Token: "
            f"three parts separated by dots){hint}"
        )
    with discord_api_base(settings):
        where = discord.http.Route.BASE
        http = HTTPClient(asyncio.get_running_loop())
        try:
            me = await asyncio.wait_for(http.static_login(raw), LOGIN_TIMEOUT)
        except discord.LoginFailure:
            return wrong(f"DISCORD_BOT_TOKEN was rejected by {where}: reset the token in the Developer Portal")
        except discord.HTTPException as exc:
            said = without_secret(f"{exc.status} {exc.text}", token)
            return unreachable(f"DISCORD_BOT_TOKEN could not be checked: {where} answered {said}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            said = without_secret(f"{type(exc).__name__}: {exc}", token)
            return unreachable(f"DISCORD_BOT_TOKEN could not be checked: cannot reach {where} ({said})")
        finally:
            await http.close()
    return ok(f"Discord: bot {me['username']} (id {me['id']})")
