"""telegram_overhead: /create_single acknowledgements per second through the whole stack vs aiogram's floor.

Both sides run the real aiogram `Bot` and `Dispatcher` long-polling the same fake Bot API
server (tests/fakes/telegram_api.py) on loopback, in this process:

- floor: a bare echo bot whose only handler replies to /create_single with sendMessage;
- ours: the project's Telegram adapter (`running_telegram`) on a started core (SQLite,
  quota, moderation, scheduler, tracker) whose upstream is the sandbox, with production
  intervals. Its acknowledgement is the "⏳ Queued" status message replying to the command.

A burst of `UPDATES` commands from `USERS` users is enqueued at once (after a warm-up);
the time runs from the first update enqueued to the last acknowledgement the fake
records. Rounds alternate floor and ours; each side keeps its best round (the least
disturbed by the machine). Ratio = our time per update / the floor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.filters import Command
from aiogram.types import Message
from pydantic import SecretStr

from benchmarks.common import Metric, Outcome, Skipped, scratch_dir, time_limit
from bot.bootstrap import Core, freeze_startup_heap, open_core
from bot.domain import JobState
from bot.sandbox import SandboxConfig, running_sandbox
from bot.settings import Settings
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.harness import fast_settings

# The adapter's entry point, imported only when it is there (see `run`).
RunTelegram = Callable[[Core], contextlib.AbstractAsyncContextManager[object]]

NAME = "telegram_overhead"
UPDATES, QUICK_UPDATES = 200, 100
USERS = 50
# A warm-up as large as one getUpdates batch (aiogram handles a batch concurrently): the
# HTTP connection pools of both sides are then open, and the burst measures handling only.
WARMUP = 100
ROUNDS, QUICK_ROUNDS = 5, 2
TARGET_RATIO = 1.5
ACK_TIMEOUT = 30.0
# How the core words a queued job; the floor answers with the same words.
QUEUED_ACK = "⏳ Queued"
# The core's loops at their production pace: the burst meets the stack as deployed.
PRODUCTION_INTERVALS = (
    "poll_interval",
    "scheduler_interval",
    "capacity_refresh_interval",
    "progress_interval",
    "busy_retry_initial",
    "busy_retry_max",
)


class Acknowledgements:
    """Which user messages the bot has answered (a sendMessage replying to them), and when the last was."""

    def __init__(self, fake: FakeTelegram, expected: list[tuple[int, int]]) -> None:
        self._fake = fake
        self._waiting = set(expected)
        self._scanned = len(fake.calls)
        self.texts: list[str] = []
        self.last_at = 0.0

    def all_seen(self) -> bool:
        """Scan the calls made since the last look (cheap: the fake calls this after every request)."""
        calls = self._fake.calls
        for call in calls[self._scanned :]:
            if call.method != "sendMessage" or not call.ok:
                continue
            replied = call.result.get("reply_to_message")
            key = (call.result["chat"]["id"], replied["message_id"]) if replied else None
            if key in self._waiting:
                self._waiting.discard(key)
                self.texts.append(call.result["text"])
                self.last_at = time.monotonic()
        self._scanned = len(calls)
        return not self._waiting


@dataclass(frozen=True)
class Burst:
    """One burst's wall-clock seconds to the last acknowledgement, this process's CPU seconds, and the answers."""

    seconds: float
    cpu_seconds: float
    texts: list[str]


async def _burst(fake: FakeTelegram, users: list[FakeUser], count: int) -> Burst:
    """Enqueue `count` commands round-robin over `users` and wait until every one is acknowledged."""
    sent = []
    cpu_started = time.process_time()
    started = time.monotonic()
    for number in range(count):
        user = users[number % len(users)]
        message = await fake.user_sends_text(FakeChat.private(user), user, f"/create_single a fox number {number}")
        sent.append((user.id, message["message_id"]))
    acks = Acknowledgements(fake, sent)
    await fake.wait_for(acks.all_seen, timeout=ACK_TIMEOUT, what=f"{count} acknowledgements")
    return Burst(acks.last_at - started, time.process_time() - cpu_started, acks.texts)


async def _measure(fake: FakeTelegram, updates: int) -> Burst:
    users = [FakeUser(id=50_000 + i, first_name=f"User{i}") for i in range(USERS)]
    await _burst(fake, users, WARMUP)
    return await _burst(fake, users, updates)


@contextlib.asynccontextmanager
async def _floor_bot(fake: FakeTelegram) -> AsyncIterator[None]:
    """aiogram's own floor: one handler that answers with sendMessage, polled like the adapter polls."""
    router = Router()

    @router.message(Command("create_single"))
    async def acknowledge(message: Message) -> None:
        await message.reply(f"{QUEUED_ACK}: {message.text}")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    started = asyncio.Event()
    dispatcher.startup.register(started.set)
    bot = Bot(
        fake.token,
        session=AiohttpSession(api=fake.api_server()),
        default=DefaultBotProperties(allow_sending_without_reply=True),
    )
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
    )
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
        freeze_startup_heap()  # as `pixverse-bot run` does once started (see `_our_round`)
        yield
    finally:
        with contextlib.suppress(RuntimeError):  # not started: nothing to stop
            await dispatcher.stop_polling()
        await asyncio.gather(polling, return_exceptions=True)
        await bot.session.close()


