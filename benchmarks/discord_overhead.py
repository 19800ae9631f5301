"""discord_overhead: time to the user's first visible answer to /create_single vs a bare discord.py bot.

Two fake Discords (tests/fakes/discord_api.py: REST and gateway) run in this process,
one per bot; each bot runs in its own process (`benchmarks.child`):

- floor: a bare discord.py bot with one slash command that does what any command
  needing more than Discord's 3 s must do: defer (ephemeral "thinking…"), then edit
  the answer in — the same two calls our bot makes;
- ours: `pixverse-bot run` with production defaults, its upstream a sandbox in this
  process. Its answer is the "⏳ Queued" text edited into the deferred response.

Commands alternate between the two bots, one at a time, each from a member of its own
(quota and rate limit admit them): first each in a channel of its own (the stack's own
cost), then a few one after another in one channel (what a busy channel sees: ours paces
each job's edits by its own interaction's budget, so other jobs in the channel must not
hold the answer back).

Latency: from the interaction dispatched on the gateway to the first edit of the
deferred response (PATCH …/messages/@original, or by its id) arriving at the fake; that
edit must carry text (ours shows the job's newest progress: "⏳ Queued", or already
"🎬 Generating" when an account was free). Target: our median ≤ 1.5 × the floor's.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.common import BotProcess, Metric, Outcome, percentile, pixverse_env, scratch_dir, time_limit
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.discord_api import CapturedRequest, FakeDiscord, FakeInteraction

NAME = "discord_overhead"
SAMPLES, QUICK_SAMPLES = 100, 20
# Commands one after another in one busy channel (each answer may wait for the channel's budget).
# Forty, not ten: a median of ten moved by ±1× between runs on a loaded machine (0.5–3.1×).
SHARED_SAMPLES, QUICK_SHARED_SAMPLES = 40, 3
WARMUP = 5
TARGET_RATIO = 1.5
START_TIMEOUT = 60.0
ANSWER_TIMEOUT = 30.0


def _answer(fake: FakeDiscord, interaction: FakeInteraction) -> CapturedRequest | None:
    """The first edit of the deferred response (by `@original` or by its id), once it has arrived."""
    answer = None
    for request in reversed(fake.requests):
        if request.at < interaction.dispatched_at:
            break
        if request.method == "PATCH" and interaction.token in request.path and request.status == 200:
            answer = request
    return answer


async def _ready(fake: FakeDiscord, bot: BotProcess) -> None:
    await fake.wait_for(
        lambda: (fake.identified and fake.commands.get(None)) or not bot.alive(),
        timeout=START_TIMEOUT,
        what=f"the {bot.mode} bot connected with its commands synced",
    )
    bot.check_alive()


def _calls_before(fake: FakeDiscord, interaction: FakeInteraction, answer: CapturedRequest) -> int:
    """REST calls the bot made between the interaction and its answer, the answer included."""
    return sum(interaction.dispatched_at <= request.at <= answer.at for request in fake.requests)


async def _latency(
    fake: FakeDiscord, bot: BotProcess, number: int, *, shared_channel: bool, calls: list[int] | None = None
) -> float:
    member = fake.add_member(f"bench{number}")
    channel = fake.channel if shared_channel else fake.add_channel(f"bench-{number}")
    interaction = await fake.slash("create_single", by=member, channel=channel, prompt=f"a fox number {number}")
    await fake.wait_for(
        lambda: _answer(fake, interaction) or not bot.alive(),
        timeout=ANSWER_TIMEOUT,
        what=f"the answer to {bot.mode}'s /create_single",
    )
    bot.check_alive()
    answer = _answer(fake, interaction)
    # Ours shows the newest progress: a job sent upstream at once is already "generating".
    assert answer is not None and answer.body.get("content"), answer and answer.body
    if calls is not None:
        calls.append(_calls_before(fake, interaction, answer))
    return answer.at - interaction.dispatched_at


@contextlib.asynccontextmanager
async def _our_bot(fake: FakeDiscord, workdir: Path) -> AsyncIterator[BotProcess]:
    config = SandboxConfig(generation_seconds=3600)
    async with running_sandbox(config) as sandbox:
        env = pixverse_env(
            workdir / "discord-bot.sqlite3", sandbox.base_url, config.token, discord_bot_token=fake.token
        )
        async with BotProcess("pixverse", env=env | {"BENCH_DISCORD_BASE": fake.base_url}, workdir=workdir) as bot:
            yield bot


async def run(quick: bool) -> Outcome:
    samples = QUICK_SAMPLES if quick else SAMPLES
    shared_samples = QUICK_SHARED_SAMPLES if quick else SHARED_SAMPLES
    latencies: dict[str, list[float]] = {"floor": [], "ours": []}
    shared: dict[str, list[float]] = {"floor": [], "ours": []}
    # Both sides are to make the same two calls (defer, edit) before the answer: counted, not assumed.
    calls: dict[str, list[int]] = {"floor": [], "ours": []}
    with scratch_dir() as tmp:
        async with (
            time_limit(2 * START_TIMEOUT + samples * 2 + shared_samples * 10, NAME),
            FakeDiscord() as floor_fake,
            FakeDiscord() as our_fake,
            BotProcess(
                "discord-floor", floor_fake.token, env={"BENCH_DISCORD_BASE": floor_fake.base_url}, workdir=tmp
            ) as floor_bot,
            _our_bot(our_fake, tmp) as our_bot,
        ):
            sides = {"floor": (floor_fake, floor_bot), "ours": (our_fake, our_bot)}
            for fake, bot in sides.values():
                await _ready(fake, bot)
            started = time.monotonic()
            for number in range(WARMUP + samples):
                for side, (fake, bot) in sides.items():
                    latency = await _latency(fake, bot, number, shared_channel=False, calls=calls[side])
                    if number >= WARMUP:
                        latencies[side].append(latency)
            seconds = time.monotonic() - started
            for number in range(WARMUP + samples, WARMUP + samples + shared_samples):
                for side, (fake, bot) in sides.items():
                    shared[side].append(await _latency(fake, bot, number, shared_channel=True))
            violations = floor_fake.spec_violations + our_fake.spec_violations
            assert not violations, violations[:3]
    ours, floor = (statistics.median(latencies[side]) * 1000 for side in ("ours", "floor"))
    p95 = {side: percentile(values, 0.95) * 1000 for side, values in latencies.items()}
    shared_ours, shared_floor = (statistics.median(shared[side]) * 1000 for side in ("ours", "floor"))
    return [
        Metric(
            name=NAME,
            measured=ours,
            baseline=floor,
            unit="ms median",
            ratio=ours / floor,
            target=f"first visible answer ours / bare discord.py (defer, edit) ≤ {TARGET_RATIO:g}",
            passed=ours / floor <= TARGET_RATIO,
            note=(
                f"{samples} /create_single each, alternating, each in a channel of its own, in {seconds:.0f} s; "
                f"p95 ours {p95['ours']:.1f} ms, floor {p95['floor']:.1f} ms; REST calls from the interaction to "
                f"the answer (median): ours {statistics.median(calls['ours']):g}, "
                f"floor {statistics.median(calls['floor']):g}"
            ),
        ),
        Metric(
            name=f"{NAME}.shared_channel",
            measured=shared_ours,
            baseline=shared_floor,
            unit="ms median",
            ratio=shared_ours / shared_floor,
            target=f"the same, commands one after another in one channel ≤ {TARGET_RATIO:g}",
            passed=shared_ours / shared_floor <= TARGET_RATIO,
            note=(
                f"{shared_samples} /create_single each; ours: each job's progress spends its own interaction's "
                "budget (DiscordNotifier: one edit per 2 s per interaction), not the channel's"
            ),
        ),
    ]
