"""Which PixVerse account gets the next job.

Capacity comes from `GET scheduler/available` (refreshed on an interval) and is
counted down locally as jobs are sent, so one refresh serves many submissions.
An account that answers 412 (no credits) or 596 (needs attention) is paused: no
job goes to it until a probe after `pause_probe_interval` shows it works again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.ports import Upstream
from bot.upstream.errors import UpstreamError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AccountSlot:
    email: str
    max_jobs: int = 0
    available: int = 0
    paused_reason: str | None = None
    paused_until: float = 0.0  # monotonic time of the next probe


class AccountPool:
    def __init__(
        self,
        upstream: Upstream,
        *,
        only: list[str] | None = None,
        refresh_interval: float = 30.0,
        pause_probe_interval: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream
        self._only = set(only or [])
        self._refresh_interval = refresh_interval
        self._probe_interval = pause_probe_interval
        self._clock = clock
        self._slots: dict[str, AccountSlot] = {}
        self._refreshed_at: float | None = None

    @property
    def accounts(self) -> list[AccountSlot]:
        return list(self._slots.values())

    async def refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and self._refreshed_at is not None and now - self._refreshed_at < self._refresh_interval:
            return
        try:
            availability = await self._upstream.scheduler_available()
        except UpstreamError as exc:
            log.warning("could not refresh account capacity: %r", exc)
            return
        self._refreshed_at = now
        seen = set()
        for cap in availability.available:
            if self._only and cap.email not in self._only:
                continue
            seen.add(cap.email)
            slot = self._slots.setdefault(cap.email, AccountSlot(cap.email))
            slot.max_jobs, slot.available = cap.maxJobs, max(0, cap.available)
        for gone in set(self._slots) - seen:
            del self._slots[gone]

    def invalidate(self) -> None:
        """Re-read capacity on the next refresh (a job just finished somewhere)."""
        self._refreshed_at = None

    def pick(self) -> str | None:
        """The account with the most free slots (paused ones only when due a probe)."""
        now = self._clock()
        usable = [
            s for s in self._slots.values() if s.available > 0 and (s.paused_reason is None or now >= s.paused_until)
        ]
        if not usable:
            return None
        best = max(usable, key=lambda s: (s.paused_reason is None, s.available))
        best.available -= 1
        if best.paused_reason is not None:
            # One probe per interval: push the next one out before trying this one.
            best.paused_until = now + self._probe_interval
        return best.email

    def release(self, email: str) -> None:
        """A picked slot was not used (the job went back to the queue)."""
        slot = self._slots.get(email)
        if slot is not None:
            slot.available = min(slot.max_jobs, slot.available + 1)

    def mark_full(self, email: str) -> None:
        """A 429: believe the upstream until the next refresh."""
        slot = self._slots.get(email)
        if slot is not None:
            slot.available = 0

    def pause(self, email: str, reason: str) -> bool:
        """Stop using an account; returns True when it was not paused before."""
        slot = self._slots.setdefault(email, AccountSlot(email))
        newly = slot.paused_reason is None
        slot.paused_reason = reason
        slot.paused_until = self._clock() + self._probe_interval
        return newly

    def resume(self, email: str) -> bool:
        """A job went through on a paused account: it works again."""
        slot = self._slots.get(email)
        if slot is None or slot.paused_reason is None:
            return False
        slot.paused_reason = None
        return True

    def all_paused(self) -> bool:
        return bool(self._slots) and all(s.paused_reason for s in self._slots.values())

    def pause_reasons(self) -> list[str]:
        return sorted({s.paused_reason for s in self._slots.values() if s.paused_reason})
