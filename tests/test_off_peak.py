"""Off-peak jobs: useapi.net's scheduler does not track them (post-pixverse-videos-create-v4.md),
so they hold no account slot and do not count towards MAX_JOBS_IN_FLIGHT_PER_USER; they have
their own cap, MAX_OFF_PEAK_JOBS_PER_USER, checked at accept."""

from __future__ import annotations

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import RUNNING_STATES, JobState
from bot.errors import TooManyOffPeakJobs
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from bot.sandbox.videos import VideoPhase
from bot.settings import load_settings
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core

SOLO = "solo@sandbox.local"


def create(prompt: str, **options):
    return parse_command(CreateSingle, prompt=prompt, **options)


async def delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job is not None and job.state is JobState.DELIVERED else None


async def test_off_peak_jobs_neither_hold_an_account_slot_nor_block_their_user(tmp_path):
    # One account with room for one job; the off-peak ones wait a minute for their hours.
    config = SandboxConfig(accounts=[SandboxAccount(SOLO, max_jobs=1)], generation_seconds=0.3, off_peak_seconds=120)
    async with running_sandbox(config) as sandbox:
        notifier = RecordingNotifier()
        # The default per-user cap (2); capacity is read once, so the pool's own count decides.
        settings = fast_settings(tmp_path, sandbox, off_peak_poll_interval=0.1, capacity_refresh_interval=3600)
        assert settings.max_jobs_in_flight_per_user == 2
        async with running_core(settings, notifier) as core:
            night = [await core.service.create_single(requester(), create(f"night {i}", off_peak=True)) for i in (1, 2)]
            await eventually(
                lambda: sum(v.phase is VideoPhase.QUEUED and v.off_peak for v in sandbox.videos.values()) == 2,
                what="both off-peak jobs sent and waiting for their hours",
            )
            [slot] = core.accounts.accounts
            free_while_waiting = slot.available
            day = await core.service.create_single(requester(), create("day"))
            done = await eventually(lambda: delivered(core, day.id), timeout=10, what="the normal job delivered")
            waiting = [await core.jobs.get(job.id) for job in night]

    assert done.outcome is JobState.COMPLETED and done.account == SOLO
    # The off-peak jobs were sent to the account and still wait there, neither failed nor finished.
    assert [job.state in RUNNING_STATES and job.account == SOLO for job in waiting] == [True, True]
    # Sent, the off-peak jobs left the account's one slot free.
    assert free_while_waiting == 1


async def test_one_off_peak_job_over_the_cap_is_refused_at_once_and_charges_nothing(tmp_path):
    async with running_sandbox(SandboxConfig(generation_seconds=0.2, off_peak_seconds=120)) as sandbox:
        notifier = RecordingNotifier()
        settings = fast_settings(
            tmp_path, sandbox, max_off_peak_jobs_per_user=2, quota_per_user="10", off_peak_poll_interval=0.1
        )
        async with running_core(settings, notifier) as core:
            alice = requester("alice")
            first, _ = [await core.service.create_single(alice, create(f"night {i}", off_peak=True)) for i in (1, 2)]

            with pytest.raises(TooManyOffPeakJobs) as refused:
                await core.service.create_single(alice, create("night 3", off_peak=True))
            # Neither a normal job of hers nor another user's off-peak job is held back.
            day = await core.service.create_single(alice, create("day"))
            other = await core.service.create_single(requester("bob"), create("bob's night", off_peak=True))
            quota, _ = await core.quotas.status(alice.user)
            alice_jobs = await core.service.recent_jobs(alice.user)

            # Once one of hers has arrived, she may ask for another.
            finished = await eventually(lambda: _video_of(core, sandbox, first.id), what="the first one sent")
            sandbox.complete_now(finished)
            await eventually(lambda: delivered(core, first.id), what="the first one delivered")
            again = await core.service.create_single(alice, create("night 4", off_peak=True))

    assert str(refused.value) == (
        "You already have 2 off-peak videos waiting (at most 2 at a time; PixVerse makes them within "
        "about a day). Ask for this one without off-peak, or again once one has arrived."
    )
    assert len(alice_jobs) == 3 and quota.used + quota.reserved == 3  # the refused one: no job, no charge
    assert (day.request.off_peak, other.request.off_peak, again.request.off_peak) == (False, True, True)


async def _video_of(core, sandbox, job_id):
    job = await core.jobs.get(job_id)
    return job.video_id if job is not None and job.video_id in sandbox.videos else None


async def test_in_sandbox_mode_an_off_peak_job_is_picked_up_on_the_short_interval(tmp_path):
    settings = load_settings(
        bot_sandbox=True,
        sandbox_generation_seconds=0.25,  # an off-peak sandbox video: 1 s
        bot_database=tmp_path / "bot.sqlite3",
        console_output_dir=tmp_path / "videos",
        quota_per_user="unlimited",
        _env_file=None,
    )
    assert settings.off_peak_poll_interval == 600  # the real upstream's default is left alone …
    assert settings.effective_off_peak_poll_interval == 1  # … but a sandbox is polled briskly
    notifier = RecordingNotifier()
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), create("night", off_peak=True))
        done = await eventually(lambda: delivered(core, job.id), timeout=15, what="the off-peak job delivered")
    assert done.outcome is JobState.COMPLETED and done.request.off_peak
