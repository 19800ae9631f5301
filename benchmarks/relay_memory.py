"""relay_memory: relaying a 50 MiB video must not grow the bot's memory by the video's size.

The sandbox (which holds the video in memory to serve it) runs in this process; the bot
runs in a child process of its own (`python -m benchmarks.relay_memory <base url> <token>`),
so the child's peak RSS (VmHWM) is the bot's alone. In the child, the real core relays:

1. a warm-up job with a small video, so every code path (HTTP client, delivery, temp
   files, notifier) has been through once;
2. then, with the peak reset to the idle RSS (or, where the kernel refuses, the peak
   so far kept as the baseline), one job whose video the sandbox pads to `VIDEO_BYTES`:
   downloaded by the upstream client's streamed download to a temp file, handed to a
   notifier that reads it in 64 KiB chunks as an upload would.

The parent makes the second video large as soon as the first one is final, then reads
the child's JSON report. Growth = peak after the relay - idle RSS; ratio = growth / video size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    MIB,
    Metric,
    Outcome,
    TimingNotifier,
    memory_kib,
    reset_peak_memory,
    scratch_dir,
    time_limit,
)
from bot.bootstrap import Core
from bot.commands import CreateSingle, parse_command
from bot.domain import JobState
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import eventually, fast_settings, requester, running_core

NAME = "relay_memory"
VIDEO_BYTES = 50 * MIB
TARGET_GROWTH = 20 * MIB
GENERATION_SECONDS = 0.5
# A self-hosted Bot API server's upload limit: the video is sent as a file, not as a link.
CHAT_UPLOAD_LIMIT = 2000 * MIB
CHILD_TIMEOUT = 50.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class _RemoteSandbox:
    """The parent's sandbox as `fast_settings` needs it: its address and its config (for the token)."""

    base_url: str
    config: SandboxConfig


async def _relay_one(core: Core, prompt: str) -> str:
    """Queue one job and wait until it is DELIVERED (video read by the notifier, temp file gone); returns its id."""
    job = await core.service.create_single(requester("relay", "chat-relay"), parse_command(CreateSingle, prompt=prompt))

    async def delivered() -> bool:
        stored = await core.jobs.get(job.id)
        return stored is not None and stored.state is JobState.DELIVERED

    await eventually(delivered, timeout=20, what=f"{prompt!r} delivered")
    return job.id


async def child(base_url: str, token: str) -> dict[str, object]:
    """The bot side, in its own process: returns what it measured."""
    notifier = TimingNotifier(read_files=True, limit_bytes=CHAT_UPLOAD_LIMIT)
    with scratch_dir() as tmp:
        settings = fast_settings(tmp, _RemoteSandbox(base_url, SandboxConfig(token=token)))
        async with running_core(settings, notifier) as core:
            await _relay_one(core, "a warm-up kite")
            reset = reset_peak_memory()
            idle = memory_kib()
            job_id = await _relay_one(core, "a very large kite")
            after = memory_kib()
    return {
        "idle_rss_kib": idle["VmRSS"] if reset else idle["VmHWM"],
        "peak_kib": after["VmHWM"],
        "peak_was_reset": reset,
        "relayed_bytes": notifier.relayed_bytes[job_id],
    }


async def run(quick: bool) -> Outcome:
    config = SandboxConfig(generation_seconds=GENERATION_SECONDS, progress_callbacks=0)
    async with running_sandbox(config) as sandbox, time_limit(CHILD_TIMEOUT + 5, NAME):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.relay_memory",
            sandbox.base_url,
            config.token,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # The child's second video is large: pad it once the warm-up video is final.
            await eventually(
                lambda: any(v.phase.final for v in sandbox.videos.values()) or process.returncode is not None,
                timeout=CHILD_TIMEOUT,
                what="the warm-up video",
            )
            config.video_pad_bytes = VIDEO_BYTES
            out, err = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the relay child failed ({process.returncode}):\n{err.decode()[-3000:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    if report["relayed_bytes"] < VIDEO_BYTES:
        raise RuntimeError(f"only {report['relayed_bytes']} bytes were relayed, not {VIDEO_BYTES}")
    idle = report["idle_rss_kib"] * 1024
    growth = max(0, report["peak_kib"] * 1024 - idle)
    baseline_kind = "idle RSS" if report["peak_was_reset"] else "peak before the relay (VmHWM not resettable)"
    return [
        Metric(
            name=NAME,
            measured=growth / MIB,
            baseline=idle / MIB,
            unit="MiB",
            ratio=growth / VIDEO_BYTES,
            target=f"growth ≤ {TARGET_GROWTH // MIB} MiB (ratio ≤ {TARGET_GROWTH / VIDEO_BYTES:.2f})",
            passed=growth <= TARGET_GROWTH,
            note=f"peak RSS growth relaying {VIDEO_BYTES // MIB} MiB; baseline: {baseline_kind}",
        )
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(child(sys.argv[1], sys.argv[2]))))
