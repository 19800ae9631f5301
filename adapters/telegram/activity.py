"""Work under way, counted, so that stopping can refuse new work and wait for the rest."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Activity:
    def __init__(self) -> None:
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = asyncio.Event()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the enclosed work as under way."""
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def stop(self) -> None:
        """Mark stopping (callers check `stopping` before new work) and wait for the work under way."""
        self.stopping.set()
        await self._idle.wait()
