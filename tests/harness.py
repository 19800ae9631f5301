"""Shared test helpers for the core: a recording notifier, settings for fast runs, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.bootstrap import Core, open_core
from bot.domain import ChatRef, Job, Platform, Requester, UserRef
from bot.ports import (
    UNLIMITED,
    ChatBudget,
    DeliveryFailed,
    JobAdmission,
    Posted,
    Progress,
    QuotaCharge,
    VideoDelivery,
)
from bot.quota import QuotaService
from bot.settings import Settings, load_settings
from tests import patience


async def eventually(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll `condition` until it is truthy (returns its value) or fail after `timeout` seconds
    (scaled by the patience factor: see tests/patience.py)."""
    deadline = time.monotonic() + patience.deadline(timeout)
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {patience.deadline(timeout)}s: {what or condition}")
        await asyncio.sleep(interval)


@dataclass
class Delivered:
    job_id: str
    caption: str
    buttons: tuple
    file_bytes: bytes | None
    link: str | None


@dataclass
class RecordingNotifier:
    """A Notifier (the port adapters implement) that records what a chat would show."""

    caption_limit: int = 1024
    limit_bytes: int = 50 * 1024 * 1024
    progress_events: list[tuple[str, Progress]] = field(default_factory=list)
    deliveries: list[Delivered] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Jobs whose progress message the core had finished (after recording them delivered).
    finished: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    # Fault injection: the next N deliveries raise DeliveryFailed(retry=True).
    fail_next_deliveries: int = 0
    # When each delivery was tried (time.monotonic()), failed ones included.
    delivery_tries: list[tuple[str, float]] = field(default_factory=list)

    def upload_limit(self, job: Job) -> int:
        return self.limit_bytes

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return UNLIMITED

    def budget_scope(self, job: Job) -> str:
        return job.chat.chat_id

    async def progress(self, job: Job, progress: Progress) -> str | None:
        self.progress_events.append((job.id, progress))
        return f"msg-{job.id}"

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        self.delivery_tries.append((job.id, time.monotonic()))
        if self.fail_next_deliveries:
            self.fail_next_deliveries -= 1
            raise DeliveryFailed("chat is down", retry=True)
        data = delivery.file.read_bytes() if delivery.file else None
        self.deliveries.append(Delivered(job.id, delivery.caption, tuple(delivery.buttons), data, delivery.link))
        return Posted(message_ids=(f"video-{job.id}",), status="done")

    async def failed(self, job: Job, reason: str) -> Posted:
        self.failures.append((job.id, reason))
        return Posted(message_ids=(f"failed-{job.id}",), status="failed")

    async def finish(self, job: Job, posted: Posted) -> None:
        self.finished.append(job.id)

    async def alert_operator(self, text: str) -> None:
        self.alerts.append(text)

    def outcome_counts(self) -> Counter:
        """How many times each job's outcome reached the chat (must be 1)."""
        return Counter([d.job_id for d in self.deliveries] + [job_id for job_id, _ in self.failures])

    def settled(self, job_id: str) -> bool:
        return self.outcome_counts()[job_id] > 0


def fast_settings(tmp_path: Path, sandbox: Any, **overrides: Any) -> Settings:
    """Settings for a core that talks to `sandbox` and runs its loops every fraction of a second."""
    values: dict[str, Any] = dict(
        useapi_api_token=SecretStr(sandbox.config.token),
        useapi_base_url=sandbox.base_url,
        bot_database=tmp_path / "bot.sqlite3",
        poll_interval=0.1,
        scheduler_interval=0.1,
        capacity_refresh_interval=0.1,
        progress_interval=0,
        busy_retry_initial=0.1,
        busy_retry_max=0.3,
        # A job left SUBMITTING (a lost answer, a restart) is looked up after this long.
        unknown_outcome_grace=0.5,
        delivery_retry_initial=0.1,
        delivery_retry_max=0.3,
        useapi_timeout_seconds=5,
        console_output_dir=tmp_path / "videos",
        quota_per_user="unlimited",  # quota tests set their own
        rate_limit_commands=1000,
        _env_file=None,
    )
    values.update(overrides)
    return load_settings(**values)


def requester(user_id: str = "u1", chat_id: str = "c1", platform: Platform = Platform.CONSOLE) -> Requester:
    return Requester(user=UserRef(platform, user_id, f"User {user_id}"), chat=ChatRef(platform, chat_id), reply_to="m1")


@contextlib.asynccontextmanager
async def running_core(settings: Settings, notifier: RecordingNotifier, *, start: bool = True) -> AsyncIterator[Core]:
    """A core with `notifier` registered for the console platform (what `requester()` uses)."""
    async with open_core(settings, start=False) as core:
        core.notifiers.register(Platform.CONSOLE, notifier)
        if start:
            await core.start_loops()
        try:
            yield core
        finally:
            await core.stop_loops()


def tiny_png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A valid PNG made by hand (no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


BOT_SETTING_PREFIXES = ("USEAPI_", "TELEGRAM_", "DISCORD_", "BOT_")


def bot_env(**settings: str) -> dict[str, str]:
    """This environment minus any bot settings it happens to carry, plus `settings`."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith(BOT_SETTING_PREFIXES)}
    return clean | settings


async def start_bot(*args: str, env: dict[str, str], cwd: Path):
    """`python -m bot <args>` as a real process with piped stdin/stdout/stderr."""
    import sys

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )


async def admit_job(quotas: QuotaService, admission: JobAdmission, job: Job) -> None:
    """Reserve `job`'s quota and store the job in one unit, as the service's accept path
    does; raises QuotaExceeded when it does not fit."""
    reservation = await quotas.reservation(job)
    refused = await admission.admit(job, reservation)
    if isinstance(refused, QuotaCharge):
        raise quotas.exceeded(refused, reservation)
    assert refused is None, refused
