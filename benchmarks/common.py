"""What the benchmarks share: result rows, percentiles, memory readings, scratch space and observers.

Observers watch the real code path from the outside (a notifier that stamps deliveries,
a clock that stamps sandbox completions); none replaces the code being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.domain import Job
from bot.ports import VideoDelivery
from bot.sandbox import Sandbox
from tests.harness import Delivered, RecordingNotifier

MIB = 1024 * 1024
# Read like an upload reads a file (aiohttp and aiogram stream files in 64 KiB pieces).
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Metric:
    """One row of the results table.

    `ratio` is defined by each benchmark and explained by `target` (for example
    "ours / floor ≤ 1.5"); `passed` is None for rows that only inform.
    """

    name: str
    measured: float
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    passed: bool | None
    note: str = ""


@dataclass(frozen=True)
class Skipped:
    """A benchmark that could not run here, and why (shown instead of numbers)."""

    name: str
    reason: str


Outcome = list[Metric] | Skipped


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 is the median, 0.99 the p99)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def memory_kib() -> dict[str, int]:
    """This process's VmRSS (resident now) and VmHWM (peak resident) in KiB, from /proc."""
    readings: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            readings[key] = int(value.split()[0])
    return readings


def reset_peak_memory() -> bool:
    """Make VmHWM start again from the current RSS (Linux `clear_refs` 5); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def free_port() -> int:
    """A loopback port free right now, for a server whose URL must be known before it starts
    (BOT_PUBLIC_URL goes into the settings before the bot's HTTP server is up)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory (databases, downloads), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="pixverse-bench-") as path:
        yield Path(path)


@dataclass
class TimingNotifier(RecordingNotifier):
    """A Notifier that stamps when each video reached the chat, reading the file as an upload would.

    `RecordingNotifier.deliver` reads the whole file into memory, which would make the
    memory benchmark measure the notifier instead of the delivery path: this one reads
    in chunks and keeps only the size.
    """

    read_files: bool = False
    delivered_at: dict[str, float] = field(default_factory=dict)
    relayed_bytes: dict[str, int] = field(default_factory=dict)

    async def deliver(self, job: Job, delivery: VideoDelivery) -> None:
        size = 0
        if delivery.file is not None and self.read_files:
            with delivery.file.open("rb") as video:
                while chunk := video.read(READ_CHUNK_BYTES):
                    size += len(chunk)
        self.relayed_bytes[job.id] = size
        self.delivered_at[job.id] = time.monotonic()
        self.deliveries.append(Delivered(job.id, delivery.caption, tuple(delivery.buttons), None, delivery.link))


class CompletionClock:
    """Stamps (time.monotonic) the moment each sandbox video reaches its final phase.

    The sandbox keeps no completion time, so this watches its state every `resolution`
    seconds on the same event loop: a stamp is late by at most about that much.
    """

    def __init__(self, sandbox: Sandbox, resolution: float = 0.002) -> None:
        self._sandbox = sandbox
        self._resolution = resolution
        self.final_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CompletionClock:
        self._task = asyncio.create_task(self._watch(), name="completion-clock")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            now = time.monotonic()
            for video_id, video in self._sandbox.videos.items():
                if video.phase.final and video_id not in self.final_at:
                    self.final_at[video_id] = now
            await asyncio.sleep(self._resolution)


@contextlib.asynccontextmanager
async def time_limit(seconds: float, what: str) -> AsyncIterator[None]:
    """Bound a phase of a benchmark; on overrun, say which phase hung."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"{what} did not finish within {seconds:g} s") from None
