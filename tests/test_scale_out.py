"""Three real `pixverse-bot run` processes on one PostgreSQL database share the work
(README "Scaling out"), and one of them is killed with SIGKILL mid-run.

Telegram (the fake) pushes updates by webhook, and the sandbox calls back, through a
small round-robin proxy of this test's own, as a load balancer in front of the bots
would (a dead backend is skipped, as nginx's `proxy_next_upstream error` does). 20
users send 100 jobs; then, with jobs queued, running and being delivered, one process
is killed. The other two take its jobs over once its lease runs out: every job is
created upstream exactly once, every quota is exact, and every job is posted once —
except a video Telegram was answering the killed process's upload of when it died (the
crash window of README "Known limits": between Telegram taking the post and the job's
record, one request and one database write), which is posted again. A job whose
progress message had been marked "✅ Done" was recorded before that edit, and is never
posted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from benchmarks.common import free_port
from bot.sandbox import SandboxConfig, running_sandbox
from storage import open_storage
from tests.fakes.load_balancer import RoundRobinProxy
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.fakes.telegram_fixtures import job_id_of
from tests.harness import bot_env
from tests.patience import deadline
from tests.postgres_server import PostgresServer

PROCESSES = 3
USERS = 20
JOBS_PER_USER = 5
JOBS = USERS * JOBS_PER_USER
LEASE_SECONDS = 3
# Killed once this many jobs are delivered: the rest are queued, running or being posted.
KILL_AFTER_DELIVERED = 25
# The log line of the process that sends queued jobs (it holds the scheduler's lock).
SENDER_LOG = "this process now runs 'scheduler'"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


async def start_process(env: dict[str, str], workdir: Path, number: int) -> tuple[asyncio.subprocess.Process, Path]:
    log = workdir / f"bot-{number}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=workdir,
            env=env | {"PYTHONPATH": str(PROJECT_ROOT)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return process, log


def delivered_videos(fake: FakeTelegram) -> Counter[str]:
    """Job id → how many times its video was posted."""
    return Counter(job_id_of(call.result) for call in fake.calls if call.method == "sendVideo" and call.ok)


def marked_done(fake: FakeTelegram, job_of_status: dict[tuple[str, str], str], before: float) -> set[str]:
    """The jobs whose progress message ((chat id, message id) → job id) Telegram had edited to
    "✅ Done" before `before` (monotonic)."""
    return {
        job_of_status[(str(call.params["chat_id"]), str(call.params["message_id"]))]
        for call in fake.calls
        if call.method == "editMessageText" and call.ok and call.params.get("text") == "✅ Done" and call.at <= before
    }


async def test_three_processes_one_killed_deliver_every_job_once(tmp_path, postgres_server: PostgresServer) -> None:
    started = time.monotonic()
    database = postgres_server.database()
    ports = [free_port() for _ in range(PROCESSES)]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    config = SandboxConfig(generation_seconds=1.0)
    processes: list[tuple[asyncio.subprocess.Process, Path]] = []
    async with FakeTelegram() as fake, running_sandbox(config) as sandbox, proxy.serving() as public_url:
        try:
            for number, port in enumerate(ports):
                env = bot_env(
                    BOT_DATABASE=database,
                    USEAPI_BASE_URL=sandbox.base_url,
                    USEAPI_API_TOKEN=config.token,
                    TELEGRAM_BOT_TOKEN=fake.token,
                    TELEGRAM_API_BASE=fake.base_url,
                    BOT_PUBLIC_URL=public_url,
                    BOT_HTTP_HOST="127.0.0.1",
                    BOT_HTTP_PORT=str(port),
                    INSTANCE_LEASE=str(LEASE_SECONDS),
                    UNKNOWN_OUTCOME_GRACE="1",
                    POLL_INTERVAL="1",
                    WEBHOOK_SAFETY_POLL_INTERVAL="2",
                    SCHEDULER_INTERVAL="0.5",
                    CAPACITY_REFRESH_INTERVAL="1",
                    DELIVERY_RETRY_INITIAL="0.5",
                    QUOTA_PER_USER=str(JOBS_PER_USER),
                    RATE_LIMIT_COMMANDS="1000",
                    LOG_LEVEL="INFO",
                )
                processes.append(await start_process(env, tmp_path, number))

            async def all_serving() -> bool:
                for process, log in processes:
                    assert process.returncode is None, log.read_text()[-3000:]
                # Each process answers on its own port once its webhook route is in place.
                async with aiohttp.ClientSession() as session:
                    for port in ports:
                        try:
                            async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                                if answer.status >= 500:
                                    return False
                        except aiohttp.ClientConnectionError:
                            return False
                return len(fake.calls_to("setWebhook")) >= PROCESSES

            await _until(all_serving, deadline(30), "three processes serving")

            users = [FakeUser(id=7_000_000 + n, first_name=f"User{n}") for n in range(USERS)]
            for round_number in range(JOBS_PER_USER):
                for user in users:
                    await fake.user_sends_text(
                        FakeChat.private(user), user, f"/create_single a fox, take {round_number}"
                    )
            async with await open_storage(database) as db:

                async def stored() -> bool:
                    row = await db.fetch_one("SELECT COUNT(*) AS n FROM jobs")
                    return row is not None and row["n"] == JOBS

                await _until(stored, deadline(20), f"{JOBS} jobs stored")

                await _until(
                    lambda: sum(delivered_videos(fake).values()) >= KILL_AFTER_DELIVERED,
                    deadline(60),
                    f"{KILL_AFTER_DELIVERED} videos delivered",
                )
                # The process that sends (it holds the scheduler's lock), and owns the jobs it
                # sent until a callback to another process moves them on.
                [victim_number] = [n for n, (_, log) in enumerate(processes) if SENDER_LOG in log.read_text()]
                victim, victim_log = processes[victim_number]
                os.kill(victim.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                await victim.wait()
                [victim_id] = re.findall(r"bot process (\S+) joined", victim_log.read_text())
                row = await db.fetch_one("SELECT COUNT(*) AS n FROM jobs WHERE state <> 'delivered'")
                assert row is not None and row["n"] > 0  # killed mid-run: jobs queued, running, being posted
                # Finished jobs it owned and had not recorded as delivered: it may have been
                # posting them as it died (README "Known limits": the crash window).
                in_its_hands = {
                    row["id"]
                    for row in await db.fetch_all(
                        "SELECT id FROM jobs WHERE owner = ? AND state IN ('completed', 'failed')", (victim_id,)
                    )
                }
                survivors = [entry for n, entry in enumerate(processes) if n != victim_number]

                async def all_delivered() -> bool:
                    for process, log in survivors:
                        assert process.returncode is None, log.read_text()[-3000:]
                    row = await db.fetch_one("SELECT COUNT(*) AS n FROM jobs WHERE state = 'delivered'")
                    return row is not None and row["n"] == JOBS

                await _until(all_delivered, deadline(60), "every job delivered")
                ledger = await db.fetch_all(
                    "SELECT user_key, state, SUM(amount) AS amount FROM quota_ledger GROUP BY user_key, state"
                )
                outcomes = await db.fetch_all("SELECT outcome, COUNT(*) AS n FROM jobs GROUP BY outcome")
                job_of_status = {
                    (row["chat_id"], row["status_message_id"]): row["id"]
                    for row in await db.fetch_all("SELECT id, chat_id, status_message_id FROM jobs")
                }
        finally:
            for process, _ in processes:
                if process.returncode is None:
                    process.terminate()
            for process, _ in processes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), deadline(15))
                if process.returncode is None:
                    process.kill()
                    await process.wait()

        survivor_logs = "".join(log.read_text() for _, log in survivors)
        assert SENDER_LOG in survivor_logs  # another process sends now
        posted = delivered_videos(fake)
        assert len(posted) == JOBS  # every job reached its chat
        # Once each — but for the crash window, which no API of Telegram's can close: a
        # video whose upload Telegram had taken and the killed process had not yet recorded
        # is posted again by the process that takes the job over. Only such jobs may appear
        # twice. That window is Telegram's answer to the upload and one database write (the
        # ✅ Done edit comes after the record). The kill follows a video's post at once (see
        # KILL_AFTER_DELIVERED), so the upload that triggered it may well be in the window,
        # and now and then a second of the killed process's concurrent deliveries (4 at
        # most); more would mean a window wider than the upload's answer.
        twice = {job_id for job_id, times in posted.items() if times > 1}
        assert set(posted.values()) <= {1, 2}, posted.most_common(3)
        assert twice <= in_its_hands and len(twice) <= 2, (twice, in_its_hands)
        # A job marked "✅ Done" was recorded as delivered before that edit: never posted again.
        assert not twice & marked_done(fake, job_of_status, before=killed_at), (twice, in_its_hands)
        for job_id in twice:
            first_post = min(
                call.at for call in fake.calls if call.method == "sendVideo" and job_id_of(call.result) == job_id
            )
            # Posted by the killed process: an upload it had written before it died may still
            # be read by the fake just after the kill, but no survivor may take the job over
            # before the dead process's lease runs out: renewed every third of it, it lasts at
            # least two thirds of it past the kill.
            assert first_post < killed_at + LEASE_SECONDS * 2 / 3, (first_post - killed_at, job_id)
        assert {row["outcome"]: row["n"] for row in outcomes} == {"completed": JOBS}
        assert sandbox.count("POST", "/v2/pixverse/videos/create") == JOBS  # one create per job
        assert {(row["user_key"], row["state"]): row["amount"] for row in ledger} == {
            (f"telegram:{user.id}", "committed"): JOBS_PER_USER for user in users
        }
        assert len(proxy.forwarded) == PROCESSES  # the load really was shared
        assert fake.spec_violations == []
    assert time.monotonic() - started < deadline(90)


async def _until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.05)
