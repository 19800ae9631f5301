"""Scheduling and tracking against the sandbox: capacity, fairness, account trouble, batched polling."""

from __future__ import annotations

from collections import Counter

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState, ResultAction
from bot.ports import ProgressStage
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core


def create(prompt: str = "a fox", **options):
    return parse_command(CreateSingle, prompt=prompt, **options)


async def all_delivered(core, job_ids):
    jobs = [await core.jobs.get(job_id) for job_id in job_ids]
    return all(j.state is JobState.DELIVERED for j in jobs) and jobs


def creates(sandbox) -> int:
    return sandbox.count("POST", "/v2/pixverse/videos/create")


async def job_states(core, jobs):
    return [(await core.jobs.get(j.id)) for j in jobs]


async def test_a_busy_upstream_keeps_jobs_queued_and_never_tells_the_user_it_failed(tmp_path):
    # scheduler/available reports 3 free slots, but PixVerse's own limit runs one job at a
    # time: the real account pool meets the upstream's 429s.
    account = SandboxAccount("solo@sandbox.local", max_jobs=3, concurrency_limit=1)
    config = SandboxConfig(generation_seconds=0.3, accounts=[account])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=5)
        async with running_core(settings, notifier) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(3)]
            done = await eventually(lambda: all_delivered(core, [j.id for j in jobs]), timeout=20)
    assert all(j.outcome is JobState.COMPLETED for j in done)
    assert notifier.failures == []
    assert creates(sandbox) > 3  # some answers were 429


async def test_a_429_costs_at_most_one_create_per_free_slot_not_one_per_queued_job(tmp_path):
    # The account reports 3 free slots but answers every create with 429. Jobs are sent
    # concurrently, so up to its 3 free slots' worth may be on their way before the first 429.
    account = SandboxAccount("full@sandbox.local", max_jobs=3, concurrency_limit=0)
    config = SandboxConfig(generation_seconds=0.3, accounts=[account])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(
            tmp_path, sandbox, max_jobs_in_flight_per_user=10, busy_retry_initial=60, busy_retry_max=120
        )
        async with running_core(settings, notifier, start=False) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(10)]
            assert await core.scheduler.submit_ready() == 0
            first = creates(sandbox)
            assert 1 <= first <= 3  # at most its free slots, then the account is left alone
            # The account was the problem, not the job: none waits out a backoff of its own.
            assert all(j.state is JobState.QUEUED and j.not_before is None for j in await job_states(core, jobs))
            # A fresh capacity reading still says "3 free"; the account stays off until its backoff ends.
            core.accounts.invalidate()
            assert await core.scheduler.submit_ready() == 0
            assert creates(sandbox) == first
    assert notifier.failures == []


async def test_after_a_429_the_backoff_ends_one_probe_goes_through_and_the_queue_drains(tmp_path):
    account = SandboxAccount("full@sandbox.local", max_jobs=3, concurrency_limit=0)
    config = SandboxConfig(generation_seconds=0.2, accounts=[account])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(
            tmp_path, sandbox, max_jobs_in_flight_per_user=10, busy_retry_initial=0.5, busy_retry_max=1
        )
        async with running_core(settings, notifier, start=False) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(6)]
            assert await core.scheduler.submit_ready() == 0
            refused = creates(sandbox)
            assert 1 <= refused <= 3  # no more than its free slots
            sandbox.config.accounts[0].concurrency_limit = None  # PixVerse has room again
            await core.start_loops()
            done = await eventually(lambda: all_delivered(core, [j.id for j in jobs]), timeout=20)
    assert all(j.outcome is JobState.COMPLETED for j in done)
    assert creates(sandbox) == refused + 6  # the refused creates, then each job once
    assert notifier.failures == []


