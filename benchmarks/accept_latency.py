"""accept_latency: how long /create_single takes to be acknowledged as the queue grows.

For each queue length (100, 10,000 and 100,000 queued jobs) a database is filled in
bulk (benchmarks/seeding.py), then `pixverse-bot run` is started on it in its own
process with production defaults, its loops running: the scheduler passes over the
queue every SCHEDULER_INTERVAL and whenever a job is queued, the tracker polls. Its
upstream is a sandbox (in this process) whose two accounts (maxJobs 5) are soon full,
so the queue does not drain while it is measured — as on a busy day.

Users then send /create_single one after another through the fake Bot API (each from a
user of their own, so quota and rate limit admit them); the latency of each is from
the moment the update is available to the bot to the "⏳ Queued" reply reaching the
fake. Target: p99 at the longest queue ≤ 1.5 × p99 at 100 queued. The bot's peak RSS
at each length gives the memory each queued job costs (target ≤ 2 KB).

The seeded jobs belong to Discord users while the process runs Telegram only: their
position updates have no chat to go to, so the figure is the cost of the queue itself,
not of re-showing 100,000 positions after a restart.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    BotProcess,
    Metric,
    Outcome,
    TelegramAcks,
    percentile,
    pixverse_env,
    scratch_dir,
    time_limit,
)
from benchmarks.seeding import Population, seed
from bot.domain import Platform
from bot.sandbox import SandboxConfig, running_sandbox
from storage import open_database
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

NAME = "accept_latency"
LEVELS, QUICK_LEVELS = (100, 10_000, 100_000), (100, 10_000)
SAMPLES, QUICK_SAMPLES = 100, 20
WARMUP = 5
# Past this a level stops sampling (each command waits for the one before).
SAMPLING_SECONDS, QUICK_SAMPLING_SECONDS = 60.0, 15.0
SEEDED_USERS = 10_000
TARGET_RATIO = 1.5
TARGET_BYTES_PER_JOB = 2048
START_TIMEOUT = 120.0
ACK_TIMEOUT = 60.0
QUEUED_ACK = "⏳ Queued"
_user_ids = itertools.count(2_000_000)


@dataclass(frozen=True)
class Level:
    queued: int
    latencies: list[float]
    peak_rss_kib: int
    rss_kib: int
    seeded_seconds: float
    timed_out: bool


async def _level(queued: int, samples: int, budget: float, workdir: Path) -> Level:
    database = workdir / f"queue-{queued}.sqlite3"
    await (await open_database(database)).close()  # the schema, by the product's migrations
    started = time.monotonic()
    seed(database, Population(users=SEEDED_USERS, queued=queued, platform=Platform.DISCORD))
    seeded = time.monotonic() - started
    config = SandboxConfig(generation_seconds=3600)  # accounts stay full: the queue does not drain
    async with FakeTelegram() as fake, running_sandbox(config) as sandbox:
        env = pixverse_env(
            database, sandbox.base_url, config.token, telegram_bot_token=fake.token, telegram_api_base=fake.base_url
        )
        async with BotProcess("pixverse", env=env, workdir=workdir) as bot:
            await fake.wait_for(lambda: fake.waiting_polls or not bot.alive(), timeout=START_TIMEOUT, what="polling")
            bot.check_alive()
            acks = TelegramAcks(fake.calls)
            latencies: list[float] = []
            deadline = time.monotonic() + budget
            timed_out = False
            for number in range(WARMUP + samples):
                user = FakeUser(id=next(_user_ids), first_name="Bench")
                sent_at = time.monotonic()
                message = await fake.user_sends_text(FakeChat.private(user), user, f"/create_single a kite {number}")
                key = (user.id, message["message_id"])
                await fake.wait_for(
                    lambda key=key: acks.all_of([key]) or not bot.alive(),  # type: ignore[misc]
                    timeout=ACK_TIMEOUT,
                    what="ack",
                )
                bot.check_alive()
                assert acks.texts[key].startswith(QUEUED_ACK), acks.texts[key]
                if number >= WARMUP:
                    latencies.append(acks.at[key] - sent_at)
                if time.monotonic() > deadline:
                    timed_out = number + 1 < WARMUP + samples
                    break
            memory = bot.memory_kib()
    return Level(queued, latencies, memory["VmHWM"], memory["VmRSS"], seeded, timed_out)


async def run(quick: bool) -> Outcome:
    levels = QUICK_LEVELS if quick else LEVELS
    samples = QUICK_SAMPLES if quick else SAMPLES
    budget = QUICK_SAMPLING_SECONDS if quick else SAMPLING_SECONDS
    with scratch_dir() as tmp:
        async with time_limit(len(levels) * (budget + START_TIMEOUT + ACK_TIMEOUT), NAME):
            measured = [await _level(queued, samples, budget, tmp) for queued in levels]
    smallest, largest = measured[0], measured[-1]
    p99 = {level.queued: percentile(level.latencies, 0.99) * 1000 for level in measured}
    ratio = p99[largest.queued] / p99[smallest.queued]
    per_job = (largest.peak_rss_kib - smallest.peak_rss_kib) * 1024 / (largest.queued - smallest.queued)
    described = "; ".join(
        f"{level.queued:,} queued: p50 {percentile(level.latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {p99[level.queued]:.1f} ms over {len(level.latencies)} commands"
        f"{' (sampling stopped at its time limit)' if level.timed_out else ''}, "
        f"peak RSS {level.peak_rss_kib / 1024:.0f} MiB (seeded in {level.seeded_seconds:.1f} s)"
        for level in measured
    )
    return [
        Metric(
            name=NAME,
            measured=p99[largest.queued],
            baseline=p99[smallest.queued],
            unit="ms p99",
            ratio=ratio,
            target=f"p99 at {largest.queued:,} queued / at {smallest.queued:,} ≤ {TARGET_RATIO:g}",
            passed=ratio <= TARGET_RATIO,
            note=described,
        ),
        Metric(
            name=f"{NAME}.rss_per_job",
            measured=per_job,
            baseline=None,
            unit="B/queued job",
            ratio=per_job / TARGET_BYTES_PER_JOB,
            target=f"peak RSS growth per queued job ≤ {TARGET_BYTES_PER_JOB // 1024} KB",
            passed=per_job <= TARGET_BYTES_PER_JOB,
            note=f"bot peak RSS {smallest.peak_rss_kib / 1024:.0f} MiB at {smallest.queued:,} queued, "
            f"{largest.peak_rss_kib / 1024:.0f} MiB at {largest.queued:,}",
        ),
    ]
