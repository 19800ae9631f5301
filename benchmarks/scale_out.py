"""scale_out: jobs per second handled by 1, 2 and 4 `pixverse-bot run` processes on one PostgreSQL.

Each run is the whole path, for real: a fresh database on one throw-away PostgreSQL 15
(`tests/postgres_server.py`), N bot processes (`benchmarks/child.py pixverse`, production
defaults) in webhook mode behind a round-robin load balancer (`tests/fakes/load_balancer.py`,
as nginx in README "Scaling out"), the fake Telegram pushing the users' `/create_single`
updates through it — at most 40 at once, Telegram's default `max_connections` — and the
sandbox, which calls back through it when a video is done. A job counts once its video
has been received by the fake Telegram (`sendVideo`): accepted, queued, sent upstream,
tracked, downloaded and posted. Throughput = jobs / (last video received − first command
sent).

Chosen so that the bot is what is measured, not the upstream or the limits:

- 100 users × 3 jobs (quick: 30 × 2): within the default quota (10 a day) and anti-flood
  limit (6 per 30 s), so every setting is the production default but for where things are;
- 1 s generations; 4 sandbox accounts × maxJobs 50 = 200 slots = 100 users × the default
  2 jobs in flight per user, so a job never waits for a slot held by another user's job,
  and the upstream could finish 200 jobs/s — several times what the bots reach;
- 300 jobs take 10–20 s here, against a 1 s ramp (the first generation) and tail: the
  figure is within about a tenth of the steady rate. All commands arrive in the first
  few seconds, as a burst would, so accepting overlaps sending, tracking and posting.

Where the time goes is measured too: the CPU seconds of every bot process, of the
PostgreSQL server (the postmaster with its backends, live and exited) and of this
process (the fake Telegram, the sandbox and the load balancer), per job; the bots' and
PostgreSQL's together are reported as rows of their own (`cpu_per_job_N`, information:
unlike a rate, CPU per job hardly moves with the machine's load). They say what more cores
buy: one process per core until PostgreSQL, the one sending process or the upstream is the
limit.

No target: the rates are information, as issue 17 asks ("the ratio shows how it scales on
this 2-core machine"). 2 and 4 processes cannot do more than 2 cores' worth, and this
process (the fakes) and PostgreSQL take a share of those 2 cores as well, so here a
ratio near 1 is the expectation, and below 1 is the coordination's cost (read the
cpu_per_job rows beside the rates: unlike a rate, CPU per job hardly moves with the
machine's load; on a machine busy with other work, more processes get a larger share of
a contended CPU and the rates follow its load). What still fails the run is wrong work:
a job not posted exactly once or not created upstream exactly once raises.
Skipped where no PostgreSQL server programs are installed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.common import (
    CLOCK_TICKS,
    BotProcess,
    Metric,
    Outcome,
    Skipped,
    free_port,
    pixverse_env,
    scratch_dir,
)
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.fakes.load_balancer import RoundRobinProxy
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.fakes.telegram_fixtures import job_id_of
from tests.postgres_server import PostgresServer, PostgresUnavailable, start_server

NAME = "scale_out"
PROCESS_COUNTS = (1, 2, 4)
USERS, JOBS_PER_USER = 100, 3
QUICK_USERS, QUICK_JOBS_PER_USER = 30, 2
GENERATION_SECONDS = 1.0
ACCOUNTS, MAX_JOBS_PER_ACCOUNT = 4, 50
# Telegram sends at most this many webhook updates at once (setWebhook's default max_connections).
WEBHOOK_CONNECTIONS = 40
START_TIMEOUT = 40.0
# Generous: even 5 jobs/s finish 300 jobs within it.
RUN_TIMEOUT = 60.0


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, of its children that still run, and of those it has waited for
    (a PostgreSQL backend that exits is added to the postmaster's cutime/cstime)."""
    own = Path(f"/proc/{pid}/stat")
    total = 0.0
    for stat in [own, *Path("/proc").glob("[0-9]*/stat")]:
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it ended meanwhile
        if stat == own or int(fields[1]) == pid:  # fields[1] is the parent's pid
            # utime, stime, cutime, cstime: fields 14–17 of stat(5), the 12th–15th after the name.
            total += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return total


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class RunResult:
    processes: int
    jobs: int
    seconds: float
    bot_cpu: list[float]
    postgres_cpu: float
    harness_cpu: float
    start_seconds: float

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def product_cpu_ms_per_job(self) -> float:
        """CPU of the bots and PostgreSQL per job: what a deployment pays, whatever the load."""
        return (sum(self.bot_cpu) + self.postgres_cpu) * 1000 / self.jobs

    def describe(self) -> str:
        per_job = 1000 / self.jobs
        bots = " + ".join(f"{cpu:.1f}" for cpu in self.bot_cpu)
        return (
            f"{self.processes} process(es): {self.jobs} jobs in {self.seconds:.1f} s; CPU s: bots {bots} "
            f"({sum(self.bot_cpu) * per_job:.1f} ms/job), PostgreSQL {self.postgres_cpu:.1f} "
            f"({self.postgres_cpu * per_job:.1f} ms/job), fakes {self.harness_cpu:.1f} "
            f"({self.harness_cpu * per_job:.1f} ms/job); "
            f"busy {(sum(self.bot_cpu) + self.postgres_cpu + self.harness_cpu) / self.seconds:.2f} cores; "
            f"the processes started in {self.start_seconds:.1f} s"
        )


