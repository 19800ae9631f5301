"""Pacing edits of progress messages to what Telegram tolerates.

Telegram answers 429 when a chat sees more than about one message a second (twenty a
minute in a group), and an edit counts. So each message is edited at most once per
interval; an edit that comes too early is not dropped but deferred, and when several
pile up only the latest is made (it carries the newest state). A 429's `retry_after`
defers the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Edit = Callable[[], Awaitable[object]]


class EditPacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next_at: dict[Hashable, float] = {}
        self._latest: dict[Hashable, Edit] = {}
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def ready(self, key: Hashable) -> bool:
        """True when `key` may be edited right now (no pause running, nothing deferred)."""
        return key not in self._tasks and self._delay(key) <= 0

    def hold(self, key: Hashable, seconds: float) -> None:
        """No edit of `key` for the next `seconds`."""
        self._next_at[key] = max(self._next_at.get(key, 0.0), self._clock() + seconds)

    def defer(self, key: Hashable, edit: Edit) -> None:
        """Make `edit` once `key` may be edited again, unless a later edit replaces it first."""
        self._latest[key] = edit
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"telegram-edit-{key}")

    def forget(self, key: Hashable) -> None:
        """The message is final: drop its deferred edit and its pacing."""
        self._latest.pop(key, None)
        self._next_at.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for key in list(self._tasks):
            self.forget(key)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _delay(self, key: Hashable) -> float:
        return self._next_at.get(key, 0.0) - self._clock()

    async def _run(self, key: Hashable) -> None:
        try:
            while True:
                await asyncio.sleep(max(0.0, self._delay(key)))
                edit = self._latest.pop(key, None)
                if edit is None:
                    return
                try:
                    await edit()
                except Exception:  # a bug in one edit must not stop the message's later edits
                    log.exception("deferred edit of %s failed", key)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
