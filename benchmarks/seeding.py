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

import random
import sqlite3
from dataclasses import dataclass, fields
from datetime import timedelta
from itertools import accumulate
from pathlib import Path

from bot.domain import ChatRef, GenerationRequest, Job, JobKind, JobState, Platform, Requester, UserRef, utcnow
from storage.database import to_sql_time

# The store's own serialization, so seeded rows are what `SqlJobStore.add` writes.
from storage.jobs import _columns

USER = "__USER__"
NUMBER = "__NUMBER__"
ZIPF_EXPONENT = 0.8
# Finished jobs are spread over this much history; waiting and running ones are recent
# (younger than the queue timeout, or the scheduler's first pass would expire them).
HISTORY = timedelta(days=30)
RECENT = timedelta(minutes=30)
ACCOUNTS = ("alice@sandbox.local", "bob@sandbox.local")
PROMPT = "a fox running through snow at dusk"
SEED_CACHE_KIB = 512 * 1024
TIME_COLUMNS = ("created_at", "updated_at", "submitted_at", "finished_at")


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
        job = job.evolve(video_id=f"user:1000-pixverse:{ACCOUNTS[0]}-video:{NUMBER}", account=ACCOUNTS[0])
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
    rows = []
    for number, owner in enumerate(owners):
        if number < population.delivered:
            created = now - HISTORY - RECENT + timedelta(seconds=number * old_step)
            kind = 0
        else:
            created = now - RECENT + timedelta(seconds=(number - population.delivered) * new_step)
            kind = 1 if number < population.delivered + population.running else 2
        group = owner % population.group_every == 0
        rows.append((number, str(owner), f"{owner % population.groups:07d}", to_sql_time(created), kind, int(group)))
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
                "CREATE TEMP TABLE seed (n INTEGER PRIMARY KEY, user TEXT, grp TEXT, created TEXT, kind INTEGER,"
                " in_group INTEGER)"
            )
            connection.executemany("INSERT INTO seed VALUES (?, ?, ?, ?, ?, ?)", rows)
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


def _insert_kind(connection: sqlite3.Connection, columns: dict[str, object], kind: int, in_group: int) -> None:
    names = list(columns)
    expressions = []
    params: list[object] = []
    for name in names:
        value = columns[name]
        if name in TIME_COLUMNS and value is not None:
            expressions.append("seed.created")
        elif name == "chat_id" and in_group:
            expressions.append("'-100' || seed.grp")
        elif isinstance(value, str) and (USER in value or NUMBER in value):
            if in_group:
                value = value.replace(f"-100{USER}", f"-100{'__GROUP__'}")
            expressions.append(
                "replace(replace(replace(?, '__USER__', seed.user), '__GROUP__', seed.grp),"
                " '__NUMBER__', printf('%012d', seed.n))"
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