async def test_one_users_burst_delays_another_users_job_by_at_most_one_slot(tmp_path):
    config = SandboxConfig(generation_seconds=0.2, accounts=[SandboxAccount("solo@sandbox.local", max_jobs=1)])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=5)
        async with running_core(settings, notifier, start=False) as core:
            burst = [await core.service.create_single(requester("greedy"), create(f"fox {i}")) for i in range(6)]
            single = await core.service.create_single(requester("patient"), create("one owl"))
            await core.start_loops()
            await eventually(lambda: all_delivered(core, [j.id for j in burst + [single]]), timeout=30)
            jobs = [await core.jobs.get(j.id) for j in burst + [single]]
    order = [j.id for j in sorted(jobs, key=lambda j: j.submitted_at)]
    assert order.index(single.id) <= 1, order


async def test_per_user_cap_on_jobs_in_flight(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.5)) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=1)
        async with running_core(settings, notifier) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(3)]
            peak = 0

            async def watch():
                nonlocal peak
                running = await core.jobs.in_states([JobState.SUBMITTING, JobState.SUBMITTED, JobState.GENERATING])
                peak = max(peak, len(running))
                return await all_delivered(core, [j.id for j in jobs])

            await eventually(watch, timeout=20, interval=0.02)
    assert peak == 1


async def test_an_account_out_of_credits_is_paused_the_operator_told_and_others_keep_working(tmp_path):
    config = SandboxConfig(
        generation_seconds=0.2,
        accounts=[SandboxAccount("broke@sandbox.local", credits=0), SandboxAccount("rich@sandbox.local")],
    )
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox, max_jobs_in_flight_per_user=10), notifier) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(4)]
            done = await eventually(lambda: all_delivered(core, [j.id for j in jobs]), timeout=20)
    assert all(j.outcome is JobState.COMPLETED and j.account == "rich@sandbox.local" for j in done)
    assert any("broke@sandbox.local" in a and "out of credits" in a for a in notifier.alerts)
    assert notifier.failures == []


async def test_when_every_account_needs_attention_users_are_told_honestly_and_jobs_wait(tmp_path):
    config = SandboxConfig(
        generation_seconds=0.2, accounts=[SandboxAccount("held@sandbox.local", needs_attention=True)]
    )
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox), notifier) as core:
            job = await core.service.create_single(requester(), create())
            await eventually(
                lambda: any(p.stage is ProgressStage.WAITING for _, p in notifier.progress_events), what="waiting note"
            )
            assert (await core.jobs.get(job.id)).state is JobState.QUEUED
            assert any("needs attention" in a for a in notifier.alerts)
            # The operator fixes the account; the paused account is probed again and the job runs.
            sandbox.config.accounts[0].needs_attention = False
            core.accounts._probe_interval = 0  # probe now rather than in ten minutes
            core.accounts.pause("held@sandbox.local", "needs attention")
            done = await eventually(lambda: all_delivered(core, [job.id]), timeout=10)
    assert done[0].outcome is JobState.COMPLETED
    waiting = [p.note for _, p in notifier.progress_events if p.stage is ProgressStage.WAITING]
    assert "needs attention" in waiting[0] and "stays in the queue" in waiting[0]


async def test_polling_is_batched_per_account_not_per_job(tmp_path):
    accounts = [SandboxAccount("a@sandbox.local", max_jobs=8), SandboxAccount("b@sandbox.local", max_jobs=8)]
    async with running_sandbox(SandboxConfig(generation_seconds=1.0, accounts=accounts)) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, poll_interval=0.25, max_jobs_in_flight_per_user=50)
        async with running_core(settings, notifier) as core:
            jobs = [await core.service.create_single(requester(), create(f"fox {i}")) for i in range(50)]
            await eventually(lambda: all_delivered(core, [j.id for j in jobs]), timeout=60)
    listings = sum(
        1 for method, path in sandbox.request_log if method == "GET" and path.rstrip("/") == "/v2/pixverse/videos"
    )
    single_lookups = sum(
        1 for method, path in sandbox.request_log if method == "GET" and path.startswith("/v2/pixverse/videos/user:")
    )
    # 50 jobs, ~7 waves of 16 at ~1 s each: about 2 accounts × 4 polls/s × 7 s listings, and no per-video polling.
    assert single_lookups == 0
    assert listings < 50 * 4, listings
    counts = notifier.outcome_counts()
    assert len(counts) == 50 and set(counts.values()) == {1}, counts


