"""Which PixVerse account gets the next job.

Capacity comes from `GET scheduler/available` (refreshed on an interval) and is
counted down locally as jobs are sent, so one refresh serves many submissions.
An account that answers 412 (no credits) or 596 (needs attention) is paused: no
job goes to it until a probe after `pause_probe_interval` shows it works again.

An account that answers 429 (busy) is believed over its reported capacity: it is
not offered again until its busy backoff ends, and then for one probe. Each 429
in a row doubles the backoff (up to a maximum); a job that goes through resets it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
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
    busy_until: float = 0.0  # monotonic time a 429's backoff ends
    busy_backoff: float = 0.0  # length of the current backoff; 0 when the last job went through
    # A job sent after a backoff ended is on its way: no other goes until it is answered
    # (jobs are sent concurrently, and a busy account gets one probe, not a slot's worth).
    probing: bool = False

    def is_busy(self, now: float) -> bool:
        return now < self.busy_until


class AccountPool:
    def __init__(
        self,
        upstream: Upstream,
        *,
        only: list[str] | None = None,
        refresh_interval: float = 30.0,
        pause_probe_interval: float = 600.0,
        busy_backoff_initial: float = 15.0,
        busy_backoff_max: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream
        self._only = set(only or [])
        self._refresh_interval = refresh_interval
        self._probe_interval = pause_probe_interval
        self._busy_initial = busy_backoff_initial
        self._busy_max = busy_backoff_max
        self._clock = clock
        self._slots: dict[str, AccountSlot] = {}
        self._refreshed_at: float | None = None
        self._listed = False  # a refresh has succeeded: the slots are the accounts in use
        # Accounts asked for (`only`) that the last refresh did not report: useapi.net does not know them.
        self._unknown: list[str] = []
        # Passes with creates on their way (`sending`): useapi.net does not count a job
        # before its create is answered, so a capacity read then would free their slots again.
        self._sending = 0

    @property
    def accounts(self) -> list[AccountSlot]:
        return list(self._slots.values())

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """While jobs picked from this pool may be on their way upstream: no capacity refresh
        (it would report their slots free, and more jobs would go than the accounts have room for)."""
        self._sending += 1
        try:
            yield
        finally:
            self._sending -= 1

    async def refresh(self, *, force: bool = False) -> None:
        if self._sending:
            return  # the counts kept here are the right ones until the creates are answered
        now = self._clock()
        if not force and self._refreshed_at is not None and now - self._refreshed_at < self._refresh_interval:
            return
        try:
            availability = await self._upstream.scheduler_available()
        except UpstreamError as exc:
            log.warning("could not refresh account capacity: %r", exc)
            return
        self._refreshed_at = now
        self._listed = True
        seen = set()
        for cap in availability.available:
            if self._only and cap.email not in self._only:
                continue
            seen.add(cap.email)
            slot = self._slots.setdefault(cap.email, AccountSlot(cap.email))
            # Capacity only: a busy mark outlives a refresh, because scheduler/available
            # does not see PixVerse's own concurrency limit and may report room after a 429.
            slot.max_jobs, slot.available = cap.maxJobs, max(0, cap.available)
        for gone in set(self._slots) - seen:
            del self._slots[gone]
        unknown = sorted(self._only - {cap.email for cap in availability.available})
        if unknown and unknown != self._unknown:
            log.warning("USEAPI_ACCOUNTS: useapi.net does not know %s; no job can go to it", ", ".join(unknown))
        self._unknown = unknown

    def invalidate(self) -> None:
        """Re-read capacity on the next refresh (a job just finished somewhere)."""
        self._refreshed_at = None

    def pick(self) -> str | None:
        """The account with the most free slots (paused ones only when due a probe, busy ones never).

        Takes one of its slots; `release` gives it back when the job does not go out.
        """
        now = self._clock()
        best = self._best(now, needs_slot=True)
        return None if best is None else self._take_slot(best, now, needs_slot=True)

    def pick_without_slot(self) -> str | None:
        """An account for a job useapi.net does not count against maxJobs (off-peak): the one
        with the most free slots, but a full account will do. Takes no slot; paused accounts
        only when due a probe, busy ones never (a 429 says it takes no work now)."""
        now = self._clock()
        best = self._best(now, needs_slot=False)
        return None if best is None else self._take_slot(best, now, needs_slot=False)

    def take(self, email: str, *, needs_slot: bool = True) -> str | None:
        """A slot on `email` itself, or None while it has none free (full, busy, or paused).

        For a job bound to one account — an upscale or extend runs on the account that
        made its source video — which waits for that account rather than going elsewhere.
        `needs_slot=False` (an off-peak job) asks only that the account takes work now.
        """
        now = self._clock()
        slot = self._slot(email)
        if slot is None or not self._offers(slot, now, needs_slot=needs_slot):
            return None
        return self._take_slot(slot, now, needs_slot=needs_slot)

    def has_room(self) -> bool:
        """Whether `pick` would find an account now (a job that takes a slot may go)."""
        return self._best(self._clock(), needs_slot=True) is not None

    def takes_work(self) -> bool:
        """Whether `pick_without_slot` would find an account now (an off-peak job may go)."""
        return self._best(self._clock(), needs_slot=False) is not None

    def serves(self, email: str) -> bool:
        """Whether `email` is one of the accounts in use (configured, and listed at the last refresh).

        True until a refresh has succeeded: nothing is known to be gone before then.
        """
        return not self._listed or self._slot(email) is not None

    def _best(self, now: float, *, needs_slot: bool) -> AccountSlot | None:
        usable = [s for s in self._slots.values() if self._offers(s, now, needs_slot=needs_slot)]
        return max(usable, key=lambda s: (s.paused_reason is None, s.available)) if usable else None

    def _slot(self, email: str) -> AccountSlot | None:
        # Emails compare case-insensitively: a video id may spell one differently than the listing.
        wanted = email.lower()
        return self._slots.get(email) or next((s for s in self._slots.values() if s.email.lower() == wanted), None)

    def _offers(self, slot: AccountSlot, now: float, *, needs_slot: bool) -> bool:
        has_room = slot.available > 0 or not needs_slot
        usable = not slot.is_busy(now) and not slot.probing
        return has_room and usable and (slot.paused_reason is None or now >= slot.paused_until)

    def _take_slot(self, slot: AccountSlot, now: float, *, needs_slot: bool) -> str:
        if needs_slot:
            slot.available -= 1
        if slot.paused_reason is not None:
            # One probe per interval: push the next one out before trying this one.
            slot.paused_until = now + self._probe_interval
        if slot.busy_backoff:
            slot.probing = True  # its last answer was a 429: this job probes it, alone
        return slot.email

    def release(self, email: str) -> None:
        """A picked slot was not used (the job went back to the queue).

        Not on a busy account: its 429 said the slot was never there.
        """
        self.end_probe(email)
        slot = self._slots.get(email)
        if slot is not None and not slot.is_busy(self._clock()):
            slot.available = min(slot.max_jobs, slot.available + 1)

    def mark_busy(self, email: str) -> float:
        """A 429: offer the account to no job until its backoff ends; returns the backoff.

        Only a 429 to a create sent after the last backoff began (the probe) grows it.

        No jitter: this process is the only one probing its accounts, so there is no
        crowd of retries to spread out.
        """
        slot = self._slots.setdefault(email, AccountSlot(email))
        if slot.is_busy(self._clock()):
            # No job is sent to a busy account: this 429 answers a create sent before the
            # first one came back (the scheduler sends several at once). Same 429, same backoff.
            return slot.busy_backoff
        slot.busy_backoff = min(self._busy_max, slot.busy_backoff * 2) if slot.busy_backoff else self._busy_initial
        slot.busy_until = self._clock() + slot.busy_backoff
        slot.probing = False
        return slot.busy_backoff

    def end_probe(self, email: str) -> None:
        """A job sent to `email` was answered neither yes nor 429 (or its answer was lost):
        it says nothing of the account's room, so the next job may probe it."""
        slot = self._slots.get(email)
        if slot is not None:
            slot.probing = False

    def pause(self, email: str, reason: str) -> bool:
        """Stop using an account; returns True when it was not paused before."""
        slot = self._slots.setdefault(email, AccountSlot(email))
        newly = slot.paused_reason is None
        slot.paused_reason = reason
        slot.paused_until = self._clock() + self._probe_interval
        return newly

    def accepted(self, email: str) -> bool:
        """A job went through on `email`: it is neither busy nor paused any more.

        Returns True when it had been paused, so the operator, told of the pause, hears it works again.
        """
        slot = self._slots.get(email)
        if slot is None:
            return False
        slot.busy_until = slot.busy_backoff = 0.0
        slot.probing = False
        was_paused = slot.paused_reason is not None
        slot.paused_reason = None
        return was_paused

    def unknown_accounts(self) -> list[str]:
        """Accounts the pool was told to use that useapi.net did not report at the last refresh."""
        return list(self._unknown)

    def none_known(self) -> bool:
        """Accounts to use were named, and useapi.net knows none of them: no job can be sent."""
        return bool(self._only) and len(self._unknown) == len(self._only)

    def all_paused(self) -> bool:
        return bool(self._slots) and all(s.paused_reason for s in self._slots.values())

    def pause_reasons(self) -> list[str]:
        return sorted({s.paused_reason for s in self._slots.values() if s.paused_reason})
