"""What every command passes first: is the bot on here, is the user flooding, banned or muted."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

from bot.domain import Requester
from bot.errors import Refused
from bot.moderation.service import ModerationService


class RateLimiter:
    """At most `limit` commands per `window` seconds per user; the first refusal is answered, the rest are not."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._warned_until: dict[str, float] = {}

    def check(self, user_key: str) -> None:
        now = self._clock()
        seen = self._seen[user_key]
        while seen and now - seen[0] >= self._window:
            seen.popleft()
        if len(seen) < self._limit:
            seen.append(now)
            return
        retry_in = max(1, int(self._window - (now - seen[0])) + 1)
        if self._warned_until.get(user_key, 0) > now:
            raise Refused("flooding", silent=True)
        self._warned_until[user_key] = seen[0] + self._window
        raise Refused(f"Slow down: at most {self._limit} commands per {self._window:g} s. Try again in {retry_in} s.")


class Gatekeeper:
    def __init__(self, moderation: ModerationService, limiter: RateLimiter) -> None:
        self._moderation = moderation
        self._limiter = limiter

    async def admit(
        self,
        requester: Requester,
        *,
        toggles_bot: bool = False,
        admin_command: bool = False,
        rate_limited: bool = True,
    ) -> None:
        """Raise `Refused` when this command must not run (silently where answering would be noise).

        `admin_command`: an admin command, which a mute never blocks (a ban still does).
        `toggles_bot`: /bot on|off, which runs while the bot is off.
        `rate_limited=False` is for the operator's own terminal (the console), where a
        piped script of commands is not a flood.
        """
        group = requester.chat.group_key
        if group and not toggles_bot and not (await self._moderation.settings_for(group)).bot_enabled:
            raise Refused("the bot is switched off in this group", silent=True)
        if rate_limited:
            self._limiter.check(requester.user.key)
        await self._moderation.check_access(requester, admin_command=admin_command or toggles_bot)