def _postmaster_pid(server: PostgresServer) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


async def _serving(ports: list[int], bots: list[BotProcess], fake: FakeTelegram) -> bool:
    for bot in bots:
        bot.check_alive()
    # A process that accepts the connection but never answers must not outlast START_TIMEOUT.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for port in ports:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    if answer.status >= 500:
                        return False
            except (aiohttp.ClientConnectionError, TimeoutError):
                return False
    return len(fake.calls_to("setWebhook")) >= len(bots)


async def _until_serving(ports: list[int], bots: list[BotProcess], fake: FakeTelegram) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not await _serving(ports, bots, fake):
        if time.monotonic() > deadline:
            tails = "\n".join(bot.output_tail() for bot in bots)
            raise TimeoutError(f"{len(bots)} bot processes not serving within {START_TIMEOUT:g} s\n{tails}")
        await asyncio.sleep(0.1)


def _posted(fake: FakeTelegram) -> Counter[str]:
    """Job id → how many times its video was posted."""
    return Counter(job_id_of(call.result) for call in fake.calls if call.method == "sendVideo" and call.ok)


async def _send_all(fake: FakeTelegram, users: list[FakeUser], jobs_per_user: int) -> None:
    """Every user sends their commands one after another; at most WEBHOOK_CONNECTIONS updates
    are in flight at once, as Telegram pushes them."""
    connections = asyncio.Semaphore(WEBHOOK_CONNECTIONS)

    async def one_user(user: FakeUser) -> None:
        for number in range(jobs_per_user):
            async with connections:
                await fake.user_sends_text(FakeChat.private(user), user, f"/create_single a fox, take {number}")

    await asyncio.gather(*(one_user(user) for user in users))


