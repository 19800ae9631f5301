"""A background loop that runs a step every `interval` seconds, or at once when woken."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


# Wake-ups closer together than this share one pass: a burst of 500 new jobs must cost a
# few scheduler passes, not 500 (each pass costs database round trips and capacity checks).
MIN_GAP_SECONDS = 0.2


class PeriodicTask:
    def __init__(self, step: Callable[[], Awaitable[object]], interval: float, name: str) -> None:
        self._step = step
        self._interval = interval
        self._min_gap = min(interval, MIN_GAP_SECONDS)
        self._name = name
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Run the step now instead of at the end of the interval."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                # One failed pass must not end the loop: the next one retries.
                log.exception("%s pass failed", self._name)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the event fires, and the loop never stops.
            try:
                async with asyncio.timeout(self._interval):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            # Let wake-ups that arrive in quick succession gather into the next pass.
            await asyncio.sleep(self._min_gap)
            self._wakeup.clear()
