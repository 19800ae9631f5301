"""upstream_traffic: status requests per completed video with useapi.net's documented limits.

useapi.net lets an account run `maxJobs` 1…8 videos at once (5 by default); the sandbox
here gives every account 5. 1,000 jobs are queued (bulk-seeded, benchmarks/seeding.py)
and the real core runs them with its loops going, on 4 accounts and on 40, until the
measurement window closes: from one completed video to the one 3 waves of videos later
(2 with 40 accounts, or in --quick), so every mode is measured over whole cycles. Every
request the sandbox receives is logged; a status request is one that asks how videos are
doing (`GET videos` listings and `GET videos/{id}`). Three ways, same jobs, same core:

- batched (ours): the tracker lists each account's videos once per poll;
- per-video (the baseline, what useapi.net's samples do): the same core, with the
  tracker's per-account poll replaced by `GET videos/{id}` for each running job;
- webhooks (ours): BOT_PUBLIC_URL set, so the sandbox POSTs each job's replyUrl when it
  ends; the signed callback is applied as it comes, and jobs with a callback are polled
  only every WEBHOOK_SAFETY_POLL_INTERVAL (300 s) as a safety net.

Times are scaled so a run takes seconds (TIMING: a video takes 3 s and the tracker
polls every 0.6 s; with 40 accounts 6 s and 1.2 s, so the per-video baseline keeps its
pace; the window spans whole waves, as the jobs start in waves). In
production videos take ~30–60 s and POLL_INTERVAL is 10 s; the ratios depend on video
time / poll interval and on maxJobs, not on the scale. Targets: batched
≥ 4.5× fewer status requests per completed video than per-video polling at maxJobs 5
(the ceiling is 5×: one listing per account covers its 5 running videos); with webhooks
≤ 0.2 per completed video; batched requests per minute flat (≤ 1.2×) as the queue grows
from 100 to 1,000 jobs.
"""

from __future__ import annotations

import asyncio
import bisect
import types
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.common import Metric, Outcome, TimingNotifier, free_port, scratch_dir, time_limit
from benchmarks.seeding import Population, seed
from bot.bootstrap import serving_http
from bot.domain import Job, Platform
from bot.sandbox import Sandbox, SandboxAccount, SandboxConfig, running_sandbox
from bot.tracker import Tracker
from bot.upstream import errors as ue
from storage import open_database
from tests.harness import fast_settings, running_core

NAME = "upstream_traffic"
MAX_JOBS = 5
ACCOUNTS, MANY_ACCOUNTS = 4, 40
QUEUED, FEW_QUEUED = 1_000, 100
USERS = 1_000
# (video seconds, poll seconds, waves measured) per number of accounts. With 40 accounts the
# per-video baseline makes 200 requests a pass: slower time lets it keep its pace in one process.
TIMING = {ACCOUNTS: (3.0, 0.6, 3), MANY_ACCOUNTS: (6.0, 1.2, 2)}
QUICK_WAVES = 2
# How often the request log's length is noted, to split it at the window's completions.
SAMPLE_SECONDS = 0.005
# A wave may take this many video times (the gap until slots are refilled included).
WAVE_DEADLINE = 3
TARGET_REDUCTION, CEILING = 4.5, float(MAX_JOBS)
TARGET_WEBHOOK = 0.2
TARGET_GROWTH = 1.2
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Traffic:
    status_requests: int
    other_requests: int
    completed: int
    seconds: float

    @property
    def per_video(self) -> float:
        return self.status_requests / max(1, self.completed)

    @property
    def per_minute(self) -> float:
        return self.status_requests * 60 / self.seconds


async def _per_video_poll(self: Tracker, account: str | None, jobs: list[Job]) -> None:
    """The baseline: `GET videos/{id}` for every running job, every poll."""
    for job in jobs:
        if not job.video_id:
            continue
        try:
            video = await self._upstream.get_video(job.video_id)
        except ue.UpstreamError:
            continue
        if video is not None:
            await self.apply(job, video)


STATUS_PREFIX = "/v2/pixverse/videos/"
NOT_STATUS = ("create", "upscale", "extend", "effects")


def _is_status(path: str) -> bool:
    """`GET videos` (a listing) or `GET videos/{id}`; not the media files, not create/upscale/extend."""
    rest = path.removeprefix(STATUS_PREFIX)
    return path.startswith(STATUS_PREFIX) and not rest.startswith(NOT_STATUS)


async def _traffic(mode: str, accounts: int, queued: int, quick: bool) -> Traffic:
    generation, poll, waves = TIMING[accounts]
    waves = QUICK_WAVES if quick else waves
    config = SandboxConfig(
        accounts=[SandboxAccount(f"account{i}@sandbox.local", max_jobs=MAX_JOBS) for i in range(accounts)],
        generation_seconds=generation,
        progress_callbacks=0,
    )
    port = free_port()
    with scratch_dir() as tmp:
        database = tmp / "bot.sqlite3"
        await (await open_database(database)).close()
        seed(database, Population(users=USERS, queued=queued, platform=Platform.CONSOLE))
        async with running_sandbox(config) as sandbox:
            webhook = {"bot_public_url": f"http://{LOOPBACK}:{port}"} if mode == "webhooks" else {}
            settings = fast_settings(
                tmp,
                sandbox,
                poll_interval=poll,
                scheduler_interval=poll,
                capacity_refresh_interval=10 * poll,
                **webhook,
            )
            async with running_core(settings, TimingNotifier(), start=False) as core:
                if mode == "per-video":
                    core.tracker._poll_account = types.MethodType(_per_video_poll, core.tracker)  # type: ignore[method-assign]
                async with serving_http(core.http_app, LOOPBACK, port):
                    await core.start_loops()
                    return await _window(sandbox, generation, waves, accounts * MAX_JOBS)


