"""relay_memory: relaying a 200 MB video through the real upload paths must not grow the bot's memory.

`pixverse-bot run` runs in its own process with both chat adapters, against a fake Bot
API and a fake Discord (tests/fakes) and a sandbox, all in this process. A finished
video travels the production path: the upstream client streams it to a temp file, then
aiogram uploads it as multipart sendVideo, or discord.py as a file attached to the
interaction's followup. The parent reads the bot's memory from /proc:

1. one small video through each platform first (warm-up: every code path has run once);
2. then, for each platform in turn, the bot's peak RSS (VmHWM) is reset to its current RSS
   (or, where the kernel refuses, the peak so far is the baseline), the sandbox pads the
   next video to VIDEO_BYTES, and one job relays it; growth = peak after − RSS before.

Target: growth ≤ 20 MiB on each platform.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import MIB, BotProcess, Metric, Outcome, pixverse_env, scratch_dir, time_limit
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

NAME = "relay_memory"
VIDEO_BYTES, QUICK_VIDEO_BYTES = 200 * MIB, 50 * MIB
TARGET_GROWTH = 20 * MIB
GENERATION_SECONDS = 0.5
# Not the default (10 s): a relay should not wait for the next poll. Memory does not depend on it.
POLL_INTERVAL = 0.5
UPLOAD_LIMIT = 2000 * MIB  # a self-hosted Bot API server's; a boosted Discord server's is 500 MB
DISCORD_UPLOAD_LIMIT = 500 * MIB
RELAY_TIMEOUT = 90.0


class _Relays:
    """Sends one /create_single per platform and waits until its video has been uploaded."""

    def __init__(self, telegram: FakeTelegram, discord: FakeDiscord, bot: BotProcess) -> None:
        self.telegram, self.discord, self.bot = telegram, discord, bot
        self._users = iter(range(4_000_000, 5_000_000))

    async def telegram_video(self, size: int) -> int:
        user = FakeUser(id=next(self._users), first_name="Bench")
        await self.telegram.user_sends_text(FakeChat.private(user), user, "/create_single a long kite")

        def uploaded() -> int:
            for call in self.telegram.calls_to("sendVideo"):
                if call.chat_id == user.id and call.ok:
                    return len(call.files["video"].data)
            return 0 if self.bot.alive() else -1

        got = await self.telegram.wait_for(uploaded, timeout=RELAY_TIMEOUT, what="the Telegram upload")
        self.bot.check_alive()
        assert got >= size, f"Telegram received {got} bytes, not {size}"
        return got

    async def discord_video(self, size: int) -> int:
        member = self.discord.add_member(f"bench{next(self._users)}")
        interaction = await self.discord.slash("create_single", by=member, prompt="a long kite")

        def uploaded() -> int:
            for message in self.discord.followups(interaction):
                if message.attachments:
                    return len(message.attachments[0].data)
            return 0 if self.bot.alive() else -1

        got = await self.discord.wait_for(uploaded, timeout=RELAY_TIMEOUT, what="the Discord upload")
        self.bot.check_alive()
        assert got >= size, f"Discord received {got} bytes, not {size}"
        return got


async def _growth(relays: _Relays, config: SandboxConfig, platform: str, size: int) -> tuple[int, int, bool]:
    """(growth in bytes, RSS before in bytes, whether the peak could be reset) relaying one video."""
    reset = relays.bot.reset_peak_memory()
    before = relays.bot.memory_kib()
    config.video_pad_bytes = size
    await (relays.telegram_video(size) if platform == "telegram" else relays.discord_video(size))
    config.video_pad_bytes = 0
    after = relays.bot.memory_kib()
    baseline = before["VmRSS"] if reset else before["VmHWM"]
    return max(0, after["VmHWM"] - baseline) * 1024, baseline * 1024, reset


async def _measure(size: int, workdir: Path) -> dict[str, tuple[int, int, bool]]:
    config = SandboxConfig(generation_seconds=GENERATION_SECONDS, progress_callbacks=0)
    async with (
        FakeTelegram(upload_limit=UPLOAD_LIMIT) as telegram,
        FakeDiscord(attachment_size_limit=DISCORD_UPLOAD_LIMIT) as discord,
        running_sandbox(config) as sandbox,
    ):
        env = pixverse_env(
            workdir / "relay.sqlite3",
            sandbox.base_url,
            config.token,
            telegram_bot_token=telegram.token,
            telegram_api_base=telegram.base_url,
            discord_bot_token=discord.token,
            poll_interval=POLL_INTERVAL,
        )
        async with BotProcess("pixverse", env=env | {"BENCH_DISCORD_BASE": discord.base_url}, workdir=workdir) as bot:
            await telegram.wait_for(lambda: telegram.waiting_polls or not bot.alive(), timeout=60, what="polling")
            await discord.wait_for(lambda: discord.commands.get(None) or not bot.alive(), timeout=60, what="commands")
            bot.check_alive()
            relays = _Relays(telegram, discord, bot)
            await relays.telegram_video(0)  # warm-up, small videos
            await relays.discord_video(0)
            return {platform: await _growth(relays, config, platform, size) for platform in ("telegram", "discord")}


async def run(quick: bool) -> Outcome:
    size = QUICK_VIDEO_BYTES if quick else VIDEO_BYTES
    with scratch_dir() as tmp:
        async with time_limit(60 + 4 * RELAY_TIMEOUT, NAME):
            measured = await _measure(size, tmp)
    metrics = []
    for platform, (growth, baseline, reset) in measured.items():
        how = "multipart sendVideo (aiogram)" if platform == "telegram" else "interaction followup file (discord.py)"
        metrics.append(
            Metric(
                name=f"{NAME}.{platform}",
                measured=growth / MIB,
                baseline=baseline / MIB,
                unit="MiB",
                ratio=growth / size,
                target=f"peak RSS growth ≤ {TARGET_GROWTH // MIB} MiB relaying {size // MIB} MiB",
                passed=growth <= TARGET_GROWTH,
                note=f"via {how}; baseline: the bot's "
                + ("RSS before the relay" if reset else "peak RSS before the relay (VmHWM not resettable)"),
            )
        )
    return metrics
