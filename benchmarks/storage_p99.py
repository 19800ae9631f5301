"""storage_p99: the scheduler's queries and the accept path's unit at scale, with the loops running.

10,000 users, 1,000,000 jobs of which 100,000 are queued (and 200 generating) are
written in bulk (benchmarks/seeding.py: the job store's own column mapping, one
transaction), with their quota ledger. The product's composition root then opens the
database and starts its loops with production intervals against a sandbox whose two
accounts are full: the scheduler passes over the queue every 2 s, the tracker polls.
The generating jobs were sent in the last minutes and the sandbox is making their
videos, as the upstream would be for a running bot: the tracker finds them in its
listing of the account (a job the upstream does not know, or one past the job
timeout, is the exception a tracker pass meets, not its steady state).

Once the loops have made their first passes (a process that starts takes the running
jobs over from its gone predecessor, a write each: a one-off, not the steady state),
each operation is timed on the same event loop, as a command handler or the
scheduler would see it — a wait behind a scheduler pass included. Each runs up to
SAMPLES times or SECONDS seconds, whichever comes first (the sample count is printed).
Target: p99 ≤ 5 ms for each (ratio = p99 / 5 ms).

The queued jobs have no chat adapter in this process, so the scheduler's position
reports stop at the progress pipeline's door (no notifier): the figures are storage
and scheduling, not sending.

BENCH_SEED_CACHE=<folder> keeps the seeded database there for later runs (see
`benchmarks.seeding.seed_cached`): a copy takes seconds where seeding takes a minute.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import cast

from pydantic import SecretStr

from benchmarks.common import Metric, Outcome, percentile, scratch_dir, time_limit
from benchmarks.seeding import ACCOUNTS, Population, running_numbers, seed_cached, user_weights
from bot.bootstrap import Core, open_core
from bot.domain import (
    IN_FLIGHT_STATES,
    RUNNING_STATES,
    ChatRef,
    GenerationRequest,
    Job,
    JobKind,
    JobState,
    Requester,
    UserRef,
    utcnow,
)
from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from bot.sandbox.media import Picture
from bot.sandbox.videos import SandboxVideo, VideoPhase
from bot.settings import load_settings
from storage import SqlJobStore, open_database

NAME = "storage_p99"
BUDGET_MS = 5.0
FULL = Population(users=10_000, delivered=899_800, running=200, queued=100_000)
QUICK = Population(users=10_000, delivered=89_800, running=200, queued=10_000)
SAMPLES, QUICK_SAMPLES = 500, 100
SECONDS, QUICK_SECONDS = 8.0, 3.0
WARMUP = 5

Operation = Callable[[], Awaitable[object]]


def _operations(core: Core, population: Population, rng: random.Random) -> dict[str, Operation]:
    weights = user_weights(population.users)
    ids = [f"{n:012d}" for n in range(population.total)]

    def active_user() -> UserRef:
        user = rng.choices(range(population.users), cum_weights=weights)[0]
        return UserRef(population.platform, str(user), f"User {user}")

    async def admit_and_settle() -> None:
        # What every accepted command does: the quota check, reservation and job insert in
        # one unit (JobAdmission), then, when the job ends, the settlement.
        user = active_user()
        requester = Requester(user, ChatRef(population.platform, user.user_id, is_private=True), reply_to="1")
        request = GenerationRequest(JobKind.CREATE, user_prompt="a fox", prompt="a fox")
        job = Job(id=f"q{rng.getrandbits(44):011x}", requester=requester, request=request)
        assert await core.admission.admit(job, await core.quotas.reservation(job)) is None
        await core.quotas.settle(job.evolve(state=JobState.COMPLETED))

    async def fair_order_page() -> None:
        assert await core.jobs.queued_users(limit=32)

    async def users_next_jobs() -> None:
        await core.jobs.next_queued(f"{population.platform}:{active_user().user_id}", now=utcnow(), limit=4)

    async def position_band() -> None:
        await core.jobs.fair_slice(offset=rng.randrange(population.queued // 2), limit=64)

    async def submitting() -> None:
        await core.jobs.in_states([JobState.SUBMITTING])

    async def in_flight() -> None:
        await core.jobs.count_in_flight_by_user(IN_FLIGHT_STATES, off_peak=False)

    async def running() -> None:
        await core.jobs.in_states(RUNNING_STATES)

    async def fair_place() -> None:
        job = await core.jobs.get(ids[-1 - rng.randrange(population.queued // 2)])
        assert job is not None
        await core.jobs.fair_place(job)

    async def get() -> None:
        assert await core.jobs.get(rng.choice(ids)) is not None

    async def recent_for_user() -> None:
        await core.jobs.recent_for_user(active_user(), 10)

    return {
        "accept: admission (quota + job) + settle": admit_and_settle,
        "scheduler: queued_users (a page of the fair order)": fair_order_page,
        "scheduler: next_queued (a user's next jobs)": users_next_jobs,
        "scheduler: fair_slice (a band of queue places)": position_band,
        "scheduler: in_states(SUBMITTING)": submitting,
        "scheduler: count_in_flight_by_user": in_flight,
        "tracker: in_states(RUNNING)": running,
        "accept: fair_place": fair_place,
        "get": get,
        "recent_for_user": recent_for_user,
    }


async def _latencies_ms(operation: Operation, samples: int, seconds: float) -> list[float]:
    for _ in range(WARMUP):
        await operation()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while len(latencies) < samples and time.monotonic() < deadline:
        started = time.perf_counter()
        await operation()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _start_running_videos(sandbox: Sandbox, population: Population) -> None:
    """The upstream side of the seeded generating jobs: their videos, being made on the
    account that the seeding says took them (numbered as their `video_id` says)."""
    for number in running_numbers(population):
        sandbox.start(
            SandboxVideo(
                number=number,
                email=ACCOUNTS[0],
                model="v4.5",
                prompt="a fox running through snow at dusk",
                seed=12345,
                quality="540p",
                duration=5,
                video_duration=5,
                aspect_ratio="16:9",
                off_peak=False,
                cost=20,
                outcome=VideoPhase.COMPLETED,
                picture=Picture.for_aspect("16:9", f"seeded {number}"),
                media_origin=sandbox.base_url,
            )
        )


async def _settled(core: Core, deadline: float) -> float:
    """Wait until the loops have made their first passes: the tracker has taken the seeded
    running jobs over (they were sent by a process now gone), which a process does once
    when it starts, a write per job. Returns the seconds it took."""
    started = time.monotonic()
    owner = cast(SqlJobStore, core.jobs).owner
    while any(job.owner != owner for job in await core.jobs.in_states(RUNNING_STATES)):
        if time.monotonic() - started > deadline:
            raise TimeoutError(f"the tracker did not take the running jobs over within {deadline:g} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def run(quick: bool) -> Outcome:
    population = QUICK if quick else FULL
    samples, seconds = (QUICK_SAMPLES, QUICK_SECONDS) if quick else (SAMPLES, SECONDS)
    rng = random.Random(20240602)
    # The accounts fill up and stay full; the sandbox numbers the videos it makes after the
    # seeded ones, so that no two videos share an id.
    config = SandboxConfig(generation_seconds=3600, first_video_number=population.total)
    metrics = []
    with scratch_dir() as tmp:
        path = tmp / "bot.sqlite3"
        await (await open_database(path)).close()  # the schema, by the product's migrations
        seeded = seed_cached(path, population)
        async with running_sandbox(config) as sandbox:
            _start_running_videos(sandbox, population)
            settings = load_settings(
                bot_database=path,
                useapi_api_token=SecretStr(config.token),
                useapi_base_url=sandbox.base_url,
                # High enough that every reservation runs the full check and is granted.
                quota_per_user="1000000",
                _env_file=None,
            )
            async with time_limit(60 + 10 * seconds * 8, NAME), open_core(settings) as core:
                # The steady state is measured, not the one-off start of a process.
                settled_in = await _settled(core, deadline=30)
                for label, operation in _operations(core, population, rng).items():
                    latencies = await _latencies_ms(operation, samples, seconds)
                    p99 = percentile(latencies, 0.99)
                    metrics.append(
                        Metric(
                            name=f"{NAME}.{label}",
                            measured=p99,
                            baseline=BUDGET_MS,
                            unit="ms p99",
                            ratio=p99 / BUDGET_MS,
                            target=f"p99 ≤ {BUDGET_MS:g} ms",
                            passed=p99 <= BUDGET_MS,
                            note=f"median {percentile(latencies, 0.5):.2f} ms over {len(latencies)} samples",
                        )
                    )
    first = metrics[0]
    scale = f"{population.total:,} jobs ({population.queued:,} queued), {population.users:,} users"
    settling = f"the loops' first passes took {settled_in:.1f} s"
    metrics[0] = Metric(**{**first.__dict__, "note": f"{first.note}; {scale} {seeded}; {settling}"})
    return metrics