async def _window(sandbox: Sandbox, generation_seconds: float, waves: int, slots: int) -> Traffic:
    """Status requests between two completions `waves × slots` videos apart.

    Every slot is filled at once at the start and refilled when the tracker sees its
    video end, so videos run in waves: a cycle is a video's time plus the gap until its
    slot is sent a new job. A window of fixed length holds a varying whole number of
    waves (40 or 60 videos in 9 s, which moved the ratio from 4.6× to 3.0×); a window
    from one completion to the completion `waves × slots` later spans whole cycles, gap
    included, the same way in every mode and every run.
    """
    samples: list[tuple[datetime, int]] = []  # (when, requests logged by then)
    generation = timedelta(seconds=generation_seconds)

    def completions() -> list[datetime]:
        now = datetime.now(UTC)
        return sorted(done for video in list(sandbox.videos.values()) if (done := video.created_at + generation) <= now)

    await asyncio.sleep(generation_seconds + 1.5)  # accounts filled, first videos done: the steady state
    steady = datetime.now(UTC)
    needed = waves * slots
    deadline = steady + WAVE_DEADLINE * (waves + 1) * generation
    while True:
        samples.append((datetime.now(UTC), len(sandbox.request_log)))
        ended = [done for done in completions() if done >= steady]
        if len(ended) > needed:
            break
        if samples[-1][0] > deadline:
            raise TimeoutError(f"{len(ended)} of {needed + 1} videos completed within the window's deadline")
        await asyncio.sleep(SAMPLE_SECONDS)
    opened, closed = ended[0], ended[needed]

    def logged_by(moment: datetime) -> int:
        return samples[bisect.bisect_right(samples, moment, key=lambda sample: sample[0]) - 1][1]

    start_index, end_index = logged_by(opened), logged_by(closed)
    requests = sandbox.request_log[start_index:end_index]
    status = sum(1 for method, path in requests if method == "GET" and _is_status(path))
    return Traffic(status, len(requests) - status, needed, (closed - opened).total_seconds())


def _describe(label: str, traffic: Traffic) -> str:
    return (
        f"{label}: {traffic.status_requests} status requests for {traffic.completed} videos in "
        f"{traffic.seconds:.0f} s (+{traffic.other_requests} other requests)"
    )


async def run(quick: bool) -> Outcome:
    account_counts = (ACCOUNTS,) if quick else (ACCOUNTS, MANY_ACCOUNTS)
    metrics = []
    batched_by_accounts: dict[int, Traffic] = {}
    async with time_limit(40 * (4 * len(account_counts) + 1), NAME):
        for accounts in account_counts:
            runs = {
                mode: await _traffic(mode, accounts, QUEUED, quick) for mode in ("batched", "per-video", "webhooks")
            }
            batched, per_video, webhooks = runs["batched"], runs["per-video"], runs["webhooks"]
            batched_by_accounts[accounts] = batched
            reduction = per_video.per_video / batched.per_video
            setup = f"{accounts} accounts × maxJobs {MAX_JOBS}, {QUEUED:,} queued"
            notes = "; ".join(_describe(mode, traffic) for mode, traffic in runs.items())
            metrics += [
                Metric(
                    name=f"{NAME}.{accounts}_accounts",
                    measured=batched.per_video,
                    baseline=per_video.per_video,
                    unit="status req/video",
                    ratio=reduction,
                    target=f"per-video / batched ≥ {TARGET_REDUCTION:g} (ceiling {CEILING:g}); {setup}",
                    passed=reduction >= TARGET_REDUCTION,
                    note=f"video {TIMING[accounts][0]:g} s, poll every {TIMING[accounts][1]:g} s; {notes}",
                ),
                Metric(
                    name=f"{NAME}.{accounts}_accounts.webhooks",
                    measured=webhooks.per_video,
                    baseline=batched.per_video,
                    unit="status req/video",
                    ratio=webhooks.per_video / batched.per_video,
                    target=f"with webhooks ≤ {TARGET_WEBHOOK:g} per completed video",
                    passed=webhooks.per_video <= TARGET_WEBHOOK,
                    note="signed callbacks applied as they come; polling only every WEBHOOK_SAFETY_POLL_INTERVAL",
                ),
            ]
        few = await _traffic("batched", ACCOUNTS, FEW_QUEUED, quick)
    large = batched_by_accounts[ACCOUNTS]
    growth = large.per_minute / few.per_minute
    metrics.append(
        Metric(
            name=f"{NAME}.growth",
            measured=large.per_minute,
            baseline=few.per_minute,
            unit="status req/min",
            ratio=growth,
            target=f"batched at {QUEUED:,} queued / at {FEW_QUEUED} ≤ {TARGET_GROWTH:g} (flat)",
            passed=growth <= TARGET_GROWTH,
            note=f"{ACCOUNTS} accounts; scaled time (poll every {TIMING[ACCOUNTS][1]:g} s)",
        )
    )
    return metrics
