"""When the PixVerse client tries a request again, how long it waits first, and how
it looks for a paid request whose answer was lost.

The whole policy is here, as named constants and two small predicates, so it can be
read (and changed) in one place. The guiding rule: a retry must never be able to
cost credits twice, so only requests that are harmless to repeat are repeated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import httpx

from bot.upstream.errors import ServerError, UpstreamError

# One try plus three retries: rides out a restart or a network blip of a few
# seconds, yet gives up soon enough that a real outage is reported, not hidden.
MAX_ATTEMPTS = 4
# Waits grow 0.5 s, 1 s, 2 s … (capped at 8 s) so a struggling server gets room to recover.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0

# Reads and deletes leave the upstream in the same state however often they run,
# so repeating one cannot start (or pay for) a second video.
IDEMPOTENT_METHODS = frozenset({"GET", "DELETE"})

# These fail before a single byte of the request left this machine, so even a
# write (create, upscale, extend, upload) is safe to send again.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

# A write whose answer was lost may still be registering upstream when we first
# look for it, so look again after these pauses before calling its outcome unknown.
SUBMIT_LOOKUP_PAUSES_SECONDS: tuple[float, ...] = (0.0, 1.0, 3.0)
# How far back the fallback search (prompt + seed, for listings without replyRef)
# accepts a video: the upstream's clock and ours need not agree to the second.
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
# A lost write is at most a few minutes old, so its video sits in the newest pages.
LOOKUP_PAGE_SIZE = 40
LOOKUP_MAX_PAGES = 3


def backoff_seconds(retry_number: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry `retry_number` (1 for the first retry).

    "Full jitter" (uniform between 0 and the exponential ceiling): clients that failed
    together do not come back together and hammer the server in lockstep.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (retry_number - 1))
    return rng() * ceiling


def retry_after_transport_error(method: str, error: httpx.TransportError) -> bool:
    """Whether a request that failed on the wire (no HTTP answer) may be sent again."""
    if isinstance(error, NOT_SENT_ERRORS):
        return True
    # A timeout or reset after sending: a write may have been accepted (and charged),
    # so only idempotent requests are repeated; writes are resolved by the caller.
    return method in IDEMPOTENT_METHODS


def retry_after_error_status(method: str, error: UpstreamError) -> bool:
    """Whether a request the upstream answered with an error status may be sent again.

    Only `ServerError` (5xx) qualifies: 429 is never retried here (the account is busy;
    the core's scheduler decides when to try again), 596 is an account problem the
    operator must fix, and other 4xx mean the request itself is wrong and would be
    wrong again. A 5xx write may have been carried out anyway, so writes are not repeated.
    """
    return isinstance(error, ServerError) and method in IDEMPOTENT_METHODS
