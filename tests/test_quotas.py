"""Quotas: atomic reservations, refunds on every failure path, windows, group pools, credits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.commands import CreateSingle, parse_command
from bot.domain import ChatRef, Job, JobState, Platform, Requester, ResultAction, UserRef, new_job_id
from bot.pricing import Pricing
from bot.quota import QuotaExceeded, QuotaPolicy, QuotaService, QuotaUnit, QuotaWindow
from bot.sandbox import SandboxConfig, running_sandbox
from storage import SqlGovernanceStore, SqlJobAdmission, SqlQuotaStore, open_database
from tests.harness import RecordingNotifier, admit_job, eventually, fast_settings, requester, running_core


def command(prompt: str = "a fox", **options):
    return parse_command(CreateSingle, prompt=prompt, **options)


def in_group(user_id: str, group: str = "g1") -> Requester:
    return Requester(user=UserRef(Platform.CONSOLE, user_id, user_id), chat=ChatRef(Platform.CONSOLE, group))


async def delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job.state is JobState.DELIVERED else None


@pytest.fixture
async def sandbox():
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sb:
        yield sb


async def test_many_concurrent_requests_for_the_last_unit_exactly_one_is_accepted(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="1")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        results = await asyncio.gather(
            *(core.service.create_single(requester("racer"), command(f"fox {i}")) for i in range(20)),
            return_exceptions=True,
        )
        accepted = [r for r in results if isinstance(r, Job)]
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert len(accepted) == 1 and len(refused) == 19
        assert len(await core.jobs.in_states([JobState.QUEUED])) == 1


async def test_two_processes_reserving_the_last_unit_cannot_both_win(tmp_path):
    path = tmp_path / "shared.sqlite3"
    first, second = await open_database(path), await open_database(path)
    try:
        admissions = [SqlJobAdmission(first), SqlJobAdmission(second)]
        from bot.domain import GenerationRequest, JobKind
        from bot.ports import QuotaCharge, QuotaReservation

        reservation = QuotaReservation("telegram:1", None, 1, (QuotaCharge("user", "telegram:1", 1, None),))

        def job(i: int) -> Job:
            return Job(id=f"job{i}", requester=requester("1"), request=GenerationRequest(kind=JobKind.CREATE))

        results = await asyncio.gather(*(admissions[i % 2].admit(job(i), reservation) for i in range(10)))
        assert sum(r is None for r in results) == 1
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    ("prompt", "overrides", "outcome"),
    [
        ("a fox", {}, JobState.COMPLETED),
        ("a forbidden fox", {}, JobState.MODERATED),  # 422 at create
        ("a spicy fox", {}, JobState.MODERATED),  # MODERATED later
        ("make it explode", {}, JobState.FAILED),
        ("a slow fox", {"job_timeout": 0.05}, JobState.FAILED),  # timed out
    ],
)
async def test_success_commits_and_every_failure_path_refunds(tmp_path, sandbox, prompt, overrides, outcome):
    if "job_timeout" in overrides:
        sandbox.config.generation_seconds = 30
    settings = fast_settings(tmp_path, sandbox, quota_per_user="5", **overrides)
    async with running_core(settings, RecordingNotifier()) as core:
        job = await core.service.create_single(requester("payer"), command(prompt))
        mine, _ = await core.quotas.status(requester("payer").user)
        assert mine.reserved == 1
        done = await eventually(lambda: delivered(core, job.id), timeout=15)
        mine, _ = await core.quotas.status(requester("payer").user)
    assert done.outcome is outcome
    assert mine.reserved == 0
    assert mine.used == (1 if outcome is JobState.COMPLETED else 0)
    assert mine.left == (4 if outcome is JobState.COMPLETED else 5)


async def test_queue_timeout_refunds(tmp_path, sandbox):
    sandbox.config.accounts[0].needs_attention = True
    sandbox.config.accounts[1].needs_attention = True
    settings = fast_settings(tmp_path, sandbox, quota_per_user="5", queue_timeout=0.3)
    async with running_core(settings, RecordingNotifier()) as core:
        job = await core.service.create_single(requester("payer"), command())
        done = await eventually(lambda: delivered(core, job.id), timeout=10)
        mine, _ = await core.quotas.status(requester("payer").user)
    assert done.outcome is JobState.FAILED and "nothing was charged" in done.failure
    assert (mine.used, mine.reserved) == (0, 0)


async def test_button_actions_are_charged_like_any_job(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="2")
    async with running_core(settings, RecordingNotifier()) as core:
        job = await core.service.create_single(requester("me"), command())
        await eventually(lambda: delivered(core, job.id))
        reroll = await core.service.press(requester("me"), job.id, ResultAction.REROLL)
        with pytest.raises(QuotaExceeded, match="Your daily quota of 2 videos"):
            await core.service.press(requester("me"), job.id, ResultAction.UPSCALE)
        await eventually(lambda: delivered(core, reroll.id))
        text = await core.admin.quota(requester("me"))
    assert text.startswith("Your quota: 0 of 2 videos left (2 used)")


async def test_group_pool_and_member_limit_must_both_fit(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="2", quota_per_group="3")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        await core.service.create_single(in_group("ann"), command())
        await core.service.create_single(in_group("ann"), command())
        with pytest.raises(QuotaExceeded, match="Your daily quota"):
            await core.service.create_single(in_group("ann"), command())
        await core.service.create_single(in_group("bob"), command())
        with pytest.raises(QuotaExceeded, match="This group's shared daily quota of 3"):
            await core.service.create_single(in_group("bob"), command())
        # Bob's own quota still has room outside the group.
        await core.service.create_single(requester("bob"), command())
        _, pool = await core.quotas.status(in_group("bob").user, in_group("bob").chat.group_key)
    assert pool.limit == 3 and pool.reserved == 3 and pool.left == 0


async def test_credit_quotas_use_the_pricing_table(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_unit="credits", quota_per_user="50")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        await core.service.create_single(requester(), command(model="v5.5", quality="540p", duration=5))  # 30
        with pytest.raises(
            QuotaExceeded, match="quota of 50 credits does not have room for this request \\(30 credits\\)"
        ):
            await core.service.create_single(requester(), command(model="v5.5", quality="540p", duration=5))
        await core.service.create_single(requester(), command(model="v5.5", quality="360p", duration=5))  # 20


async def test_operators_are_unlimited_and_overrides_win(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="0", bot_admin_ids=["console:boss"])
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        await core.service.create_single(requester("boss"), command())
        with pytest.raises(QuotaExceeded):
            await core.service.create_single(requester("pleb"), command())
        await core.admin.set_quota(requester("boss"), requester("pleb").user, "1")
        await core.service.create_single(requester("pleb"), command())
        await core.admin.reset_quota(requester("boss"), requester("pleb").user)
        await core.service.create_single(requester("pleb"), command())


async def test_an_orphan_reservation_is_released_at_start(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, quota_per_user="1")
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        from bot.ports import QuotaReservation
        from storage.governance import record_reservation

        # A reservation whose job was never written: left by a version that reserved and
        # inserted in two steps and died in between (admission now does both in one unit).
        orphan = QuotaReservation(requester("u").user.key, None, 1, ())
        await core.jobs._db.transaction(lambda transaction: record_reservation(transaction, new_job_id(), orphan))
        with pytest.raises(QuotaExceeded):
            await core.service.create_single(requester("u"), command())
    async with running_core(settings, RecordingNotifier()) as core:
        await core.service.create_single(requester("u"), command())


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("window", "start", "next_window"),
    [
        (QuotaWindow.DAILY, datetime(2026, 3, 28, 22, 30, tzinfo=UTC), timedelta(hours=1)),  # 23:30 → 00:30 Berlin
        (QuotaWindow.WEEKLY, datetime(2026, 3, 29, 12, tzinfo=UTC), timedelta(days=1)),  # Sunday → Monday
        (QuotaWindow.MONTHLY, datetime(2026, 3, 31, 12, tzinfo=UTC), timedelta(days=1)),  # 31st → 1st
    ],
)
async def test_windows_reset_at_local_midnight(tmp_path, window, start, next_window):
    clock = FakeClock(start)
    async with await open_database(tmp_path / "q.sqlite3") as db:
        policy = QuotaPolicy(
            unit=QuotaUnit.VIDEOS,
            window=window,
            timezone=ZoneInfo("Europe/Berlin"),
            per_user=1,
            per_group=None,
            operators=frozenset(),
        )
        quotas = QuotaService(SqlQuotaStore(db), SqlGovernanceStore(db), Pricing.load(), policy, clock=clock)
        admission = SqlJobAdmission(db)
        from bot.domain import GenerationRequest, JobKind

        def job():
            return Job(id=new_job_id(), requester=requester("w"), request=GenerationRequest(kind=JobKind.CREATE))

        await admit_job(quotas, admission, job())
        with pytest.raises(QuotaExceeded, match="It resets"):
            await admit_job(quotas, admission, job())
        clock.now = start + next_window
        await admit_job(quotas, admission, job())
        status, _ = await quotas.status(requester("w").user)
    assert status.resets_at.astimezone(ZoneInfo("Europe/Berlin")).hour == 0


async def test_the_operator_can_replace_the_prices_in_the_models_file(tmp_path, sandbox):
    # Prices live with each model in the catalogue (MODELS_FILE); PRICING_FILE is gone.
    table = json.loads((Path(__file__).parents[1] / "bot/data/models.json").read_text("utf-8"))
    table["models"]["v5.5"]["prices"] = {"create": {q: {"10": 7} for q in ("360p", "540p", "720p", "1080p")}}
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps(table), "utf-8")
    settings = fast_settings(tmp_path, sandbox, quota_unit="credits", quota_per_user="14", models_file=models_file)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        for _ in range(2):
            await core.service.create_single(requester(), command(model="v5.5", quality="540p"))
        with pytest.raises(
            QuotaExceeded, match="quota of 14 credits does not have room for this request \\(7 credits\\)"
        ):
            await core.service.create_single(requester(), command(model="v5.5", quality="540p"))


def test_an_old_pricing_file_setting_stops_the_start_saying_where_prices_went(tmp_path):
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="PRICING_FILE: .*prices now come with each model.*MODELS_FILE"):
        load_settings(_env_file=None, pricing_file=tmp_path / "prices.json")
