"""delivery_latency: from the upstream finishing a video to the video handed to the chat.

Two runs of `JOBS` jobs each, through the real core (scheduler, tracker, webhooks,
delivery with its streamed download) on a sandbox:

- webhook: BOT_PUBLIC_URL points at the bot's HTTP server on loopback, so the sandbox
  POSTs each job's replyUrl; the polling safety net is pushed out of the way (60 s) so
  only callbacks can finish a job;
- polling: no public URL, batched polling every `POLL_INTERVAL` seconds.

Latency is the notifier's `deliver()` moment minus the moment the sandbox marked the
video final (stamped by `CompletionClock`, within a few ms). Jobs are started a little
apart, so completions fall at random points of the polling cycle, as they do in life.
"""

from __future__ import annotations

import asyncio

from benchmarks.common import (
    CompletionClock,
    Metric,
    Outcome,
    TimingNotifier,
    free_port,
    percentile,
    scratch_dir,
    time_limit,
)
from bot.bootstrap import serving_http
from bot.commands import CreateSingle, parse_command
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.harness import eventually, fast_settings, requester, running_core

NAME = "delivery_latency"
JOBS, QUICK_JOBS = 20, 8
USERS = 10
POLL_INTERVAL = 2.0
SAFETY_NET_INTERVAL = 60.0  # webhook run: polling must not be what finishes a job
GENERATION_SECONDS = 1.5
START_SPACING = 0.23  # not a divisor of POLL_INTERVAL, so completions spread over the cycle
TARGET_SECONDS = 1.0
LOOPBACK = "127.0.0.1"


async def _latencies(jobs: int, *, webhook: bool) -> list[float]:
    """Seconds from upstream completion to delivery, one per job."""
    config = SandboxConfig(
        accounts=[SandboxAccount(f"{name}@sandbox.local", max_jobs=jobs) for name in ("alice", "bob")],
        generation_seconds=GENERATION_SECONDS,
    )
    port = free_port()
    mode = (
        {"bot_public_url": f"http://{LOOPBACK}:{port}", "poll_interval": SAFETY_NET_INTERVAL}
        if webhook
        else {"poll_interval": POLL_INTERVAL}
    )
    notifier = TimingNotifier()
    with scratch_dir() as tmp:
        async with running_sandbox(config) as sandbox:
            settings = fast_settings(tmp, sandbox, max_jobs_in_flight_per_user=jobs, **mode)
            async with (
                running_core(settings, notifier) as core,
                serving_http(core.http_app, LOOPBACK, port),
                CompletionClock(sandbox) as clock,
            ):
                started = []
                for number in range(jobs):
                    user = f"user{number % USERS}"
                    command = parse_command(CreateSingle, prompt=f"a kite number {number}")
                    started.append(await core.service.create_single(requester(user, f"chat-{user}"), command))
                    await asyncio.sleep(START_SPACING)
                await eventually(
                    lambda: len(notifier.delivered_at) == jobs,
                    timeout=GENERATION_SECONDS + jobs * START_SPACING + 4 * POLL_INTERVAL + 10,
                    what="every job delivered",
                )
                latencies = []
                for job in started:
                    stored = await core.jobs.get(job.id)
                    assert stored is not None and stored.video_id is not None
                    latencies.append(notifier.delivered_at[job.id] - clock.final_at[stored.video_id])
                if webhook:
                    # One listing pass runs at start, with nothing to list; every job was finished by its callback.
                    listings = [p for m, p in sandbox.request_log if m == "GET" and p.rstrip("/").endswith("/videos")]
                    assert not listings, f"polling finished jobs in the webhook run: {listings[:3]}"
    return latencies


async def run(quick: bool) -> Outcome:
    jobs = QUICK_JOBS if quick else JOBS
    async with time_limit(55, NAME):
        webhook = await _latencies(jobs, webhook=True)
        polling = await _latencies(jobs, webhook=False)
    notes = {
        "median": f"{jobs} jobs each; webhook vs polling every {POLL_INTERVAL:g} s; completion stamped within ~2 ms",
        "p95": f"worst: webhook {max(webhook):.3f} s, polling {max(polling):.3f} s",
    }
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
                target=f"webhook {label} ≤ {TARGET_SECONDS:g} s",
                passed=ours <= TARGET_SECONDS,
                note=notes[label],
            )
        )
    return metrics
