"""The composition root: every long-lived object is built here, and only here.

`open_core(settings)` yields a started `Core` (storage open, upstream client ready,
loops running) and tears it all down in reverse order on exit. Adapters receive
the pieces they need (the service, the notifier registry, the HTTP app) from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import httpx
from aiohttp import web
from pydantic import SecretStr

from bot.accounts import AccountPool
from bot.admin import AdminService
from bot.cancellation import JobControl
from bot.commands import RequestBuilder
from bot.delivery import Deliverer, DeliveryPolicy
from bot.effects import EffectsCatalogue
from bot.gate import Gatekeeper, RateLimiter
from bot.instances import Instance, new_instance_id, run_alone
from bot.media import VideoIntake, VideoLimits
from bot.moderation.rules import Blocklist, load_default_blocklist
from bot.moderation.service import ExternalModeration, FilterMode, GroupSettings, ModerationService
from bot.outcomes import OutcomeSettler
from bot.periodic import PeriodicTask
from bot.ports import BlobStore, Coordinator, JobAdmission, JobStore, UpdateLog
from bot.pricing import Pricing
from bot.progress import Notifiers, ProgressReporter
from bot.quota import QuotaPolicy, QuotaService, QuotaUnit, QuotaWindow
from bot.retention import Pruner, RetentionPolicy
from bot.scheduler import Scheduler
from bot.service import GenerationService
from bot.settings import Settings
from bot.tracker import Tracker
from bot.upstream.client import PixVerseClient
from bot.upstream.models import EffectPage, UploadedFile, VoiceList
from bot.voices import VoiceCatalogue
from bot.webhooks import CallbackHandler, CallbackSigner, build_http_app
from storage import (
    SqlBlobStore,
    SqlGovernanceStore,
    SqlJobAdmission,
    SqlJobStore,
    SqlQuotaStore,
    SqlRetentionStore,
    open_storage,
)
from storage.coordination import coordinator_for
from storage.instances import SqlInstanceRegistry
from storage.sql import SQLITE
from storage.updates import SqlUpdateLog

log = logging.getLogger(__name__)

WEBHOOK_SECRET_KEY = "webhook_secret"
# The secret Telegram sends back with each webhook update: one for every process behind
# the load balancer (each sets the webhook with it), so it is kept in the database.
TELEGRAM_WEBHOOK_SECRET_KEY = "telegram_webhook_secret"

# Process-wide locks (`Coordinator.hold`) of the work one process does for all.
# Sending queued jobs: the sender counts each account's free slots down as it sends
# (bot/accounts.py), which only one sender can do right, and the fair order is one order.
SCHEDULER_LOCK = "scheduler"
# Deleting data past its retention: whole-table deletes, pointless to run twice at once.
RETENTION_LOCK = "retention"
# Announcements (`Coordinator.signal`): an upstream slot was freed, or a job was queued,
# in some process: the one that sends wakes and re-reads capacity.
SLOTS_TOPIC = "slots"
QUEUE_TOPIC = "queue"

# An in-process sandbox's off-peak video takes this many times as long as a normal one
# (20 s at the default 5 s): half of it waiting for its hours (QUEUED), then generating.
SANDBOX_OFF_PEAK_SLOWDOWN = 4


@dataclass
class Core:
    settings: Settings
    jobs: JobStore
    admission: JobAdmission
    blobs: BlobStore
    upstream: PixVerseClient
    accounts: AccountPool
    notifiers: Notifiers
    progress: ProgressReporter
    service: GenerationService
    control: JobControl
    admin: AdminService
    gate: Gatekeeper
    quotas: QuotaService
    moderation: ModerationService
    scheduler: Scheduler
    tracker: Tracker
    deliverer: Deliverer
    pruner: Pruner
    signer: CallbackSigner
    http_app: web.Application
    instance: Instance
    coordinator: Coordinator
    updates: UpdateLog
    telegram_webhook_secret: str
    alone: bool = True  # SQLite: the only process on its database
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def start_loops(self) -> None:
        """Resume from the database (orphan reservations and images released), then run the
        scheduler, the tracker, delivery retries and (unless everything is kept for ever)
        the deletion of data past its retention.

        With several processes on one database (PostgreSQL) every one runs these; each
        tracks and delivers the jobs it owns (`bot.instances`), and the work one process
        does for all (sending, pruning) runs under a process-wide lock."""
        # First: its lease makes the jobs it moves its own (and another process's jobs,
        # once that one is gone, can be taken over by this one).
        await self.instance.join(alone=self.alone)
        # Safe while other processes run: an orphan reservation has no job row, and a job
        # is stored in the same unit as its reservation (and its pictures).
        released = await self.quotas.release_orphans()
        if released:
            log.info("released %d quota reservations left by an interrupted request", released)
        swept = await self.blobs.delete_unreferenced()
        if swept:
            log.info("deleted %d stored images that no waiting job needs any more", swept)
        await self.scheduler.recover()
        await self.deliverer.deliver_pending()
        self._tasks = [
            asyncio.create_task(
                PeriodicTask(self._heartbeat, self.instance.heartbeat_interval, "heartbeat").run(), name="heartbeat"
            ),
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(self.tracker.run(), name="tracker"),
            asyncio.create_task(
                PeriodicTask(
                    self.deliverer.deliver_pending, self.settings.effective_poll_interval, "delivery retry"
                ).run(),
                name="delivery-retry",
            ),
        ]
        if not self.pruner.policy.keeps_forever:
            pruning = PeriodicTask(
                run_alone(self.coordinator, RETENTION_LOCK, self.pruner.prune),
                self.settings.retention_prune_interval,
                "retention",
            )
            self._tasks.append(asyncio.create_task(pruning.run(), name="retention"))

    async def stop_loops(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.deliverer.drain()
        await self.progress.drain()
        self._tasks = []
        # Gone at once rather than when the lease runs out: the others take over now.
        await self.instance.leave()

    async def _heartbeat(self) -> None:
        await self.instance.heartbeat()
        # The session that holds this process's locks and hears announcements: a lost one
        # is opened again.
        await self.coordinator.check()


@contextlib.asynccontextmanager
async def upstream_endpoint(settings: Settings, *, serves_chats: bool = False) -> AsyncIterator[tuple[str, SecretStr]]:
    """The upstream to talk to: the configured one, or an in-process sandbox when there is no token.

    `serves_chats`: real chat members would get the sandbox's synthetic videos, which is
    worth a WARNING (`run` only allows it with BOT_SANDBOX=true).
    """
    if not settings.uses_sandbox:
        assert settings.useapi_api_token is not None
        yield settings.useapi_base_url, settings.useapi_api_token
        return
    from bot.sandbox import SandboxConfig, running_sandbox
    from bot.sandbox.config import numbers_after_earlier_runs

    config = SandboxConfig(
        token=secrets.token_urlsafe(16),
        generation_seconds=settings.sandbox_generation_seconds,
        off_peak_seconds=SANDBOX_OFF_PEAK_SLOWDOWN * settings.sandbox_generation_seconds,
        catalogue=settings.catalogue(),
        first_video_number=numbers_after_earlier_runs(),
    )
    async with running_sandbox(config) as sandbox:
        if serves_chats:
            log.warning(
                "BOT_SANDBOX=true: chat members get synthetic videos from the built-in sandbox at %s, "
                "not PixVerse videos (their captions say so)",
                sandbox.base_url,
            )
        else:
            log.info("using the built-in sandbox at %s (videos are synthetic)", sandbox.base_url)
        yield sandbox.base_url, SecretStr(config.token)


@contextlib.asynccontextmanager
async def open_core(settings: Settings, *, start: bool = True, serves_chats: bool = False) -> AsyncIterator[Core]:
    """Build and (unless start=False) start the core; everything is closed on exit.

    `serves_chats`: the core answers chat members (`run`), not the operator's own terminal:
    sandbox videos are then marked synthetic in their captions.
    """
    async with contextlib.AsyncExitStack() as stack:
        db = await open_storage(settings.bot_database)
        stack.push_async_callback(db.close)
        coordinator = coordinator_for(db)
        await coordinator.start()
        stack.push_async_callback(coordinator.close)
        instance = Instance(SqlInstanceRegistry(db), new_instance_id(), lease=settings.instance_lease)
        jobs, blobs = SqlJobStore(db, owner=instance.id), SqlBlobStore(db)
        catalogue = settings.catalogue()
        base_url, token = await stack.enter_async_context(upstream_endpoint(settings, serves_chats=serves_chats))
        upstream = await stack.enter_async_context(
            PixVerseClient(base_url, token, timeout=settings.useapi_timeout_seconds, catalogue=catalogue)
        )
        secret = settings.bot_webhook_secret
        secret_bytes = (
            secret.get_secret_value()
            if secret
            else await db.get_or_create_meta(WEBHOOK_SECRET_KEY, lambda: secrets.token_hex(32))
        ).encode()
        signer = CallbackSigner(secret_bytes, settings.bot_public_url)

        notifiers = Notifiers()
        progress = ProgressReporter(notifiers, jobs, interval=settings.progress_interval)
        accounts = AccountPool(
            upstream,
            only=settings.useapi_accounts,
            refresh_interval=settings.capacity_refresh_interval,
            busy_backoff_initial=settings.busy_retry_initial,
            busy_backoff_max=settings.busy_retry_max,
        )
        governance = SqlGovernanceStore(db)
        quotas = QuotaService(
            SqlQuotaStore(db),
            governance,
            Pricing(catalogue),
            QuotaPolicy(
                unit=QuotaUnit(settings.quota_unit),
                window=QuotaWindow(settings.quota_window),
                timezone=ZoneInfo(settings.quota_timezone),
                per_user=settings.quota_limit(settings.quota_per_user),
                per_group=settings.quota_limit(settings.quota_per_group),
                operators=settings.operator_keys,
            ),
            coordinator=coordinator,
        )
        external = None
        if settings.moderation_url:
            moderation_http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=settings.moderation_timeout_seconds)
            )
            external = ExternalModeration(
                moderation_http,
                settings.moderation_url,
                settings.moderation_api_key,
                model=settings.moderation_model,
                fail_open=settings.moderation_fail_open,
            )
        global_list = (
            Blocklist.from_lines(
                settings.blocklist_file.read_text("utf-8").splitlines(), allow_regex=True, source="global"
            )
            if settings.blocklist_file
            else load_default_blocklist()
        )
        moderation = ModerationService(
            governance,
            global_list,
            defaults=GroupSettings(
                filter_mode=FilterMode(settings.filter_mode),
                strike_limit=settings.strike_limit,
                strike_window_hours=settings.strike_window_hours,
                mute_minutes=settings.mute_minutes,
                admins_exempt=settings.admins_exempt,
            ),
            operators=settings.operator_keys,
            external=external,
            coordinator=coordinator,
        )

        retention = RetentionPolicy(settings.retention_days)
        pruner = Pruner(
            SqlRetentionStore(db),
            retention,
            quota_policy=quotas.policy,
            longest_strike_window=moderation.longest_strike_window,
        )

        deliverer = Deliverer(
            jobs=jobs,
            upstream=upstream,
            notifiers=notifiers,
            progress=progress,
            on_outcome=OutcomeSettler(quotas, moderation, blobs).settle,
            policy=DeliveryPolicy(
                max_concurrent=settings.max_concurrent_deliveries,
                retry_initial=settings.delivery_retry_initial,
                retry_max=settings.delivery_retry_max,
                max_attempts=settings.delivery_max_attempts,
            ),
            synthetic=serves_chats and settings.uses_sandbox,
            catalogue=catalogue,
        )
        on_finished = deliverer.schedule
        # Built before the scheduler and the tracker, which call it; it calls them back once built.
        control = JobControl(
            jobs=jobs,
            upstream=upstream,
            accounts=accounts,
            on_finished=on_finished,
            on_slot_freed=lambda: slot_freed(),
            poll_soon=lambda job_id: tracker.poll_soon(job_id),
        )
        scheduler = Scheduler(
            jobs=jobs,
            blobs=blobs,
            upstream=upstream,
            accounts=accounts,
            progress=progress,
            on_finished=on_finished,
            reply_url_for=signer.reply_url,
            max_in_flight_per_user=settings.max_jobs_in_flight_per_user,
            busy_retry_initial=settings.busy_retry_initial,
            busy_retry_max=settings.busy_retry_max,
            queue_timeout=settings.queue_timeout,
            interval=settings.scheduler_interval,
            unknown_outcome_grace=settings.unknown_outcome_grace,
            catalogue=catalogue,
            may_send=lambda: coordinator.hold(SCHEDULER_LOCK),
            cancel_requested=control.settle_requested,
        )

        def capacity_changed() -> None:
            # A finished job frees an upstream slot: re-read capacity and look at the queue.
            accounts.invalidate()
            scheduler.wake()

        def slot_freed() -> None:
            capacity_changed()
            coordinator.signal(SLOTS_TOPIC)  # the process that sends may be another one

        def job_queued() -> None:
            scheduler.job_queued()
            coordinator.signal(QUEUE_TOPIC)

        coordinator.subscribe(SLOTS_TOPIC, capacity_changed)
        # Another process's arrival moves places too (the sending process retells them). A
        # process hears its own announcement as well; counting an arrival twice only makes
        # the next pass retell places a little sooner.
        coordinator.subscribe(QUEUE_TOPIC, scheduler.job_queued)

        tracker = Tracker(
            jobs=jobs,
            upstream=upstream,
            progress=progress,
            on_finished=on_finished,
            on_slot_freed=slot_freed,
            poll_interval=settings.effective_poll_interval,
            off_peak_poll_interval=settings.effective_off_peak_poll_interval,
            webhook_poll_interval=settings.webhook_safety_poll_interval,
            webhooks=signer.enabled,
            job_timeout=settings.job_timeout,
            off_peak_job_timeout=settings.off_peak_job_timeout,
            cancel_requested=control.settle_requested,
        )

        async def any_account() -> str | None:
            # For what is the same on every account (effects, voices, an uploaded file is
            # reachable from all); with several, the upstream needs one named.
            await accounts.refresh()
            emails = [slot.email for slot in accounts.accounts]
            return emails[0] if emails else None

        async def fetch_effects() -> EffectPage:
            return await upstream.effects(email=await any_account())

        async def fetch_voices() -> VoiceList:
            return await upstream.voices(email=await any_account())

        async def upload(data: bytes, content_type: str) -> UploadedFile:
            return await upstream.upload_file(data, content_type, email=await any_account())

        admission = SqlJobAdmission(db)
        service = GenerationService(
            jobs=jobs,
            admission=admission,
            builder=RequestBuilder(settings, catalogue),
            progress=progress,
            moderation=moderation,
            quotas=quotas,
            on_queued=job_queued,
            max_image_bytes=settings.max_image_bytes,
            max_stored_image_bytes=settings.max_stored_image_bytes,
            admins_may_press_buttons=settings.admins_may_press_buttons,
            retention=retention,
            max_off_peak_jobs_per_user=settings.max_off_peak_jobs_per_user,
            catalogue=catalogue,
            effects=EffectsCatalogue(fetch_effects, price=quotas.price_in_unit),
            voices=VoiceCatalogue(fetch_voices, refresh_seconds=settings.voices_cache_seconds),
            videos=VideoIntake(upload, VideoLimits(settings.max_video_bytes, settings.max_video_seconds)),
        )
        admin = AdminService(
            quotas=quotas,
            moderation=moderation,
            upstream=upstream,
            operators=settings.operator_keys,
            retention=retention,
        )
        gate = Gatekeeper(moderation, RateLimiter(settings.rate_limit_commands, settings.rate_limit_seconds))
        http_app = build_http_app(CallbackHandler(signer=signer, jobs=jobs, tracker=tracker))
        core = Core(
            settings=settings,
            jobs=jobs,
            admission=admission,
            blobs=blobs,
            upstream=upstream,
            accounts=accounts,
            notifiers=notifiers,
            progress=progress,
            service=service,
            control=control,
            admin=admin,
            gate=gate,
            quotas=quotas,
            moderation=moderation,
            scheduler=scheduler,
            tracker=tracker,
            deliverer=deliverer,
            pruner=pruner,
            signer=signer,
            http_app=http_app,
            instance=instance,
            coordinator=coordinator,
            updates=SqlUpdateLog(db),
            telegram_webhook_secret=await db.get_or_create_meta(
                TELEGRAM_WEBHOOK_SECRET_KEY, lambda: secrets.token_urlsafe(32)
            ),
            alone=db.dialect is SQLITE,
        )
        if start:
            await core.start_loops()
            stack.push_async_callback(core.stop_loops)
        yield core


def freeze_startup_heap() -> None:
    """Collect once, then leave everything alive now out of all later garbage collections.

    Call it when startup is over (modules imported, core and adapters built). A running
    bot keeps these objects for life, and hundreds of thousands of them (aiogram's and
    discord.py's models above all) made each full collection take about 180 ms, a pause
    that landed at random in the middle of a burst of commands. Frozen, they are still
    freed when their last reference goes; only collection skips them.
    """
    gc.collect()
    gc.freeze()


# Allocations (less frees) between two collections of the youngest generation; Python's
# default is 700. A command allocates a few thousand objects (an update's models, a job,
# its messages), nearly all freed by reference counting when it is answered, so at 700
# the collector ran several times per command, and every tenth time over the middle
# generation too: about 0.19 ms of CPU per command in a burst (a tenth of the bot's).
# At 10 000 it runs once every few commands and the older generations a fourteenth as
# often: a quarter of that CPU. Memory does not grow by it: the young objects a
# collection finds are the few cyclic ones among at most this many (RSS measured the same).
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Set the collector for a long-running server's steady stream of short-lived objects
    (see YOUNG_COLLECTION_THRESHOLD). `pixverse-bot run` calls it once startup is over."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


@contextlib.asynccontextmanager
async def serving_http(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Run the bot's HTTP server; yields its base URL (port 0 picks a free port)."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound = runner.addresses[0][1]  # the real port when 0 was asked
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
