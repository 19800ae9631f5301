"""delivery_latency: from the upstream finishing a video to its bytes received by the chat platform.

The whole path runs for real: users send /create_single to the fake Bot API, the core
(production defaults) queues and submits the jobs to a sandbox whose videos are padded
to VIDEO_BYTES, learns that a video is done, downloads it (streamed to a temp file) and
uploads it with aiogram's multipart sendVideo to the fake, which records when the
request — the file's bytes — arrived. Two runs:

- webhook: BOT_PUBLIC_URL points at the bot's HTTP server on loopback, so the sandbox
  POSTs each job's replyUrl when the video is done;
- polling: no public URL; the tracker polls at the default POLL_INTERVAL.

Latency = sendVideo's arrival − the moment the sandbox marked the video final
(`CompletionClock`, within ~2 ms). Jobs start a little apart so completions fall at
random points of the polling cycle. The transfer time of the same file by bare clients
(an httpx download to disk, then a bare aiogram `send_video`) is measured in the same run:
target: webhook latency (median and p95) ≤ 0.25 s + that transfer time.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path

import httpx
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.types import FSInputFile
from pydantic import SecretStr

from benchmarks.common import (
    MIB,
    CompletionClock,
    Metric,
    Outcome,
    free_port,
    percentile,
    scratch_dir,
    time_limit,
)
from bot.bootstrap import open_core, serving_http
from bot.domain import Platform, UserRef
from bot.sandbox import SandboxConfig, running_sandbox
from bot.settings import Settings, load_settings
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

NAME = "delivery_latency"
VIDEO_BYTES = 10 * MIB
JOBS, QUICK_JOBS = 8, 3
GENERATION_SECONDS = 1.5
START_SPACING = 0.37  # not a divisor of POLL_INTERVAL: completions spread over the cycle
POLL_INTERVAL = Settings.model_fields["poll_interval"].default
TARGET_OVERHEAD = 0.25
TRANSFER_SAMPLES = 3
LOOPBACK = "127.0.0.1"


async def _latencies(jobs: int, *, webhook: bool, workdir: Path) -> list[float]:
    config = SandboxConfig(generation_seconds=GENERATION_SECONDS, video_pad_bytes=VIDEO_BYTES, progress_callbacks=0)
    port = free_port()
    from adapters.telegram import running_telegram

    async with FakeTelegram() as fake, running_sandbox(config) as sandbox:
        settings = load_settings(
            useapi_api_token=SecretStr(config.token),
            useapi_base_url=sandbox.base_url,
            bot_database=workdir / f"delivery-{'webhook' if webhook else 'polling'}.sqlite3",
            telegram_bot_token=SecretStr(fake.token),
            telegram_api_base=fake.base_url,
            max_jobs_in_flight_per_user=jobs,
            **({"bot_public_url": f"http://{LOOPBACK}:{port}"} if webhook else {}),
            _env_file=None,
        )
        async with (
            open_core(settings) as core,
            running_telegram(core),
            serving_http(core.http_app, LOOPBACK, port),
            CompletionClock(sandbox) as clock,
        ):
            users = [FakeUser(id=3_000_000 + number, first_name="Bench") for number in range(jobs)]
            for number, user in enumerate(users):
                await fake.user_sends_text(FakeChat.private(user), user, f"/create_single a kite {number}")
                await asyncio.sleep(START_SPACING)
            await fake.wait_for(
                lambda: len(fake.calls_to("sendVideo")) >= jobs,
                timeout=GENERATION_SECONDS + jobs * START_SPACING + 2 * POLL_INTERVAL + 30,
                what="every video uploaded",
            )
            videos = fake.calls_to("sendVideo")
            latencies = []
            for call in videos:
                assert call.ok and call.files["video"].data.__len__() >= VIDEO_BYTES, call.summary()
                (job,) = await core.jobs.recent_for_user(UserRef(Platform.TELEGRAM, str(call.chat_id)), 1)
                assert job.video_id is not None
                latencies.append(call.at - clock.final_at[job.video_id])
            if webhook:
                # The first listing runs at start with nothing to list; callbacks finished every job.
                listings = [p for m, p in sandbox.request_log if m == "GET" and p.rstrip("/").endswith("/videos")]
                assert len(listings) <= 1 + 2 * (jobs * START_SPACING + 10) / POLL_INTERVAL, listings
            assert not fake.spec_violations, fake.spec_violations[:3]
    return latencies


async def _transfer_seconds(workdir: Path) -> list[float]:
    """The same file moved by bare clients: downloaded from the sandbox to disk, uploaded with aiogram."""
    config = SandboxConfig(generation_seconds=0, video_pad_bytes=VIDEO_BYTES)
    seconds = []
    async with FakeTelegram() as fake, running_sandbox(config) as sandbox:
        bot = Bot(fake.token, session=AiohttpSession(api=fake.api_server()))
        user = FakeUser(id=3_999_999, first_name="Bare")
        await fake.user_sends_text(FakeChat.private(user), user, "/start")
        headers = {"Authorization": f"Bearer {config.token}"}
        async with httpx.AsyncClient(base_url=sandbox.base_url, headers=headers, timeout=30) as http:
            created = await http.post(
                "/v2/pixverse/videos/create", json={"prompt": "a kite", "email": "alice@sandbox.local"}
            )
            created.raise_for_status()
            video_id = created.json()["video_id"]
            url = None
            while url is None:
                video = await http.get(f"/v2/pixverse/videos/{video_id}")
                url = video.json().get("url") if video.status_code == 200 else None
                await asyncio.sleep(0.05)
            try:
                for _ in range(TRANSFER_SAMPLES):
                    target = workdir / "bare.mp4"
                    started = time.monotonic()
                    async with http.stream("GET", url) as response:
                        with target.open("wb") as out:
                            async for chunk in response.aiter_bytes(64 * 1024):
                                out.write(chunk)
                    await bot.send_video(user.id, FSInputFile(target))
                    seconds.append(time.monotonic() - started)
            finally:
                with contextlib.suppress(Exception):
                    await bot.session.close()
    return seconds


async def run(quick: bool) -> Outcome:
    jobs = QUICK_JOBS if quick else JOBS
    with scratch_dir() as tmp:
        async with time_limit(150, NAME):
            webhook = await _latencies(jobs, webhook=True, workdir=tmp)
            polling = await _latencies(jobs, webhook=False, workdir=tmp)
            transfer = statistics.median(await _transfer_seconds(tmp))
    budget = TARGET_OVERHEAD + transfer
    metrics = []
    for label, fraction in (("median", 0.5), ("p95", 0.95)):
        ours, baseline = percentile(webhook, fraction), percentile(polling, fraction)
        metrics.append(
            Metric(
                name=NAME if label == "median" else f"{NAME}.{label}",
                measured=ours,
                baseline=baseline,
                unit=f"s {label}",
                ratio=ours / baseline,
                target=f"webhook {label} ≤ {TARGET_OVERHEAD:g} s + transfer ({transfer:.3f} s); baseline: polling",
                passed=ours <= budget,
                note=(
                    f"{jobs} videos of {VIDEO_BYTES // MIB} MiB per run, uploaded with sendVideo; polling every "
                    f"{POLL_INTERVAL:g} s (default); worst webhook {max(webhook):.3f} s, polling {max(polling):.3f} s; "
                    f"bare download + upload of the same file {transfer:.3f} s (median of {TRANSFER_SAMPLES})"
                ),
            )
        )
    return metrics
