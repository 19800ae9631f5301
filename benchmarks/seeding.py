"""Filling a database with many jobs fast: one prepared row per kind of job, multiplied in SQL.

Serializing a million jobs one by one through pydantic would take minutes. Instead the
job store's own column mapping (`storage.jobs._columns`) serializes one prototype job
per kind (delivered, generating, queued) whose user id and job number are placeholders;
one `INSERT … SELECT` in one transaction then writes every row, replacing the
placeholders with each row's user and number. The rows are therefore exactly what
`SqlJobStore.add` writes, with their own user, chat, id and time.

Who sent each job is drawn from a Zipf-like law (user rank r sends in proportion to
1 / r**0.8, so the busiest of 10,000 users has thousands of jobs), as in any chat.
The quota ledger gets one entry per job, settled for finished jobs and reserved for
waiting ones, as the quota service would have left it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from itertools import accumulate
from pathlib import Path

from bot.domain import ChatRef, GenerationRequest, Job, JobKind, JobState, Platform, Requester, UserRef, utcnow
from bot.sandbox.videos import SANDBOX_USER_ID
from storage import jobs as jobs_module
from storage.database import load_migrations, to_sql_time

# The store's own serialization, so seeded rows are what `SqlJobStore.add` writes.
from storage.jobs import _columns

USER = "__USER__"
NUMBER = "__NUMBER__"
# A running job's video number: the job number unpadded, as the sandbox numbers videos, so
# that `video_id` names a video the sandbox can be told about (see `running_videos`).
VIDEO_NUMBER = "__VIDEO_NUMBER__"
ZIPF_EXPONENT = 0.8
# Finished jobs are spread over this much history; waiting and running ones are recent
# (younger than the queue timeout, or the scheduler's first pass would expire them).
HISTORY = timedelta(days=30)
RECENT = timedelta(minutes=30)
# Running jobs were sent this recently: well inside the job timeout (30 min), or the
# tracker's first pass would give them all up at once.
RUNNING_SINCE = timedelta(minutes=10)
ACCOUNTS = ("alice@sandbox.local", "bob@sandbox.local")
PROMPT = "a fox running through snow at dusk"
SEED_CACHE_KIB = 512 * 1024
# When a job was made, and when it last moved (sent, finished): the seed table's `created` and `moved`.
# Names a folder where seeded databases are kept for later runs (see `seed_cached`).
SEED_CACHE_ENV = "BENCH_SEED_CACHE"
# A kept database is seeded anew after this long: its queued jobs were made in the RECENT
# before it was seeded, and must stay younger than the queue timeout (6 h).
CACHE_MAX_AGE = timedelta(hours=4)
TIME_COLUMNS = {"created_at": "created", "updated_at": "moved", "submitted_at": "moved", "finished_at": "moved"}


@dataclass(frozen=True)
class Population:
    """How many jobs of each kind, and how many users they belong to (oldest jobs first:
    delivered, then running, then queued)."""

    users: int
    delivered: int = 0
    running: int = 0
    queued: int = 0
    platform: Platform = Platform.TELEGRAM
    # Every `group_every`-th user talks to the bot in a group (one of `groups`), the others in private.
    groups: int = 200
    group_every: int = 2

    @property
    def total(self) -> int:
        return self.delivered + self.running + self.queued


def user_weights(users: int) -> list[float]:
    """Cumulative Zipf weights for `random.choices(cum_weights=…)`."""
    return list(accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(users)))


def prototype(state: JobState, population: Population, *, group: bool) -> dict[str, object]:
    """One job's SQL columns with placeholders for the user and the job number."""
    platform = population.platform
    chat = ChatRef(platform, f"-100{USER}", group_id=None) if group else ChatRef(platform, USER, is_private=True)
    requester = Requester(UserRef(platform, USER, f"User {USER}"), chat, reply_to=NUMBER)
    request = GenerationRequest(JobKind.CREATE, user_prompt=PROMPT, prompt=PROMPT, seed=12345)
    now = utcnow()
    job = Job(id=NUMBER, requester=requester, request=request, created_at=now, updated_at=now)
    if state is not JobState.QUEUED:
        number = VIDEO_NUMBER if state is JobState.GENERATING else NUMBER
        job = job.evolve(video_id=f"user:{SANDBOX_USER_ID}-pixverse:{ACCOUNTS[0]}-video:{number}", account=ACCOUNTS[0])
        job = job.evolve(submitted_at=now)
    if state is JobState.DELIVERED:
        job = job.evolve(
            state=JobState.DELIVERED,
            outcome=JobState.COMPLETED,
            result_url=f"https://media.example/{NUMBER}.mp4",
            finished_at=now,
            status_message_id="1",
        )
    elif state is JobState.GENERATING:
        job = job.evolve(state=JobState.GENERATING, status_message_id="1")
    return _columns({f.name: getattr(job, f.name) for f in fields(Job)})


