"""What a sandbox run simulates: its accounts, its timing and the faults it injects.

Both dataclasses stay mutable on purpose: tests (and an operator poking a running
sandbox from a REPL) change faults while requests are in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.catalogue import Catalogue


@dataclass
class SandboxAccount:
    """One simulated PixVerse account as configured at useapi.net."""

    email: str
    max_jobs: int = 5  # useapi.net maxJobs: concurrent jobs before 429 "busy"
    credits: int = 100_000  # spent by generations; 412 when a job costs more than is left
    needs_attention: bool = False  # True -> every create/upscale/extend on it answers 596
    concurrency_limit: int | None = None  # PixVerse's own plan limit -> its own 429 text


def numbers_after_earlier_runs() -> int:
    """A first video number no earlier sandbox run has reached: milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def _default_accounts() -> list[SandboxAccount]:
    return [SandboxAccount("alice@sandbox.local"), SandboxAccount("bob@sandbox.local")]


@dataclass
class SandboxConfig:
    """Behaviour of a sandbox; every field may be changed while it runs."""

    token: str = "sandbox-token"
    accounts: list[SandboxAccount] = field(default_factory=_default_accounts)
    generation_seconds: float = 3.0  # time from create to final
    # Off-peak jobs finish after this, without callbacks: QUEUED (5) for the first half, then generating.
    off_peak_seconds: float = 20.0
    moderation_word: str = "forbidden"  # in a prompt -> 422 at create
    late_moderation_word: str = "spicy"  # in a prompt -> accepted, then final MODERATED
    # Faults: statuses the docs' table does not list (see videos.VideoPhase).
    failure_word: str = "explode"  # in a prompt -> final 8 FAILED with an `error` text, no url
    unlisted_status_word: str = "enigma"  # in a prompt -> final 42 UNLISTED, no error, no url
    error_rate_5xx: float = 0.0  # fraction of requests answered 500/502/503
    response_delay: float = 0.0  # seconds added before every answer
    # Seconds a create/upscale/extend/… takes before it is admitted and answered, as
    # useapi.net's create round trip (a second or more); other requests stay fast.
    create_delay: float = 0.0
    # Seconds a `GET videos` listing takes to be answered (a status read over the internet).
    listing_delay: float = 0.0
    # The next N create/upscale/extend requests are carried out, then the connection
    # is closed without an answer: the client cannot know its video exists.
    drop_write_responses: int = 0
    # A video accepted less than this many seconds ago is left out of GET videos and
    # GET scheduler (and scheduler/available's job list), as the real upstream lists a
    # new video late: a lookup by replyRef right after a create finds nothing.
    new_video_listing_delay: float = 0.0
    progress_callbacks: int = 1  # replyUrl POSTs while GENERATING, before the final one
    video_pad_bytes: int = 0  # pad each MP4 with a `free` box to about this size
    media_delay: float = 0.0  # seconds each video file download is held (a slow CDN)
    random_seed: int = 0
    # Video ids end in a running number from here. A sandbox that restarts beside the same
    # database starts past every earlier run (`numbers_after_earlier_runs`): PixVerse never
    # reuses a video id, so an old job's upscale or extend finds nothing, not another video.
    first_video_number: int = 1
    # DELETE scheduler/{video_id}: the docs call it "cancel video currently being executed" yet
    # describe it as "remove video_id generation tracking by the API", and do not say whether
    # PixVerse stops. False: only tracking stops (no callbacks, the maxJobs slot is free) and
    # PixVerse finishes the video, spending its credits. True: the generation stops too and
    # the video ends FAILED (error `CANCELLED_ERROR`), its credits given back.
    scheduler_delete_stops_video: bool = False
    # The models it accepts (the bot's MODELS_FILE when the bot runs it; None: the shipped ones).
    catalogue: Catalogue | None = None

    def account(self, email: str) -> SandboxAccount | None:
        """The configured account with this email (case-insensitive), if any."""
        wanted = email.lower()
        return next((a for a in self.accounts if a.email.lower() == wanted), None)