async def test_a_job_that_never_finishes_times_out_with_a_clear_message(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=30)) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox, job_timeout=0.5), notifier) as core:
            job = await core.service.create_single(requester(), create())
            await eventually(lambda: notifier.settled(job.id), timeout=10)
    [(_, reason)] = notifier.failures
    assert "did not finish this video" in reason


async def test_off_peak_jobs_are_polled_on_their_own_slow_interval(tmp_path):
    async with running_sandbox(SandboxConfig(off_peak_seconds=1.0)) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(tmp_path, sandbox, poll_interval=0.05, off_peak_poll_interval=0.5)
        async with running_core(settings, notifier) as core:
            job = await core.service.create_single(requester(), create(off_peak=True))
            done = await eventually(lambda: all_delivered(core, [job.id]), timeout=15)
    assert done[0].outcome is JobState.COMPLETED and done[0].request.off_peak
    listings = sum(
        1 for method, path in sandbox.request_log if method == "GET" and path.rstrip("/") == "/v2/pixverse/videos"
    )
    # About two polls a second at most, not twenty (poll_interval 0.05).
    assert listings <= 8, listings


async def test_an_upscale_whose_account_is_gone_fails_clearly_and_is_refunded(tmp_path):
    made_on, other = SandboxAccount("gone@sandbox.local"), SandboxAccount("other@sandbox.local", max_jobs=1)
    config = SandboxConfig(generation_seconds=0.2, accounts=[made_on, other])
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        async with running_core(fast_settings(tmp_path, sandbox, quota_per_user="5"), notifier) as core:
            source = await core.service.create_single(requester(), create())
            [done] = await eventually(lambda: all_delivered(core, [source.id]))
            assert done.account == made_on.email
            sandbox.config.accounts.remove(made_on)  # the operator removed it at useapi.net

            upscale = await core.service.press(requester(), source.id, ResultAction.UPSCALE)
            [failed] = await eventually(lambda: all_delivered(core, [upscale.id]))
            [quota, _] = await core.quotas.status(requester().user)
    assert failed.outcome is JobState.FAILED
    [(job_id, reason)] = notifier.failures
    assert job_id == upscale.id
    assert "account this bot no longer uses" in reason and "Nothing was charged" in reason
    assert sandbox.count("POST", "/v2/pixverse/videos/upscale") == 0
    assert (quota.used, quota.reserved) == (1, 0)  # the source only: the upscale was refunded


async def test_an_arrival_while_every_slot_is_taken_costs_no_submission_reads(tmp_path):
    """In a busy bot every accepted job wakes the scheduler. With every slot taken nothing
    can go, so the pass reads none of the fair order, and the upkeep (lost submissions,
    stale jobs) waits for its own schedule: it only looks whether anyone waits, at the
    off-peak jobs (which need no slot) and at the places to retell."""
    config = SandboxConfig(generation_seconds=3600, accounts=[SandboxAccount("solo@sandbox.local", max_jobs=1)])
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox, scheduler_interval=600)
        async with running_core(settings, RecordingNotifier(), start=False) as core:
            await core.service.create_single(requester("first"), create("a fox"))
            assert await core.scheduler.submit_ready() == 1  # the one slot is taken now
            read: Counter[str] = Counter()
            for name in (
                "claimable",
                "queued_slice",
                "count_in_flight_by_user",
                "queued_users",
                "queued_users_named",
                "next_queued",
                "queued_off_peak",
                "fair_slice",
            ):
                real = getattr(core.jobs, name)

                def counted(*args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
                    read[_name] += 1
                    return _real(*args, **kwargs)

                setattr(core.jobs, name, counted)

            waiting = await core.service.create_single(requester("second"), create("an owl"))
            assert await core.scheduler.submit_ready() == 0
            assert (await core.jobs.get(waiting.id)).state is JobState.QUEUED
            assert read["queued_users"] == 1  # whether anyone waits, nothing more of the fair order
            assert read["count_in_flight_by_user"] == read["queued_users_named"] == read["next_queued"] == 0
            assert read["claimable"] == read["queued_slice"] == 0  # the upkeep is not due
            assert read["fair_slice"] >= 1  # the newcomer moved places: they are retold
