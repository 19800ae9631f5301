"""Upstream chaos from the sandbox's fault injection: 429 storms, 5xx bursts, slow and dropped
responses, an account running out of credits and another needing attention mid-run.
Jobs queue, retry, move to healthy accounts or fail honestly; none is stuck; none is paid twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core

JOBS = 24
HONEST_FAILURE_WORDS = ("PixVerse", "moderator", "queue", "timed out", "did not finish")


async def test_jobs_survive_upstream_chaos_and_are_never_paid_twice(tmp_path):
    accounts = [
        SandboxAccount("storm@sandbox.local", max_jobs=8, concurrency_limit=1),  # PixVerse's own 429s
        SandboxAccount("broke@sandbox.local", max_jobs=3),
        SandboxAccount("held@sandbox.local", max_jobs=3),
        SandboxAccount("steady@sandbox.local", max_jobs=3),
    ]
    config = SandboxConfig(
        generation_seconds=0.4, accounts=accounts, error_rate_5xx=0.3, drop_write_responses=3, random_seed=7
    )
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(
            tmp_path,
            sandbox,
            quota_per_user="100",
            max_jobs_in_flight_per_user=8,
            useapi_timeout_seconds=1.0,
            unknown_outcome_grace=0.3,
            job_timeout=40,
        )
        async with running_core(settings, notifier) as core:
            jobs = []
            for i in range(JOBS):
                prompt = "a spicy fox" if i == 5 else f"fox {i}"  # one refusal by PixVerse mid-run
                jobs.append(
                    await core.service.create_single(
                        requester(f"user{i % 4}"), parse_command(CreateSingle, prompt=prompt)
                    )
                )

            # Phase 1: slow answers (beyond the client's timeout) on top of 5xx and dropped responses.
            sandbox.config.response_delay = 1.5
            await asyncio.sleep(1.0)
            sandbox.config.response_delay = 0.0
            # Phase 2: one account runs dry, another needs the operator.
            await eventually(lambda: len(notifier.outcome_counts()) >= 4, timeout=30, what="first deliveries")
            sandbox.config.accounts[1].credits = 0
            sandbox.config.accounts[2].needs_attention = True
            # Phase 3: the 5xx burst ends; everything must finish.
            await asyncio.sleep(0.5)
            sandbox.config.error_rate_5xx = 0.0

            async def all_settled():
                states = [(await core.jobs.get(j.id)).state for j in jobs]
                return all(s is JobState.DELIVERED for s in states)

            await eventually(all_settled, timeout=60, what="every job delivered")
            final = [await core.jobs.get(j.id) for j in jobs]
            usage, _ = await core.quotas.status(requester("user0").user)
            ledgers = [await core.quotas.status(requester(f"user{u}").user) for u in range(4)]

    # Delivered exactly once each.
    assert sorted(notifier.outcome_counts().values()) == [1] * JOBS
    # Paid at most once: one upstream video per job at most (lost responses were looked up, not resent).
    per_job = Counter(v.reply_ref for v in sandbox.videos.values())
    assert max(per_job.values()) == 1, per_job
    completed = [j for j in final if j.outcome is JobState.COMPLETED]
    assert len(completed) >= JOBS - 2
    for job in final:
        if job.outcome is not JobState.COMPLETED:
            assert any(word in (job.failure or "") for word in HONEST_FAILURE_WORDS), job.failure
    # Quotas: committed once per video, nothing left reserved.
    assert sum(status.used for status, _ in ledgers) == len(completed)
    assert sum(status.reserved for status, _ in ledgers) == 0
    # The operator heard about both accounts; the broken ones took no new work after.
    assert any("broke@sandbox.local" in a and "out of credits" in a for a in notifier.alerts)
    assert any("held@sandbox.local" in a and "needs attention" in a for a in notifier.alerts)