async def _floor_round(updates: int) -> Burst:
    async with FakeTelegram() as fake, _floor_bot(fake):
        burst = await _measure(fake, updates)
    assert all(text.startswith(QUEUED_ACK) for text in burst.texts)
    return burst


async def _our_round(updates: int, running_telegram: RunTelegram) -> Burst:
    production: dict[str, Any] = {name: Settings.model_fields[name].default for name in PRODUCTION_INTERVALS}
    config = SandboxConfig(generation_seconds=600)  # nothing finishes during the burst
    with scratch_dir() as tmp:
        async with FakeTelegram() as fake, running_sandbox(config) as sandbox:
            settings = fast_settings(
                tmp,
                sandbox,
                telegram_bot_token=SecretStr(fake.token),
                telegram_api_base=fake.base_url,
                **production,
            )
            async with open_core(settings) as core, running_telegram(core):
                freeze_startup_heap()  # what `pixverse-bot run` does once started
                burst = await _measure(fake, updates)
                # Each acknowledged command is a job the core persisted.
                assert len(await core.jobs.in_states(list(JobState))) == WARMUP + updates
            assert all(text.startswith(QUEUED_ACK) for text in burst.texts), burst.texts[:3]
            assert not fake.spec_violations, fake.spec_violations[:3]
    return burst


async def run(quick: bool) -> Outcome:
    try:
        from adapters.telegram import running_telegram
    except ImportError:
        return Skipped(NAME, "adapter not available")
    updates = QUICK_UPDATES if quick else UPDATES
    floor: list[Burst] = []
    ours: list[Burst] = []
    async with time_limit(55, NAME):
        for _ in range(QUICK_ROUNDS if quick else ROUNDS):
            floor.append(await _floor_round(updates))
            ours.append(await _our_round(updates, running_telegram))
    best_floor = min(floor, key=lambda burst: burst.seconds)
    best_ours = min(ours, key=lambda burst: burst.seconds)
    ratio = best_ours.seconds / best_floor.seconds
    median_ratio = statistics.median(b.seconds for b in ours) / statistics.median(b.seconds for b in floor)
    sides = (("ours", ours), ("floor", floor))
    cpu_ms = {side: 1000 * min(b.cpu_seconds for b in bursts) / updates for side, bursts in sides}
    return [
        Metric(
            name=NAME,
            measured=updates / best_ours.seconds,
            baseline=updates / best_floor.seconds,
            unit="updates/s",
            ratio=ratio,
            target=f"time per update ours / floor ≤ {TARGET_RATIO:g}",
            passed=ratio <= TARGET_RATIO,
            note=(
                f"{updates} /create_single from {USERS} users, best of {len(ours)} rounds "
                f"(median round: {median_ratio:.2f}×); "
                f"CPU per update ours {cpu_ms['ours']:.2f} ms, floor {cpu_ms['floor']:.2f} ms "
                "(fake server and aiogram included in both)"
            ),
        )
    ]