def seed(path: Path, population: Population, *, rng: random.Random | None = None) -> float:
    """Write `population`'s jobs and ledger entries into the (migrated) database at `path`.

    Returns the newest queued job's age limit used (seconds), for reporting. One transaction.
    """
    rng = rng or random.Random(20240601)
    owners = rng.choices(range(population.users), cum_weights=user_weights(population.users), k=population.total)
    now = utcnow()
    old_step = HISTORY.total_seconds() / max(1, population.delivered)
    new_step = RECENT.total_seconds() / max(1, population.running + population.queued)
    sent = {job_id: at for at, job_id in _sent_times(population, now)}
    rows = []
    for number, owner in enumerate(owners):
        if number < population.delivered:
            created = now - HISTORY - RECENT + timedelta(seconds=number * old_step)
            kind = 0
        else:
            created = now - RECENT + timedelta(seconds=(number - population.delivered) * new_step)
            kind = 1 if number < population.delivered + population.running else 2
        group = owner % population.group_every == 0
        made = to_sql_time(created)
        # Finished jobs moved last when they were made; running ones when they were sent.
        moved = sent.get(f"{number:012d}", made)
        rows.append((number, str(owner), f"{owner % population.groups:07d}", made, moved, kind, int(group)))
    kinds = [JobState.DELIVERED, JobState.GENERATING, JobState.QUEUED]
    connection = sqlite3.connect(path)
    try:
        # A scratch database: no need to survive a power cut while it is filled, and an index
        # built once at the end is far cheaper than one kept up to date row by row.
        connection.execute("PRAGMA journal_mode = OFF")  # the product turns WAL back on when it opens it
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute(f"PRAGMA cache_size = -{SEED_CACHE_KIB}")
        connection.execute("PRAGMA temp_store = MEMORY")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('jobs', 'quota_ledger')"
            " AND sql IS NOT NULL"
        ).fetchall()
        with connection:  # one transaction
            for name, _ in indexes:
                connection.execute(f'DROP INDEX "{name}"')
            connection.execute(
                "CREATE TEMP TABLE seed (n INTEGER PRIMARY KEY, user TEXT, grp TEXT, created TEXT, moved TEXT,"
                " kind INTEGER, in_group INTEGER)"
            )
            connection.executemany("INSERT INTO seed VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            for kind, state in enumerate(kinds):
                for in_group in (0, 1):
                    _insert_kind(connection, prototype(state, population, group=bool(in_group)), kind, in_group)
            # The quota ledger, as reservations settle: finished jobs committed, waiting ones reserved.
            connection.execute(
                "INSERT INTO quota_ledger (job_id, user_key, user_name, group_key, amount, credits, state,"
                " created_at, settled_at)"
                " SELECT id, user_key, 'User', CASE WHEN chat_id LIKE '-100%' THEN platform || ':' || chat_id END,"
                " 1, 20, CASE WHEN state = 'delivered' THEN 'committed' ELSE 'reserved' END, created_at,"
                " CASE WHEN state = 'delivered' THEN created_at END FROM jobs"
            )
            connection.execute("DROP TABLE seed")
            for _, sql in indexes:
                connection.execute(sql)
    finally:
        connection.close()
    return new_step


def running_numbers(population: Population) -> range:
    """The job numbers of the running jobs (their videos are `…-video:<number>` on ACCOUNTS[0])."""
    return range(population.delivered, population.delivered + population.running)


def _sent_times(population: Population, now: datetime) -> list[tuple[str, str]]:
    """(sent at, job id) of each running job: spread over the last RUNNING_SINCE, oldest first."""
    step = RUNNING_SINCE.total_seconds() / max(1, population.running)
    return [
        (to_sql_time(now - RUNNING_SINCE + timedelta(seconds=index * step)), f"{number:012d}")
        for index, number in enumerate(running_numbers(population))
    ]


def seed_cached(path: Path, population: Population, *, rng_seed: int = 20240601) -> str:
    """`seed` the (migrated) database at `path`, or, when the environment variable
    BENCH_SEED_CACHE names a folder, copy a database seeded earlier for the same population,
    seeding code, job columns and migrations (seeding a million jobs takes a minute, a copy
    seconds). Returns how it was made, for the report.

    A copy made from a cache entry is what seeding gives now: entries older than
    CACHE_MAX_AGE (its queued jobs must stay younger than the queue timeout) are made anew,
    and the running jobs' sending times are moved to the last RUNNING_SINCE.
    """
    started = time.monotonic()
    folder = os.environ.get(SEED_CACHE_ENV)
    if not folder:
        seed(path, population, rng=random.Random(rng_seed))
        return f"seeded in {time.monotonic() - started:.1f} s"
    cached = Path(folder) / f"seeded-{_cache_key(population, rng_seed)}.sqlite3"
    age = time.time() - cached.stat().st_mtime if cached.exists() else None
    if age is None or age > CACHE_MAX_AGE.total_seconds():
        seed(path, population, rng=random.Random(rng_seed))
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        shutil.copyfile(path, partial)
        partial.replace(cached)
        return f"seeded in {time.monotonic() - started:.1f} s (kept in {folder})"
    shutil.copyfile(cached, path)
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "UPDATE jobs SET submitted_at = ?1, updated_at = ?1 WHERE id = ?2", _sent_times(population, utcnow())
            )
    finally:
        connection.close()
    return f"copied from {cached} (seeded {age / 60:.0f} min ago) in {time.monotonic() - started:.1f} s"


