"""Jobs in SQL: `SqlJobStore` implements the core's `JobStore` port on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from enum import Enum
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import TypeAdapter

from bot.domain import (
    ALLOWED_TRANSITIONS,
    IN_FLIGHT_STATES,
    OUTCOME_STATES,
    GenerationRequest,
    Job,
    JobState,
    Platform,
    Requester,
    ResultAction,
    UserRef,
    utcnow,
)
from bot.instances import new_instance_id
from bot.ports import QueueUser
from storage.database import from_sql_time, to_sql_time
from storage.instances import LIVE_INSTANCES_SQL
from storage.sql import Row, SqlDatabase, Transaction, placeholders

T = TypeVar("T")
log = logging.getLogger(__name__)

# Pydantic (de)serializes the frozen dataclasses: enums by value, nested refs, and
# fields missing from rows written by an older version fall back to their defaults.
_REQUESTER = TypeAdapter(Requester)
_REQUEST = TypeAdapter(GenerationRequest)
# How many decoded requesters and requests are kept (each about a kilobyte).
DECODED_KEPT = 1024


# The same jobs are read again and again — the tracker's running jobs on every pass, the
# front of the queue by every scheduler pass — and decoding a row was most of what reading
# a job cost (some 15 µs, most of it parsing JSON: 3 ms for 200 running jobs, on the event
# loop). Requesters and requests are frozen, so one decoded value serves every row with the
# same text (a job's never change).
@functools.lru_cache(maxsize=DECODED_KEPT)
def _requester(text: str) -> Requester:
    return _REQUESTER.validate_json(text)


@functools.lru_cache(maxsize=DECODED_KEPT)
def _request(text: str) -> GenerationRequest:
    return _REQUEST.validate_json(text)


_JOB_FIELDS = tuple(field.name for field in fields(Job))
# The columns a Job is read from, in the order of its fields (each field has a column of its name).
JOB_COLUMNS = ", ".join(_JOB_FIELDS)
# `id` never changes; `state` (and the `outcome` it implies) change only by transition().
_NOT_CHANGEABLE = frozenset({"id", "state", "outcome"})


def _states(states: JobState | Iterable[JobState]) -> tuple[JobState, ...]:
    """One state or several, as a tuple without repeats."""
    # A JobState is a str, and so itself iterable: test for it first.
    if isinstance(states, JobState):
        return (states,)
    return tuple(dict.fromkeys(JobState(state) for state in states))


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """SQL column values for Job fields. The requester also fills the columns that
    jobs are queried by (platform, chat_id, user_key, group_key), the request `off_peak`."""
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if name == "requester":
            columns.update(
                requester=_REQUESTER.dump_json(value).decode(),
                platform=value.chat.platform.value,
                chat_id=value.chat.chat_id,
                user_key=value.user.key,
                group_key=value.chat.group_key,
            )
        elif name == "request":
            columns.update(request=_REQUEST.dump_json(value).decode(), off_peak=int(value.off_peak))
        elif isinstance(value, datetime):
            columns[name] = to_sql_time(value)
        elif isinstance(value, Enum):
            columns[name] = value.value
        else:
            columns[name] = value
    return columns


def _check_changes(changes: Mapping[str, Any]) -> None:
    unknown = changes.keys() - _JOB_FIELDS
    if unknown:
        raise TypeError(f"Job has no field(s) {sorted(unknown)}")
    refused = changes.keys() & _NOT_CHANGEABLE
    if refused:
        raise ValueError(f"cannot change {sorted(refused)} here: id is fixed; state changes only by transition()")


def _optional(convert: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else convert(value)


# How each column of JOB_COLUMNS becomes its Job field (None: as it is); NULL stays None.
_DECODER_OF: dict[str, Callable[[Any], Any]] = {
    "requester": _requester,
    "request": _request,
    "state": JobState,
    "outcome": JobState,
    "action": ResultAction,
    "created_at": from_sql_time,
    "updated_at": from_sql_time,
    "submitted_at": from_sql_time,
    "finished_at": from_sql_time,
    "not_before": from_sql_time,
    "deliver_after": from_sql_time,
}
_DECODERS = tuple(_DECODER_OF.get(name) for name in _JOB_FIELDS)


def _job(row: Row) -> Job:
    """The Job in a row of JOB_COLUMNS, read by position (by name, sqlite3.Row compares the
    name with each column's in turn)."""
    values = [row[index] for index in range(len(_DECODERS))]
    return Job(
        *[
            value if decode is None or value is None else decode(value)
            for decode, value in zip(_DECODERS, values, strict=True)
        ]
    )


def _queue_user(row: Row) -> QueueUser:
    return QueueUser(
        user_key=row["user_key"],
        queued=row["queued"],
        oldest=from_sql_time(row["oldest"]),
        last_served=from_sql_time(row["last_served"]) if row["last_served"] else None,
    )


def _served_sql(last_served: datetime | None) -> str:
    """queue_users.last_served: '' for never, which sorts before every time."""
    return "" if last_served is None else to_sql_time(last_served)


# A user's row of queue_users as fair_ahead needs it: where they stand in the fair order, how many queued.
_STANDING = ("last_served", "oldest", "queued")
# Per-user reads joined into one statement by JobStore.fair_slice (SQLite allows 500).
USERS_PER_UNION = 64
# Queued jobs, in SQL. Written out, not bound: SQLite uses an index made for queued jobs
# only (migration 0007) when the query itself says so.
QUEUED_SQL = "state = 'queued'"
# Jobs not finished yet, in SQL, word for word as the partial indexes of migration 0008 say it.
UNFINISHED_SQL = "state IN ('queued', 'submitting', 'submitted', 'generating')"
# Whether a row's request is off-peak (1) or not (0), in SQL: a copy of the request's field
# (migration 0009 on both backends), so that no query or index has to read the request's JSON for it.
OFF_PEAK_SQL = "off_peak"


async def count_unfinished_off_peak(transaction: Transaction, user_key: str) -> int:
    """The user's off-peak jobs not finished yet (queued, being sent or running), in the caller's unit."""
    unfinished = [state.value for state in JobState if state not in OUTCOME_STATES and state is not JobState.DELIVERED]
    row = await transaction.fetch_one(
        f"SELECT COUNT(*) FROM jobs WHERE user_key = ? AND state IN ({placeholders(len(unfinished))}) "
        f"AND {OFF_PEAK_SQL} = 1",
        [user_key, *unfinished],
    )
    assert row is not None  # an aggregate always answers one row
    return int(row[0])


class _Rounds:
    """The fair order's rounds, from `lengths`: how many users have each number of queued
    jobs, by that number ascending. Round r holds each user's r-th job."""

    def __init__(self, lengths: list[tuple[int, int]]) -> None:
        self._queued = [queued for queued, _ in lengths]
        # Running sums, so that a count of places is two look-ups, not a sum over every length:
        # _all_jobs[i], the jobs of the users with fewer than _queued[i]; _users_from[i], the
        # users with at least _queued[i].
        self._all_jobs = [0, *accumulate(queued * users for queued, users in lengths)]
        self._users_from = [*accumulate((users for _, users in reversed(lengths)), initial=0)][::-1]

    def places_through(self, rounds: int) -> int:
        """How many places the first `rounds` rounds hold: each user's first `rounds` jobs at most."""
        fewer = bisect_left(self._queued, rounds)  # the users with fewer jobs give all of theirs
        return self._all_jobs[fewer] + rounds * self._users_from[fewer]

    def holding(self, offset: int) -> int:
        """The round that holds place `offset + 1`: the first whose rounds so far hold more
        than `offset` (a binary search over the rounds); 0 when none does."""
        if not self._queued or self.places_through(self._queued[-1]) <= offset:
            return 0
        low, high = 1, self._queued[-1]
        while low < high:
            middle = (low + high) // 2
            if self.places_through(middle) > offset:
                high = middle
            else:
                low = middle + 1
        return low


async def insert_job(transaction: Transaction, job: Job) -> None:
    """Insert `job` in the caller's unit of work (see `SqlJobStore.add`)."""
    columns = _columns({name: getattr(job, name) for name in _JOB_FIELDS})
    # Column names come from Job's own fields, never from input; values are bound.
    await transaction.execute(
        f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders(len(columns))})",
        tuple(columns.values()),
    )


