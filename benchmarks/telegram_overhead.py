"""telegram_overhead: the bot's CPU per /create_single vs the bare aiogram floor, each in its own process.

The fake Bot API server (tests/fakes/telegram_api.py) and the load generator run in
this process; each bot runs in a process of its own (`benchmarks.child`) and its CPU
time is read from /proc, so neither side's figure contains the fake's work:

- floor: a bare aiogram bot whose only handler replies to /create_single with sendMessage;
- ours: `pixverse-bot run` with production defaults (quota and rate limit on, the
  scheduler, tracker and progress loops at their production pace), its upstream a
  sandbox in this process whose accounts never finish a video during the round. Its
  acknowledgement is the "⏳ Queued" status message replying to the command.

A round starts a fresh process (and fake) for one side, warms it up with `WARMUP`
commands, then sends a burst of `UPDATES` commands at once and reads the CPU time the
process spent until the last acknowledgement. Every command comes from a user of its
own round (two each), so the per-user quota (10 a day) and rate limit (6 per 30 s)
admit all of them, as they would admit ordinary users. Rounds alternate the sides
(floor first, then ours first); each side's median round is reported.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BotProcess, Metric, Outcome, TelegramAcks, pixverse_env, scratch_dir, time_limit
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

NAME = "telegram_overhead"
UPDATES, QUICK_UPDATES = 400, 200
WARMUP = 100
COMMANDS_PER_USER = 2
ROUNDS, QUICK_ROUNDS = 5, 2
TARGET_RATIO, STRETCH_RATIO = 1.5, 1.3
START_TIMEOUT = 60.0
ACK_TIMEOUT = 60.0
QUEUED_ACK = "⏳ Queued"
_user_ids = itertools.count(1_000_000)


@dataclass(frozen=True)
class Round:
    cpu_seconds: float
    wall_seconds: float


async def _send(fake: FakeTelegram, count: int) -> list[tuple[int, int]]:
    """`count` /create_single from fresh users, two each; returns (chat id, message id) of each."""
    sent = []
    users = [FakeUser(id=next(_user_ids), first_name="Bench") for _ in range(-(-count // COMMANDS_PER_USER))]
    for number in range(count):
        user = users[number // COMMANDS_PER_USER]
        message = await fake.user_sends_text(FakeChat.private(user), user, f"/create_single a fox number {number}")
        sent.append((user.id, message["message_id"]))
    return sent


async def _round(side: str, updates: int, workdir: Path) -> Round:
    async with FakeTelegram() as fake:
        if side == "floor":
            bot = BotProcess("aiogram-floor", fake.base_url, fake.token, workdir=workdir)
            async with bot:
                return await _measure(fake, bot, updates)
        config = SandboxConfig(generation_seconds=3600)  # nothing finishes during the round
        async with running_sandbox(config) as sandbox:
            env = pixverse_env(
                workdir / f"bot-{time.monotonic_ns()}.sqlite3",
                sandbox.base_url,
                config.token,
                telegram_bot_token=fake.token,
                telegram_api_base=fake.base_url,
            )
            async with BotProcess("pixverse", env=env, workdir=workdir) as bot:
                result = await _measure(fake, bot, updates)
            assert not fake.spec_violations, fake.spec_violations[:3]
            return result


async def _measure(fake: FakeTelegram, bot: BotProcess, updates: int) -> Round:
    await fake.wait_for(lambda: fake.waiting_polls or not bot.alive(), timeout=START_TIMEOUT, what="getUpdates")
    bot.check_alive()
    acks = TelegramAcks(fake.calls)
    warmup = await _send(fake, WARMUP)
    await fake.wait_for(lambda: acks.all_of(warmup) or not bot.alive(), timeout=ACK_TIMEOUT, what="warm-up acks")
    bot.check_alive()
    cpu_before = bot.cpu_seconds()
    started = time.monotonic()
    burst = await _send(fake, updates)
    await fake.wait_for(lambda: acks.all_of(burst) or not bot.alive(), timeout=ACK_TIMEOUT, what="burst acks")
    cpu = bot.cpu_seconds() - cpu_before
    bot.check_alive()
    refused = [acks.texts[key] for key in burst if not acks.texts[key].startswith(QUEUED_ACK)]
    assert not refused, f"{len(refused)} commands were not queued: {refused[:2]}"
    return Round(cpu, max(acks.at[key] for key in burst) - started)


async def run(quick: bool) -> Outcome:
    updates = QUICK_UPDATES if quick else UPDATES
    rounds = QUICK_ROUNDS if quick else ROUNDS
    measured: dict[str, list[Round]] = {"floor": [], "ours": []}
    with scratch_dir() as tmp:
        async with time_limit(60 + rounds * 40, NAME):
            for number in range(rounds):
                order = ("floor", "ours") if number % 2 == 0 else ("ours", "floor")
                for side in order:
                    measured[side].append(await _round(side, updates, tmp))

    def per_update_ms(side: str, attribute: str) -> float:
        return 1000 * statistics.median(getattr(r, attribute) for r in measured[side]) / updates

    cpu_ours, cpu_floor = per_update_ms("ours", "cpu_seconds"), per_update_ms("floor", "cpu_seconds")
    wall_ours, wall_floor = per_update_ms("ours", "wall_seconds"), per_update_ms("floor", "wall_seconds")
    cpu_ratio = cpu_ours / cpu_floor
    spread = sorted(
        round(r_o.cpu_seconds / r_f.cpu_seconds, 2)
        for r_o, r_f in zip(measured["ours"], measured["floor"], strict=True)
    )
    return [
        Metric(
            name=NAME,
            measured=cpu_ours,
            baseline=cpu_floor,
            unit="ms CPU/update",
            ratio=cpu_ratio,
            target=f"bot CPU per update ours / aiogram floor ≤ {TARGET_RATIO:g} (stretch {STRETCH_RATIO:g})",
            passed=cpu_ratio <= TARGET_RATIO,
            note=(
                f"median of {rounds} alternating rounds of {updates} commands after {WARMUP} warm-up, each bot in "
                f"its own process, production defaults (quota on); per-round ratios {spread}; "
                f"stretch {'met' if cpu_ratio <= STRETCH_RATIO else 'not met'}"
            ),
        ),
        Metric(
            name=f"{NAME}.wall",
            measured=wall_ours,
            baseline=wall_floor,
            unit="ms/update",
            ratio=wall_ours / wall_floor,
            target="informational: wall-clock time per update, first command to last acknowledgement",
            passed=None,
            note="includes the fake server's time in this process; both sides alike",
        ),
    ]
