"""What every command passes first: is the bot on here, is the user flooding, banned or muted."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.cache import LruDict
from bot.domain import Requester
from bot.errors import Refused
from bot.moderation.service import ModerationService

# Users whose recent commands are remembered at once. Anyone quiet for a whole window
# is forgotten anyway (their count would be zero); this cap only matters if more
# distinct users than this command within one window, and then forgetting the least
# recent of them merely gives them a fresh allowance. About 1 KB each: ~50 MB at most.
RATE_LIMITED_USERS_TRACKED = 50_000


@dataclass(slots=True)
class _RecentCommands:
    times: deque[float] = field(default_factory=deque)
    warned_until: float = 0.0


class RateLimiter:
    """At most `limit` commands per `window` seconds per user; the first refusal is answered, the rest are not."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_users: int = RATE_LIMITED_USERS_TRACKED,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        # A user's record matters only within `window` of their last command: after
        # that, every time in it has passed and any warning has run out.
        self._recent: LruDict[str, _RecentCommands] = LruDict(max_users, ttl=window, clock=clock)

    def check(self, user_key: str) -> None:
        now = self._clock()
        recent = self._recent.get(user_key)
        if recent is None:
            recent = self._recent[user_key] = _RecentCommands()
        seen = recent.times
        while seen and now - seen[0] >= self._window:
            seen.popleft()
        if len(seen) < self._limit:
            seen.append(now)
            return
        retry_in = max(1, int(self._window - (now - seen[0])) + 1)
        if recent.warned_until > now:
            raise Refused("flooding", silent=True)
        recent.warned_until = seen[0] + self._window
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