def _cache_key(population: Population, rng_seed: int) -> str:
    """What a seeded database depends on: the population, the seeding code, the job store's
    columns and the migrations (the schema the seeding writes into)."""
    digest = hashlib.sha256(f"{population!r} {rng_seed} {sqlite3.sqlite_version}".encode())
    for module in (__file__, jobs_module.__file__):
        digest.update(Path(module).read_bytes())
    for migration in load_migrations():
        digest.update(migration.sql.encode())
    return digest.hexdigest()[:16]


def _insert_kind(connection: sqlite3.Connection, columns: dict[str, object], kind: int, in_group: int) -> None:
    names = list(columns)
    expressions = []
    params: list[object] = []
    for name in names:
        value = columns[name]
        if name in TIME_COLUMNS and value is not None:
            expressions.append(f"seed.{TIME_COLUMNS[name]}")
        elif name == "chat_id" and in_group:
            expressions.append("'-100' || seed.grp")
        elif isinstance(value, str) and (USER in value or NUMBER in value or VIDEO_NUMBER in value):
            if in_group:
                value = value.replace(f"-100{USER}", f"-100{'__GROUP__'}")
            expressions.append(
                "replace(replace(replace(replace(?, '__VIDEO_NUMBER__', seed.n), '__USER__', seed.user),"
                " '__GROUP__', seed.grp), '__NUMBER__', printf('%012d', seed.n))"
            )
            params.append(value)
        else:
            expressions.append("?")
            params.append(value)
    connection.execute(
        f"INSERT INTO jobs ({', '.join(names)}) SELECT {', '.join(expressions)} FROM seed"
        " WHERE seed.kind = ? AND seed.in_group = ? ORDER BY seed.n",
        [*params, kind, in_group],
    )
