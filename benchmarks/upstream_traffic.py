"""upstream_traffic: status requests per minute with many jobs in flight, batched vs naive polling.

Jobs go through the real path (the generation service queues them, the scheduler submits
them to a sandbox with 4 accounts of 50 slots each); generations last an hour, so every
job stays running while the upstream is polled. Then, on the same jobs:

- batched: the project's `Tracker.poll_once`, `PASSES` times (one `GET videos` listing per
  account per pass);
- naive: what useapi.net's samples do, `GET videos/{id}` for every running job per pass,
  through the same client.

Every request the sandbox receives is counted from its request log and converted to
requests per minute at the default POLL_INTERVAL. Measured at 50 and at 200 jobs, so the
growth of batched traffic with the number of jobs is reported too.
"""

from __future__ import annotations

from benchmarks.common import Metric, Outcome, TimingNotifier, scratch_dir, time_limit
from bot.bootstrap import Core
from bot.commands import CreateSingle, parse_command
from bot.domain import RUNNING_STATES, JobState
from bot.sandbox import Sandbox, SandboxAccount, SandboxConfig, running_sandbox
from bot.settings import Settings
from tests.harness import fast_settings, requester, running_core

NAME = "upstream_traffic"
ACCOUNTS, SLOTS_PER_ACCOUNT = 4, 50
USERS = 50
SMALL, LARGE = 50, 200
PASSES = 5
# Requests per minute are reported at the production default interval.
POLL_INTERVAL = Settings.model_fields["poll_interval"].default
TARGET_REDUCTION = 50.0
# "Flat": batched traffic at 200 jobs within 20 % of the traffic at 50 jobs.
TARGET_GROWTH = 1.2
SUBMIT_PASSES = 20


async def _fill(core: Core, total: int) -> None:
    """Queue jobs until `total` exist (users take turns) and let the scheduler submit them all."""
    existing = len(await core.jobs.in_states(RUNNING_STATES))
    for number in range(existing, total):
        user = f"user{number % USERS}"
        await core.service.create_single(
            requester(user, f"chat-{user}"), parse_command(CreateSingle, prompt=f"a fox number {number}")
        )
    for _ in range(SUBMIT_PASSES):
        await core.scheduler.submit_ready()
        if len(await core.jobs.in_states(RUNNING_STATES)) == total:
            return
    raise RuntimeError(f"the scheduler did not submit {total} jobs in {SUBMIT_PASSES} passes")


async def _batched_per_pass(core: Core, sandbox: Sandbox, jobs: int) -> float:
    mark = len(sandbox.request_log)
    for _ in range(PASSES):
        await core.tracker.poll_once()
    requests = sandbox.request_log[mark:]
    # Every job was found in a listing: the tracker moved each one to GENERATING.
    assert len(await core.jobs.in_states([JobState.GENERATING])) == jobs, "the tracker missed running jobs"
    assert all(path.rstrip("/").endswith("/videos") for _, path in requests), requests[:5]
    return len(requests) / PASSES


async def _naive_per_pass(core: Core, sandbox: Sandbox) -> float:
    running = await core.jobs.in_states(RUNNING_STATES)
    mark = len(sandbox.request_log)
    for _ in range(PASSES):
        for job in running:
            assert job.video_id is not None
            # 404 while processing: the client answers None ("not ready"), the sample polls again.
            assert await core.upstream.get_video(job.video_id) is None
    return len(sandbox.request_log[mark:]) / PASSES


def _per_minute(per_pass: float) -> float:
    return per_pass * 60 / POLL_INTERVAL


async def run(quick: bool) -> Outcome:
    config = SandboxConfig(
        accounts=[SandboxAccount(f"account{i}@sandbox.local", max_jobs=SLOTS_PER_ACCOUNT) for i in range(ACCOUNTS)],
        generation_seconds=3600,  # nothing finishes while we count
        progress_callbacks=0,
    )
    with scratch_dir() as tmp:
        async with running_sandbox(config) as sandbox:
            settings = fast_settings(tmp, sandbox, max_jobs_in_flight_per_user=LARGE // USERS)
            # Loops stay off: this benchmark drives scheduler and tracker passes itself.
            async with running_core(settings, TimingNotifier(), start=False) as core, time_limit(50, NAME):
                measured: dict[int, tuple[float, float]] = {}
                for jobs in (SMALL, LARGE):
                    await _fill(core, jobs)
                    batched = await _batched_per_pass(core, sandbox, jobs)
                    measured[jobs] = (batched, await _naive_per_pass(core, sandbox))
    (batched_small, naive_small), (batched_large, naive_large) = measured[SMALL], measured[LARGE]
    reduction = naive_large / batched_large
    growth = batched_large / batched_small
    return [
        Metric(
            name=NAME,
            measured=_per_minute(batched_large),
            baseline=_per_minute(naive_large),
            unit="req/min",
            ratio=reduction,
            target=f"naive / batched ≥ {TARGET_REDUCTION:g}",
            passed=reduction >= TARGET_REDUCTION,
            note=f"{LARGE} jobs on {ACCOUNTS} accounts, polled every {POLL_INTERVAL:g} s; {PASSES} passes each",
        ),
        Metric(
            name=f"{NAME}.growth",
            measured=_per_minute(batched_large),
            baseline=_per_minute(batched_small),
            unit="req/min",
            ratio=growth,
            target=f"batched {LARGE} / {SMALL} jobs ≤ {TARGET_GROWTH:g}",
            passed=growth <= TARGET_GROWTH,
            note=f"naive grows {naive_large / naive_small:.1f}× over the same jobs",
        ),
    ]
