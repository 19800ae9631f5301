"""replyUrl delivery: POST a video object, log and forget when the receiver fails."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# Short, so a dead receiver cannot hold up the generation it reports on.
_CALLBACK_TIMEOUT = aiohttp.ClientTimeout(total=5)


class CallbackSender:
    """Posts replyUrl callbacks over one lazily opened HTTP session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: dict[str, Any]) -> None:
        """Deliver one callback; failures are logged, never raised (as useapi.net does)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_CALLBACK_TIMEOUT)
        try:
            async with self._session.post(url, json=body) as response:
                if response.status >= 300:
                    log.warning("replyUrl %s answered %s", url, response.status)
        except (TimeoutError, aiohttp.ClientError) as error:
            log.warning("replyUrl %s could not be reached: %r", url, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
