"""`kill -9` of the bot at random moments during a batch of 20 jobs, then restarts:
every job delivered exactly once, no video paid twice, every quota unit accounted for."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from collections import Counter
from pathlib import Path

from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.harness import bot_env, eventually, start_bot

JOBS = 20
KILLS = 4


def crash_env(tmp_path: Path, sandbox) -> dict[str, str]:
    return bot_env(
        **{
            "USEAPI_BASE_URL": sandbox.base_url,
            "USEAPI_API_TOKEN": sandbox.config.token,
            "BOT_DATABASE": str(tmp_path / "bot.sqlite3"),
            "CONSOLE_OUTPUT_DIR": str(tmp_path / "videos"),
            "POLL_INTERVAL": "0.2",
            "SCHEDULER_INTERVAL": "0.2",
            "CAPACITY_REFRESH_INTERVAL": "0.2",
            "UNKNOWN_OUTCOME_GRACE": "0.5",
            "PROGRESS_INTERVAL": "0",
            "QUOTA_PER_USER": "100",
            "MAX_JOBS_IN_FLIGHT_PER_USER": "20",
            "RATE_LIMIT_COMMANDS": "1000",
        }
    )


async def start_console(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await start_bot("--log-level", "WARNING", "console", "--user", "crashtest", env=env, cwd=cwd)


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=5) as connection:
        return connection.execute(sql).fetchall()


def job_count(db: Path) -> int:
    try:
        return query(db, "SELECT COUNT(*) FROM jobs")[0][0]
    except sqlite3.OperationalError:  # not created yet: the bot is still migrating
        return 0


async def test_kill_9_at_random_moments_loses_nothing_and_posts_nothing_twice(tmp_path):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    accounts = [SandboxAccount("a@sandbox.local", max_jobs=4), SandboxAccount("b@sandbox.local", max_jobs=4)]
    async with running_sandbox(SandboxConfig(generation_seconds=0.8, accounts=accounts)) as sandbox:
        env, db = crash_env(tmp_path, sandbox), tmp_path / "bot.sqlite3"
        outputs: list[str] = []

        first = await start_console(env, tmp_path)
        commands = "".join(f"/create_single fox number {i} in the snow\n" for i in range(JOBS))
        first.stdin.write(commands.encode())
        await first.stdin.drain()
        await eventually(lambda: job_count(db) == JOBS, timeout=30, what="all 20 jobs accepted")
        process = first
        for kill in range(KILLS):
            # A random moment: somewhere among submitting, generating and delivering.
            await asyncio.sleep(rng.uniform(0.05, 1.2))
            process.kill()
            stdout, _ = await process.communicate()
            outputs.append(stdout.decode())
            process = await start_console(env, tmp_path)
            if kill == KILLS - 1:
                break
        stdout, stderr = await asyncio.wait_for(process.communicate(b""), timeout=90)
        outputs.append(stdout.decode())
        assert process.returncode == 0, f"seed {seed}: {stderr.decode()[-3000:]}"

        videos_per_job = Counter(v.reply_ref for v in sandbox.videos.values())

    states = query(db, "SELECT state, outcome, COUNT(*) FROM jobs GROUP BY state, outcome")
    assert states == [("delivered", "completed", JOBS)], f"seed {seed}: {states}"
    job_ids = [row[0] for row in query(db, "SELECT id FROM jobs")]
    # Paid once: each job made exactly one video upstream.
    assert all(videos_per_job[job_id] == 1 for job_id in job_ids), f"seed {seed}: {videos_per_job}"
    # Delivered once: one file per job, announced at most once across all runs.
    files = sorted(p.stem for p in (tmp_path / "videos").glob("*.mp4"))
    assert files == sorted(job_ids), f"seed {seed}"
    announced = Counter(re.findall(r"\[(\w+)\] ✅ Done", "".join(outputs)))
    assert max(announced.values()) == 1, f"seed {seed}: {announced}"
    # Every quota unit accounted for: committed once per video, nothing left reserved.
    ledger = query(db, "SELECT state, COUNT(*), SUM(amount) FROM quota_ledger GROUP BY state")
    assert ledger == [("committed", JOBS, JOBS)], f"seed {seed}: {ledger}"
