"""What the benchmarks share: result rows, percentiles, memory readings, scratch space and observers.

Observers watch the real code path from the outside (a notifier that stamps deliveries,
a clock that stamps sandbox completions); none replaces the code being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain import Job
from bot.ports import Posted, VideoDelivery
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


def memory_kib(status: Path = Path("/proc/self/status")) -> dict[str, int]:
    """A process's VmRSS (resident now) and VmHWM (peak resident) in KiB, from /proc (default: this one)."""
    readings: dict[str, int] = {}
    for line in status.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            readings[key] = int(value.split()[0])
    return readings


def reset_peak_memory(clear_refs: Path = Path("/proc/self/clear_refs")) -> bool:
    """Make VmHWM start again from the current RSS (Linux `clear_refs` 5); False where refused."""
    try:
        clear_refs.write_text("5")
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

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        size = 0
        if delivery.file is not None and self.read_files:
            with delivery.file.open("rb") as video:
                while chunk := video.read(READ_CHUNK_BYTES):
                    size += len(chunk)
        self.relayed_bytes[job.id] = size
        self.delivered_at[job.id] = time.monotonic()
        self.deliveries.append(Delivered(job.id, delivery.caption, tuple(delivery.buttons), None, delivery.link))
        return Posted(message_ids=(f"video-{job.id}",))


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


PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Settings a developer's shell may carry that would change what the bot process does.
_INHERITED_PREFIXES = ("USEAPI_", "TELEGRAM_", "DISCORD_", "BOT_", "QUOTA_", "POLL_", "SCHEDULER_", "LOG_")


class BotProcess:
    """A bot measured in a process of its own (`python -m benchmarks.child MODE …`).

    Its CPU time and memory are read from /proc by the parent, so the fakes and the
    load generator, which run in the parent, are in neither side's figures. Its output
    goes to files (a full pipe would stall it); the last lines are shown if it dies.
    """

    def __init__(self, mode: str, *args: str, env: dict[str, str] | None = None, workdir: Path) -> None:
        self.mode = mode
        self._args = args
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        self._env |= {"PYTHONPATH": str(PROJECT_ROOT), "LOG_LEVEL": "WARNING", **(env or {})}
        self._workdir = workdir
        self._log = workdir / f"{mode}-{id(self)}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BotProcess:
        self._workdir.mkdir(parents=True, exist_ok=True)
        with self._log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.child",
                self.mode,
                *self._args,
                cwd=self._workdir,  # no stray .env is read
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def output_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            code = self.process.returncode if self.process else None
            raise RuntimeError(f"the {self.mode} process ended ({code}):\n{self.output_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all its threads), from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        after_name = stat.rpartition(")")[2].split()
        # Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
        return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) of the process, in KiB."""
        return memory_kib(Path(f"/proc/{self.pid}/status"))

    def reset_peak_memory(self) -> bool:
        """Make its VmHWM start again from its current RSS; False where the kernel refuses."""
        return reset_peak_memory(Path(f"/proc/{self.pid}/clear_refs"))

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


STOP_TIMEOUT = 15.0


async def until(
    condition: Callable[[], object], *, timeout: float, what: str, process: BotProcess | None = None
) -> None:
    """Wait until `condition()` is truthy, failing at once if `process` died meanwhile.

    Checks every millisecond: the fakes answer on this event loop, so a check costs little.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None:
            process.check_alive()
        if time.monotonic() > deadline:
            tail = f"\n{process.output_tail()}" if process is not None else ""
            raise TimeoutError(f"{what}: not within {timeout:g} s{tail}")
        await asyncio.sleep(0.001)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def pixverse_env(database: Path | str, upstream_url: str, upstream_token: str, **settings: object) -> dict[str, str]:
    """The environment of a `pixverse-bot run` process: production defaults, but for where
    its database (a SQLite file or a PostgreSQL URL) and upstream are, and the `settings`
    given (NAME=value, as an operator sets them)."""
    env = {
        "BOT_DATABASE": str(database),
        "USEAPI_BASE_URL": upstream_url,
        "USEAPI_API_TOKEN": upstream_token,
        "BOT_HTTP_HOST": "127.0.0.1",
        "BOT_HTTP_PORT": "0",
    }
    return env | {name.upper(): str(value) for name, value in settings.items()}


class TelegramAcks:
    """When each user message got its answer: a sendMessage replying to it, seen in a fake
    Telegram's `calls` (scanned incrementally, so checking after every request stays cheap)."""

    def __init__(self, calls: list[Any]) -> None:
        self._calls = calls
        self._scanned = len(calls)
        self.at: dict[tuple[int, int], float] = {}
        self.texts: dict[tuple[int, int], str] = {}

    def scan(self) -> dict[tuple[int, int], float]:
        for call in self._calls[self._scanned :]:
            if call.method != "sendMessage" or not call.ok:
                continue
            replied = call.result.get("reply_to_message")
            if replied:
                key = (call.result["chat"]["id"], replied["message_id"])
                self.at.setdefault(key, call.at)
                self.texts.setdefault(key, call.result["text"])
        self._scanned = len(self._calls)
        return self.at

    def all_of(self, wanted: Iterable[tuple[int, int]]) -> bool:
        answered = self.scan()
        return all(key in answered for key in wanted)