async def _run(processes: int, server: PostgresServer, users: int, jobs_per_user: int, workdir: Path) -> RunResult:
    jobs = users * jobs_per_user
    database = server.database()
    ports = [free_port() for _ in range(processes)]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    config = SandboxConfig(
        accounts=[SandboxAccount(f"bench{n}@sandbox.local", max_jobs=MAX_JOBS_PER_ACCOUNT) for n in range(ACCOUNTS)],
        generation_seconds=GENERATION_SECONDS,
    )
    postmaster = _postmaster_pid(server)
    async with FakeTelegram() as fake, running_sandbox(config) as sandbox, proxy.serving() as public_url:
        bots = [
            BotProcess(
                "pixverse",
                env=pixverse_env(
                    database,
                    sandbox.base_url,
                    config.token,
                    telegram_bot_token=fake.token,
                    telegram_api_base=fake.base_url,
                    bot_public_url=public_url,
                    bot_http_port=port,
                ),
                workdir=workdir / f"{processes}-{number}",
            )
            for number, port in enumerate(ports)
        ]
        try:
            starting = time.monotonic()
            for bot in bots:
                await bot.__aenter__()
            await _until_serving(ports, bots, fake)
            start_seconds = time.monotonic() - starting
            fakes = [FakeUser(id=8_000_000 + n, first_name=f"User{n}") for n in range(users)]
            bot_cpu = [bot.cpu_seconds() for bot in bots]
            postgres_cpu = _tree_cpu_seconds(postmaster)
            harness_cpu = _own_cpu_seconds()
            started = time.monotonic()
            sending = asyncio.create_task(_send_all(fake, fakes, jobs_per_user))
            await fake.wait_for(
                lambda: len(_posted(fake)) >= jobs or sending.done() and sending.exception() is not None or None,
                timeout=RUN_TIMEOUT,
                what=f"{jobs} videos posted by {processes} process(es)",
            )
            await sending  # raises what went wrong sending, if anything
            last_video = max(call.at for call in fake.calls if call.method == "sendVideo" and call.ok)
            result = RunResult(
                processes=processes,
                jobs=jobs,
                seconds=last_video - started,
                bot_cpu=[bot.cpu_seconds() - before for bot, before in zip(bots, bot_cpu, strict=True)],
                postgres_cpu=_tree_cpu_seconds(postmaster) - postgres_cpu,
                harness_cpu=_own_cpu_seconds() - harness_cpu,
                start_seconds=start_seconds,
            )
            for bot in bots:
                bot.check_alive()
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
        # A throughput of wrong work is no throughput: each job created once and posted once.
        posted = _posted(fake)
        assert len(posted) == jobs and set(posted.values()) == {1}, posted.most_common(3)
        assert sandbox.count("POST", "/v2/pixverse/videos/create") == jobs
        assert len(proxy.forwarded) == processes, proxy.forwarded  # the load really was shared
        assert not fake.spec_violations, fake.spec_violations[:3]
    return result


async def run(quick: bool) -> Outcome:
    users, jobs_per_user = (QUICK_USERS, QUICK_JOBS_PER_USER) if quick else (USERS, JOBS_PER_USER)
    try:
        server = await asyncio.to_thread(start_server)
    except PostgresUnavailable as missing:
        return Skipped(NAME, str(missing))
    results: dict[int, RunResult] = {}
    try:
        # Each phase has its own deadline (START_TIMEOUT, RUN_TIMEOUT), which names what hung.
        with scratch_dir() as tmp:
            for processes in PROCESS_COUNTS:
                results[processes] = await _run(processes, server, users, jobs_per_user, tmp)
    finally:
        await asyncio.to_thread(server.stop)
    one = results[1].jobs_per_second
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    metrics = [
        Metric(
            f"{NAME}.jobs_per_s_1",
            one,
            None,
            "jobs/s",
            None,
            "info",
            None,
            results[1].describe() + f"; load {load} after the runs",
        )
    ]
    for processes in PROCESS_COUNTS[1:]:
        measured = results[processes].jobs_per_second
        metrics.append(
            Metric(
                f"{NAME}.jobs_per_s_{processes}",
                measured,
                one,
                "jobs/s",
                measured / one,
                f"info: {processes} / 1 process (2 cores: see README 'Scaling out')",
                None,
                results[processes].describe(),
            )
        )
    # Load-insensitive: the CPU a job costs the bots and PostgreSQL together, per process count.
    # It says what extra processes cost in coordination, and with the rates above what more
    # cores buy (README "Scaling out"); it informs, it is not a target.
    for processes in PROCESS_COUNTS:
        cpu = results[processes].product_cpu_ms_per_job
        single = results[1].product_cpu_ms_per_job
        metrics.append(
            Metric(
                f"{NAME}.cpu_per_job_{processes}",
                cpu,
                single if processes > 1 else None,
                "ms",
                cpu / single if processes > 1 else None,
                "info (bots + PostgreSQL)",
                None,
            )
        )
    return metrics