class SqlJobStore:
    """The `bot.ports.JobStore` port on SQLite or PostgreSQL. Every lookup is served by an index.

    `owner` is this process's instance id (`bot.instances`): every transition it makes
    records it as the job's owner, responsible for the job's next step (see `claim`).
    `clock` stamps `updated_at` and `finished_at`; tests pass a fake one.
    """

    def __init__(self, db: SqlDatabase, *, owner: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._owner = owner or new_instance_id()
        self._clock = clock

    @property
    def owner(self) -> str:
        """The instance id this store's transitions record as the jobs' owner."""
        return self._owner

    async def add(self, job: Job) -> None:
        """Insert a new job. A repeated id, or a `parent_id` naming no job, raises the
        backend's integrity error (`sqlite3.IntegrityError`, asyncpg's `IntegrityConstraintViolationError`).

        `requester.context` must hold JSON values only (it is stored as JSON).
        """
        await self._db.transaction(lambda transaction: insert_job(transaction, job))

    async def get(self, job_id: str) -> Job | None:
        row = await self._db.fetch_one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _optional(_job, row)

    async def transition(
        self, job_id: str, expected: JobState | Iterable[JobState], new_state: JobState, **changes: Any
    ) -> Job | None:
        """Move a job from one of `expected` to `new_state`, writing `changes` with it,
        in one compare-and-set UPDATE.

        Returns the updated job, or None when the job is not in an expected state (or
        does not exist). Raises ValueError for a move `ALLOWED_TRANSITIONS` forbids from
        any of `expected`: that is a bug in the caller, not a race. Entering an outcome
        state records it in `outcome` and stamps `finished_at` unless given.
        """
        from_states = _states(expected)
        new_state = JobState(new_state)
        if not from_states:
            raise ValueError("a transition needs at least one expected state")
        illegal = [state.value for state in from_states if new_state not in ALLOWED_TRANSITIONS[state]]
        if illegal:
            raise ValueError(f"illegal job transition {'/'.join(illegal)} -> {new_state.value}")
        _check_changes(changes)
        if new_state in OUTCOME_STATES:
            changes["outcome"] = new_state
            changes.setdefault("finished_at", self._clock())
        changes.setdefault("owner", self._owner)
        return await self._set(job_id, {"state": new_state, **changes}, only_in=from_states)

    async def update(self, job_id: str, **changes: Any) -> Job | None:
        """Change non-state fields (status message id, not_before, attempts …).

        Returns the updated job, or None if there is no such job. `state`, `outcome`
        and `id` are refused (ValueError); an unknown field is a TypeError.
        """
        _check_changes(changes)
        return await self._set(job_id, changes)

    async def _set(self, job_id: str, changes: Mapping[str, Any], only_in: tuple[JobState, ...] = ()) -> Job | None:
        """One atomic UPDATE of `changes` (plus updated_at), guarded by the job's state
        being one of `only_in` when given."""
        columns = _columns({"updated_at": self._clock(), **changes})
        # Column names were checked against Job's fields; values are bound.
        sql = f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?"
        params = [*columns.values(), job_id]
        if only_in:
            sql += f" AND state IN ({placeholders(len(only_in))})"
            params += [state.value for state in only_in]
        rows = await self._db.write(f"{sql} RETURNING {JOB_COLUMNS}", params)
        return _job(rows[0]) if rows else None

    async def in_states(self, states: Iterable[JobState]) -> list[Job]:
        """Jobs in any of `states`, oldest first."""
        wanted = _states(states)
        if not wanted:
            return []
        rows = await self._db.fetch_all(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ({placeholders(len(wanted))}) ORDER BY created_at, id",
            [state.value for state in wanted],
        )
        return [_job(row) for row in rows]

    async def claimable(self, states: Iterable[JobState], *, platforms: Iterable[Platform] | None = None) -> list[Job]:
        """Jobs in any of `states` this process owns, oldest first, after taking over those
        whose owner is gone (no owner, or one whose lease ran out: see `bot.instances`).

        Each take-over is a compare-and-set on the owner read, so of two processes taking
        over the same job at once exactly one gets it. With `platforms`, only jobs of those
        chat platforms (a process delivers only where its adapters run).
        """
        wanted = _states(states)
        if not wanted:
            return []
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ({placeholders(len(wanted))})"
        params: list[object] = [state.value for state in wanted]
        if platforms is not None:
            names = [Platform(platform).value for platform in platforms]
            if not names:
                return []
            sql += f" AND platform IN ({placeholders(len(names))})"
            params += names
        rows = await self._db.fetch_all(
            f"{sql} AND (owner IS NULL OR owner = ? OR owner NOT IN ({LIVE_INSTANCES_SQL})) ORDER BY created_at, id",
            [*params, self._owner, to_sql_time(self._clock())],
        )
        mine: list[Job] = []
        for job in map(_job, rows):
            taken = job if job.owner == self._owner else await self._take_over(job)
            if taken is not None:
                mine.append(taken)
        return mine

    async def claim(self, job_id: str, states: Iterable[JobState]) -> Job | None:
        """The job if it is in one of `states` and this process owns it, or has taken it over
        now from an owner that is gone; None otherwise (another live process owns it)."""
        wanted = _states(states)
        job = await self.get(job_id)
        if job is None or job.state not in wanted:
            return None
        if job.owner == self._owner:
            return job
        if job.owner is not None:
            row = await self._db.fetch_one(
                f"SELECT 1 FROM ({LIVE_INSTANCES_SQL}) AS live WHERE id = ?", (to_sql_time(self._clock()), job.owner)
            )
            if row is not None:
                return None  # its owner is alive and will see to it
        return await self._take_over(job)

    async def release(self, job_id: str) -> None:
        """Give the job up (no owner), if this process owns it: any process may claim it."""
        await self._db.write("UPDATE jobs SET owner = NULL WHERE id = ? AND owner = ?", (job_id, self._owner))

    async def _take_over(self, job: Job) -> Job | None:
        """Make this process the owner of `job`, if no one changed its state or owner since it
        was read (`updated_at` is left alone: recovery's grace period counts from it)."""
        previous = "owner IS NULL" if job.owner is None else "owner = ?"
        rows = await self._db.write(
            f"UPDATE jobs SET owner = ? WHERE id = ? AND state = ? AND {previous} RETURNING {JOB_COLUMNS}",
            [self._owner, job.id, job.state.value, *([] if job.owner is None else [job.owner])],
        )
        if not rows:
            return None
        if job.owner is not None:
            # INFO: after every restart a lone process takes over its predecessor's jobs.
            log.info("job %s (%s): taken over from bot process %s, which is gone", job.id, job.state, job.owner)
        return _job(rows[0])

    async def recent_for_user(self, user: UserRef, limit: int = 10) -> list[Job]:
        """A user's newest jobs first, at most `limit`."""
        rows = await self._db.fetch_all(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE user_key = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            # SQLite reads a negative LIMIT as "no limit".
            (user.key, max(limit, 0)),
        )
        return [_job(row) for row in rows]

    async def find_by_video_id(self, video_id: str) -> Job | None:
        """The job that made upstream video `video_id` (the newest, should two claim it)."""
        row = await self._db.fetch_one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE video_id = ? ORDER BY created_at DESC LIMIT 1", (video_id,)
        )
        return _optional(_job, row)

    # --- the queue, as the scheduler reads it: in pieces, never whole (bot/scheduler.py)

    async def queued_users(self, *, after: QueueUser | None = None, limit: int) -> list[QueueUser]:
        """Users with queued jobs in fair order — never served first, then served longest
        ago, then oldest job first — at most `limit`, starting after `after`."""
        sql = "SELECT user_key, queued, oldest, last_served FROM queue_users WHERE queued > 0"
        params: list[object] = []
        if after is not None:
            sql += " AND (last_served, oldest, user_key) > (?, ?, ?)"
            params += [_served_sql(after.last_served), to_sql_time(after.oldest), after.user_key]
        rows = await self._db.fetch_all(sql + " ORDER BY last_served, oldest, user_key LIMIT ?", [*params, limit])
        return [_queue_user(row) for row in rows]

    async def queued_users_named(self, user_keys: Iterable[str]) -> list[QueueUser]:
        """The queue rows of `user_keys` that have queued jobs (in no particular order)."""
        keys = list(dict.fromkeys(user_keys))
        if not keys:
            return []
        rows = await self._db.fetch_all(
            "SELECT user_key, queued, oldest, last_served FROM queue_users"
            f" WHERE queued > 0 AND user_key IN ({placeholders(len(keys))})",
            keys,
        )
        return [_queue_user(row) for row in rows]

    async def next_queued(
        self, user_key: str, *, now: datetime, after: Job | None = None, limit: int, off_peak: bool | None = None
    ) -> list[Job]:
        """The user's queued jobs that may be sent at `now` (not_before passed), oldest first,
        after `after`; at most `limit`. `off_peak` True or False: only off-peak jobs or only the others."""
        # Named, so that SQLite never prefers another index of queued jobs to this one,
        # which holds the user's only.
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs{self._db.dialect.index_hint('jobs_queued_by_user')}"
            f" WHERE user_key = ? AND {QUEUED_SQL} AND (not_before IS NULL OR not_before <= ?)"
        )
        params: list[object] = [user_key, to_sql_time(now)]
        if off_peak is not None:
            sql += f" AND {OFF_PEAK_SQL} = ?"
            params.append(int(off_peak))
        if after is not None:
            sql += " AND (created_at, id) > (?, ?)"
            params += [to_sql_time(after.created_at), after.id]
        rows = await self._db.fetch_all(sql + " ORDER BY created_at, id LIMIT ?", [*params, limit])
        return [_job(row) for row in rows]

    async def queued_off_peak(self, *, now: datetime, after: Job | None = None, limit: int) -> list[Job]:
        """Queued off-peak jobs that may be sent at `now`, oldest first, after `after`; at most `limit`."""
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs"
            f" WHERE {QUEUED_SQL} AND {OFF_PEAK_SQL} = 1 AND (not_before IS NULL OR not_before <= ?)"
        )
        params: list[object] = [to_sql_time(now)]
        if after is not None:
            sql += " AND (created_at, id) > (?, ?)"
            params += [to_sql_time(after.created_at), after.id]
        rows = await self._db.fetch_all(sql + " ORDER BY created_at, id LIMIT ?", [*params, limit])
        return [_job(row) for row in rows]

    async def queued_slice(
        self,
        *,
        offset: int = 0,
        after: Job | None = None,
        limit: int,
        created_before: datetime | None = None,
    ) -> list[Job]:
        """Queued jobs oldest first: `limit` of them from 0-based place `offset` (a walk along
        the index, reading no rows before it), counted from just after `after` when given;
        only those made before `created_before` when given."""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?"
        params: list[object] = [JobState.QUEUED.value]
        if after is not None:
            sql += " AND (created_at, id) > (?, ?)"
            params += [to_sql_time(after.created_at), after.id]
        if created_before is not None:
            sql += " AND created_at < ?"
            params.append(to_sql_time(created_before))
        rows = await self._db.fetch_all(sql + " ORDER BY created_at, id LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_job(row) for row in rows]

    async def count_in_flight_by_user(
        self, states: Iterable[JobState] = IN_FLIGHT_STATES, *, off_peak: bool | None = None
    ) -> dict[str, int]:
        """How many jobs each user has in `states` (default: submitting or running),
        keyed by `UserRef.key`; users with none are absent. For per-user limits and
        fair scheduling. `off_peak` True or False counts only off-peak or only other jobs."""
        wanted = _states(states)
        if not wanted:
            return {}
        sql = f"SELECT user_key, COUNT(*) AS jobs FROM jobs WHERE state IN ({placeholders(len(wanted))})"
        params: list[object] = [state.value for state in wanted]
        if off_peak is not None:
            sql += f" AND {OFF_PEAK_SQL} = ?"
            params.append(int(off_peak))
        rows = await self._db.fetch_all(sql + " GROUP BY user_key", params)
        return {row["user_key"]: row["jobs"] for row in rows}

    # --- a user's or a group's own jobs (/queue, /cancel: bot/cancellation.py)

    async def unfinished(self, *, user_key: str | None = None, group_key: str | None = None, limit: int) -> list[Job]:
        """The unfinished jobs (queued, being sent or running) of one user or of one group,
        oldest first, at most `limit`. Exactly one of `user_key` and `group_key` is given."""
        if (user_key is None) == (group_key is None):
            raise ValueError("name a user or a group, not both")
        column, key = ("user_key", user_key) if user_key is not None else ("group_key", group_key)
        # The column is one of two fixed names; the key is bound.
        rows = await self._db.fetch_all(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {column} = ? AND {UNFINISHED_SQL} ORDER BY created_at, id LIMIT ?",
            (key, max(limit, 0)),
        )
        return [_job(row) for row in rows]

    async def queued_rank(self, job: Job) -> int:
        """Which of its user's queued jobs `job` is: 1 for their oldest; 0 when it is not queued.
        Counts only that user's queued jobs older than it (their own index)."""
        rank, _ = await self._rank(job, standing=False)
        return rank

    async def _rank(self, job: Job, *, standing: bool) -> tuple[int, Row | None]:
        """`queued_rank`; with `standing`, also the user's queue_users row as `fair_ahead` needs
        it (None when they have none), in the same statement."""
        columns = "".join(f"(SELECT {name} FROM queue_users WHERE user_key = ?) AS {name}, " for name in _STANDING)
        row = await self._db.fetch_one(
            f"SELECT {columns if standing else ''}COUNT(*) AS older,"
            " EXISTS (SELECT 1 FROM jobs WHERE id = ? AND state = 'queued') AS queued_now"
            f" FROM jobs{self._db.dialect.index_hint('jobs_queued_by_user')}"
            f" WHERE user_key = ? AND {QUEUED_SQL} AND (created_at, id) < (?, ?)",
            (
                *([job.user.key] * len(_STANDING) if standing else []),
                job.id,
                job.user.key,
                to_sql_time(job.created_at),
                job.id,
            ),
        )
        assert row is not None  # an aggregate always answers one row
        rank = int(row["older"]) + 1 if row["queued_now"] else 0
        return rank, row if standing and row["queued"] is not None else None

    async def fair_ahead(self, user_key: str, rank: int) -> int:
        """How many other users' queued jobs the scheduler's fair order sends before the
        user's `rank`-th queued job (0 for a rank below 1): each user who comes before them
        in that order (queue_users' last_served, oldest, user_key) sends up to `rank` jobs
        first, each who comes after up to `rank - 1`. Sums over the users with queued jobs,
        read from queue_users' indexes alone (migration 0011), not the jobs."""
        row = await self._db.fetch_one(
            f"SELECT {', '.join(_STANDING)} FROM queue_users WHERE user_key = ?", (user_key,)
        )
        return await self._ahead(user_key, row, rank)

    async def _ahead(self, user_key: str, standing: Row | None, rank: int) -> int:
        """`fair_ahead` of the user whose queue_users row is `standing` (None: they have none).

        Every other user sends min(their queued, rank - 1) jobs first — a sum over the
        count index, less the user's own share — and those ahead in the fair order with at
        least `rank` queued send one more each: a count along the fair index up to the user.
        """
        if standing is None or rank < 1:
            return 0
        before = rank - 1
        ahead = f"queue_users{self._db.dialect.index_hint('queue_users_fair')}"
        # The limits are cast: PostgreSQL cannot infer a bare parameter's type in some places.
        limit = "CAST(? AS INTEGER)"
        row = await self._db.fetch_one(
            f"SELECT (SELECT COALESCE(SUM(queued), 0) FROM queue_users WHERE queued > 0 AND queued < {limit})"
            f" + {limit} * (SELECT COUNT(*) FROM queue_users WHERE queued > 0 AND queued >= {limit})"
            f" + (SELECT COUNT(*) FROM {ahead} WHERE queued > 0 AND queued >= {limit}"
            " AND (last_served, oldest, user_key) < (?, ?, ?)) AS ahead",
            (before, before, before, rank, standing["last_served"], standing["oldest"], user_key),
        )
        assert row is not None  # an aggregate always answers one row
        own = min(int(standing["queued"]), before)
        return int(row["ahead"]) - own

    async def fair_place(self, job: Job) -> int:
        """1-based place of a queued job in the scheduler's fair order — the place /queue
        shows and progress messages say; 0 when it is not queued. Its user's older queued
        jobs plus a sum over the users with queued jobs (fair_ahead), no walk along the queue."""
        rank, standing = await self._rank(job, standing=True)
        return rank + await self._ahead(job.user.key, standing, rank) if rank else 0

    async def fair_slice(self, *, offset: int, limit: int) -> list[Job]:
        """Queued jobs in the scheduler's fair order, `limit` of them from 0-based place
        `offset`: the place `fair_place` gives the first is `offset + 1`.

        The fair order goes in rounds: round r holds each user's r-th queued job, the
        users in queue_users' order (fair_ahead counts the same). So it reads queue_users
        — sums over it to find the round of `offset`, then the users of the rounds the
        slice crosses — and of each user met only their jobs in the slice, never the queue.
        """
        if limit <= 0:
            return []
        # At most √(2 × queued jobs) rows, however many users there are, read along the count
        # index (migration 0011) in its order: no sort.
        rows = await self._db.fetch_all(
            "SELECT queued, COUNT(*) AS users FROM queue_users WHERE queued > 0 GROUP BY queued ORDER BY queued"
        )
        rounds = _Rounds([(int(row["queued"]), int(row["users"])) for row in rows])
        round_ = rounds.holding(offset)
        if round_ == 0:
            return []
        skip = offset - rounds.places_through(round_ - 1)
        users = await self._round_users(round_, skip=skip, limit=limit)
        whole_round = skip == 0 and len(users) < limit  # every user of this round was read
        picks: list[tuple[str, int]] = [(user_key, round_) for user_key, _ in users]
        while len(picks) < limit:
            round_ += 1
            wanted = limit - len(picks)
            if whole_round:
                # A later round's users are this round's with enough jobs left: no read needed.
                users = [(user_key, queued) for user_key, queued in users if queued >= round_]
            else:
                users = await self._round_users(round_, skip=0, limit=wanted)
                whole_round = len(users) < wanted
            if not users:
                break
            picks += [(user_key, round_) for user_key, _ in users[:wanted]]
        return await self._jobs_at(picks)

    async def _round_users(self, round_: int, *, skip: int, limit: int) -> list[tuple[str, int]]:
        """(user_key, queued) of the users in round `round_` of the fair order (those with at
        least that many queued jobs), in order, `limit` of them after the first `skip`."""
        rows = await self._db.fetch_all(
            # Named, and `queued > 0` as the index says it, so that the walk in fair order reads
            # it alone (SQLite might otherwise prefer the count index and sort every user).
            f"SELECT user_key, queued FROM queue_users{self._db.dialect.index_hint('queue_users_fair')}"
            " WHERE queued > 0 AND queued >= ?"
            " ORDER BY last_served, oldest, user_key LIMIT ? OFFSET ?",
            (max(round_, 1), limit, skip),
        )
        return [(row["user_key"], int(row["queued"])) for row in rows]

    async def _jobs_at(self, picks: list[tuple[str, int]]) -> list[Job]:
        """The queued jobs named by (user_key, rank: 1 for their oldest), in the order given.

        A user's picks are consecutive ranks: one walk along their queued jobs each, all in one
        statement (a UNION ALL of per-user reads, plain SQL)."""
        first_rank: dict[str, int] = {}
        last_rank: dict[str, int] = {}
        for user_key, rank in picks:
            first_rank.setdefault(user_key, rank)
            last_rank[user_key] = rank
        by_place: dict[tuple[str, int], Job] = {}
        users = list(first_rank)
        for start in range(0, len(users), USERS_PER_UNION):
            reads, params = [], []
            for number, user_key in enumerate(users[start : start + USERS_PER_UNION]):
                reads.append(
                    f"SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs WHERE user_key = ? AND {QUEUED_SQL}"
                    f" ORDER BY created_at, id LIMIT ? OFFSET ?) AS user_{number}"
                )
                params += [user_key, last_rank[user_key] - first_rank[user_key] + 1, first_rank[user_key] - 1]
            found: dict[str, list[Job]] = {}
            for row in await self._db.fetch_all(" UNION ALL ".join(reads), params):
                job = _job(row)
                found.setdefault(job.user.key, []).append(job)
            for user_key, jobs in found.items():
                # A UNION ALL promises no order: each user's jobs are put back in theirs.
                jobs.sort(key=lambda job: (job.created_at, job.id))
                for rank, job in enumerate(jobs, start=first_rank[user_key]):
                    by_place[user_key, rank] = job
        return [by_place[pick] for pick in picks if pick in by_place]

    async def queued_total(self) -> int:
        """How many jobs are queued in all (a sum over the users with queued jobs)."""
        row = await self._db.fetch_one("SELECT COALESCE(SUM(queued), 0) AS queued FROM queue_users WHERE queued > 0")
        return int(row["queued"]) if row else 0

    async def recent_run_seconds(self, limit: int) -> list[float]:
        """How long the newest `limit` videos made took, from being sent to finishing (off-peak
        ones left out: they wait for their hours), newest first."""
        rows = await self._db.fetch_all(
            f"SELECT submitted_at, finished_at FROM jobs{self._db.dialect.index_hint('jobs_completed_by_finish')}"
            f" WHERE outcome = 'completed' AND submitted_at IS NOT NULL AND {OFF_PEAK_SQL} = 0"
            " ORDER BY finished_at DESC LIMIT ?",
            (max(limit, 0),),
        )
        return [
            (from_sql_time(row["finished_at"]) - from_sql_time(row["submitted_at"])).total_seconds() for row in rows
        ]

    async def request_cancel(self, job_id: str, requested_by: str) -> Job | None:
        """Mark a job being sent (SUBMITTING) to be cancelled once it moves on; None when it is
        not being sent (any more). One guarded UPDATE: the scheduler's next move of the job
        returns the mark with it."""
        return await self._set(job_id, {"cancel_requested_by": requested_by}, only_in=(JobState.SUBMITTING,))

    async def clear_cancel_request(self, job_id: str) -> None:
        """Forget a cancel that can no longer be done (the upstream no longer tracks the job)."""
        await self._db.write("UPDATE jobs SET cancel_requested_by = NULL WHERE id = ?", (job_id,))
