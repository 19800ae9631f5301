"""SQLite storage: migrations, the JobStore and BlobStore ports, meta, persistence."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot import ports
from bot.domain import (
    ChatRef,
    GenerationRequest,
    Job,
    JobKind,
    JobState,
    Platform,
    Requester,
    ResultAction,
    UserRef,
    new_job_id,
    utcnow,
)
from storage import (
    INTEGRITY_ERRORS,
    Database,
    PostgresDatabase,
    SqlBlobStore,
    SqlDatabase,
    SqlJobAdmission,
    SqlJobStore,
    open_database,
    open_storage,
)
from storage.database import (
    BACKSTOP_AUTOCHECKPOINT_PAGES,
    Migration,
    _statements,
    load_migrations,
    to_sql_time,
)
from storage.governance import _fits
from storage.jobs import _columns
from storage.postgres import is_postgresql
from storage.sql import _CREATE_MIGRATIONS_TABLE, POSTGRESQL, SQLITE, Params, Transaction
from tests.postgres_server import PostgresServer

START = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ALICE = UserRef(Platform.TELEGRAM, "42", "Alice")
BOB = UserRef(Platform.DISCORD, "7", "Bob")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_job(user: UserRef = ALICE, *, created_at: datetime = START, **changes: Any) -> Job:
    requester = Requester(user=user, chat=ChatRef(user.platform, "chat-1"))
    return Job(
        id=new_job_id(),
        requester=requester,
        request=GenerationRequest(kind=JobKind.CREATE, user_prompt="a fox", prompt="a fox"),
        created_at=created_at,
        updated_at=created_at,
        **changes,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A directory that does not exist yet: open_database creates it.
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    async with await open_database(db_path) as database:
        yield database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jobs(store_db: SqlDatabase, clock: FakeClock) -> SqlJobStore:
    return SqlJobStore(store_db, clock=clock)


# --- database and migrations


async def test_migrations_apply_once_and_reopen_cleanly(db_path: Path) -> None:
    shipped = load_migrations()
    newest = shipped[-1].version
    assert [migration.version for migration in shipped] == list(range(1, newest + 1))
    async with await open_database(db_path) as db:
        assert await db.schema_version() == newest
    async with await open_database(db_path) as db:
        assert await db.schema_version() == newest
        assert await db.migrate(shipped) == []
        rows = await db.fetch_all("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [tuple(row) for row in rows] == [(m.version, m.name) for m in shipped]


async def test_pragmas(db: Database, db_path: Path) -> None:
    settings = {}
    for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
        row = await db.fetch_one(f"PRAGMA {pragma}")
        assert row is not None
        settings[pragma] = row[0]
    assert settings == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}
    assert db_path.with_name(db_path.name + "-wal").exists()


async def test_the_log_is_checkpointed_in_the_background_not_by_a_commit(db: Database, db_path: Path) -> None:
    """A commit never copies the log back itself (it did every ~1000 pages, holding up every
    unit queued behind it): the checkpointer thread does it soon after writes."""
    row = await db.fetch_one("PRAGMA wal_autocheckpoint")
    assert row is not None and row[0] == BACKSTOP_AUTOCHECKPOINT_PAGES
    await db.write("CREATE TABLE filler (data BLOB)")
    size_before = db_path.stat().st_size
    # 1 MiB: some 260 pages, fewer than SQLite's automatic threshold (1000), so before the
    # checkpointer nothing reached the database file until many more commits.
    await db.write("INSERT INTO filler VALUES (zeroblob(1048576))")
    deadline = asyncio.get_running_loop().time() + 10
    while db_path.stat().st_size < size_before + 1048576:
        assert asyncio.get_running_loop().time() < deadline, "the log was not checkpointed"
        await asyncio.sleep(0.01)


async def test_a_failing_migration_applies_nothing(db: Database) -> None:
    migrations = [
        Migration(1001, "good", "CREATE TABLE t1 (x);"),
        Migration(1002, "bad", "CREATE TABLE t2 (x); SELEC 1;"),
    ]
    before = await db.schema_version()
    with pytest.raises(sqlite3.OperationalError):
        await db.migrate(migrations)
    assert await db.schema_version() == before
    assert await db.fetch_one("SELECT name FROM sqlite_master WHERE name = 't1'") is None


async def test_migration_statements_split_like_sqlite(db: Database) -> None:
    # Semicolons inside a string, a comment and a trigger body end no statement.
    script = """
        CREATE TABLE notes (body TEXT); -- a comment; with a semicolon
        CREATE TRIGGER mark AFTER INSERT ON notes BEGIN
            UPDATE notes SET body = body || ';!' WHERE rowid = new.rowid;
        END;
        INSERT INTO notes (body) VALUES ('a;b');
        -- a trailing comment
    """
    assert await db.migrate([*load_migrations(), Migration(1001, "notes", script)]) == [1001]
    assert [row["body"] for row in await db.fetch_all("SELECT body FROM notes")] == ["a;b;!"]


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    async with await open_database(db_path) as db:
        await db.write("INSERT INTO schema_migrations VALUES (?, ?, ?)", (9999, "future", START.isoformat()))
    with pytest.raises(RuntimeError, match="newer than this bot knows"):
        await open_database(db_path)


async def test_memory_database() -> None:
    async with await open_database(":memory:") as db:
        store = SqlJobStore(db)
        job = make_job()
        await store.add(job)
        assert await store.get(job.id) == job


async def test_meta(database_url: str) -> None:
    calls: list[int] = []

    def make_secret() -> str:
        calls.append(1)
        return f"secret-{len(calls)}"

    async with await open_storage(database_url) as db:
        assert await db.get_meta("webhook_secret") is None
        assert await db.get_or_create_meta("webhook_secret", make_secret) == "secret-1"
        assert await db.get_or_create_meta("webhook_secret", make_secret) == "secret-1"
        await db.set_meta("mode", "polling")
        await db.set_meta("mode", "webhook")
    async with await open_storage(database_url) as db:
        assert await db.get_or_create_meta("webhook_secret", make_secret) == "secret-1"
        assert await db.get_meta("mode") == "webhook"
    assert len(calls) == 1


# --- units of work and group commit


@contextlib.asynccontextmanager
async def _thread_held(db: Database) -> AsyncIterator[None]:
    """Keep the database thread busy while the body queues units, so they form one batch."""
    started, release = threading.Event(), threading.Event()

    def hold(connection: sqlite3.Connection) -> bool:
        started.set()
        return release.wait(10)

    holding = asyncio.ensure_future(db.run(hold))
    assert await asyncio.to_thread(started.wait, 10)
    try:
        yield
        await asyncio.sleep(0)  # the body's units are queued (gather starts them on this turn)
    finally:
        release.set()
    assert await holding


async def _notes(db: Database) -> list[str]:
    await db.pragma("PRAGMA journal_mode")  # nothing to do with notes: waits for the units before it
    return [row["body"] for row in await db.fetch_all("SELECT body FROM notes ORDER BY rowid")]


async def test_units_waiting_together_share_one_commit(db: Database) -> None:
    await db.write("CREATE TABLE notes (body TEXT NOT NULL)")
    traced: list[str] = []
    await db.run(lambda connection: connection.set_trace_callback(traced.append))
    bodies = [f"note {number}" for number in range(100)]
    # Queued while the thread is busy, as a burst of commands queues its quota reservations.
    async with _thread_held(db):
        writes = asyncio.gather(*(db.write("INSERT INTO notes VALUES (?) RETURNING body", (b,)) for b in bodies))
    results = await writes
    await db.run(lambda connection: connection.set_trace_callback(None))
    assert [rows[0]["body"] for rows in results] == bodies
    assert await _notes(db) == bodies
    inserts = [index for index, statement in enumerate(traced) if statement.startswith("INSERT")]
    assert len(inserts) == 100
    # One transaction holds all hundred inserts: no commit between the first and the last.
    assert not [s for s in traced[inserts[0] : inserts[-1]] if s.startswith("COMMIT")], traced[:12]


async def test_a_failing_unit_undoes_only_itself(db: Database) -> None:
    await db.write("CREATE TABLE notes (body TEXT NOT NULL UNIQUE)")

    def two_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO notes VALUES ('half')")
        connection.execute("INSERT INTO notes VALUES ('before')")  # already there: fails

    async with _thread_held(db):
        batch = asyncio.gather(
            db.write("INSERT INTO notes VALUES ('before')"),
            db.run(two_then_fail),
            db.write("INSERT INTO notes VALUES ('after')"),
            db.write("INSERT INTO notes VALUES ('later'), ('after')"),  # one statement, fails whole
            return_exceptions=True,
        )
    outcomes = await batch
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert outcomes[0] == outcomes[2] == []
    assert await _notes(db) == ["before", "after"]


class Escaped(BaseException):
    """Not an Exception: what a unit might raise that ordinary handlers miss."""


async def test_every_caller_hears_back_whatever_its_unit_raises(db: Database) -> None:
    await db.write("CREATE TABLE notes (body TEXT NOT NULL)")

    def commits(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO notes VALUES ('committed behind the batch')")
        connection.commit()  # would commit its neighbours' writes too: refused

    def escapes(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO notes VALUES ('escaped')")
        raise Escaped

    def finds_nothing(connection: sqlite3.Connection) -> str:
        return next(iter(connection.execute("SELECT body FROM notes WHERE body = 'none'")))

    async with _thread_held(db):
        batch = asyncio.gather(
            db.write("INSERT INTO notes VALUES ('first')"),
            db.run(commits),
            db.run(escapes),
            db.run(finds_nothing),
            db.write("INSERT INTO notes VALUES ('last')"),
            return_exceptions=True,
        )
    first, committed, escaped, nothing, last = await asyncio.wait_for(batch, timeout=10)
    assert first == last == []
    assert isinstance(committed, sqlite3.DatabaseError) and "not authorized" in str(committed)
    assert isinstance(escaped, Escaped)
    assert isinstance(nothing, RuntimeError) and "StopIteration" in str(nothing)
    assert await _notes(db) == ["first", "last"]


async def test_reads_wait_for_no_other_writer(db_path: Path, db: Database) -> None:
    await db.write("CREATE TABLE notes (body TEXT NOT NULL)")
    await db.write("INSERT INTO notes VALUES ('kept')")
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a second process holding the write lock
        row = await asyncio.wait_for(db.fetch_one("SELECT body FROM notes"), timeout=2)
        assert row is not None and row["body"] == "kept"
    finally:
        other.close()


async def test_a_database_that_cannot_open_leaves_no_thread(tmp_path: Path) -> None:
    before = {thread.ident for thread in threading.enumerate()}
    with pytest.raises(sqlite3.OperationalError):
        await open_database(tmp_path)  # a directory, not a file
    left = [t for t in threading.enumerate() if t.ident not in before and t.name == "sqlite"]
    assert left == []


async def test_close_finishes_queued_work_and_refuses_more(db_path: Path) -> None:
    db = await open_database(db_path)
    await db.write("CREATE TABLE notes (body TEXT NOT NULL)")
    queued = [asyncio.ensure_future(db.write("INSERT INTO notes VALUES (?)", (str(n),))) for n in range(20)]
    await asyncio.sleep(0)  # the writes are queued before close is
    await db.close()
    await db.close()
    assert all(task.done() and task.exception() is None for task in queued)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await db.fetch_one("SELECT 1")
    async with await open_database(db_path) as reopened:
        assert len(await _notes(reopened)) == 20


async def test_a_unit_runs_on_the_database_thread_only(db: Database) -> None:
    connection = await db.run(lambda connection: connection)
    # sqlite3's own thread check: the connection cannot be used from the event loop.
    with pytest.raises(sqlite3.ProgrammingError, match="thread"):
        connection.execute("SELECT 1")


# --- jobs


def test_stores_implement_their_ports() -> None:
    def parameters(function: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    for port, store in (
        (ports.JobStore, SqlJobStore),
        (ports.BlobStore, SqlBlobStore),
        (ports.JobAdmission, SqlJobAdmission),
    ):
        for name, method in inspect.getmembers(port, inspect.isfunction):
            if not name.startswith("_"):
                assert parameters(getattr(store, name)) == parameters(method), name


async def test_job_round_trip(jobs: SqlJobStore) -> None:
    parent = make_job()
    requester = Requester(
        user=BOB,
        chat=ChatRef(Platform.DISCORD, "555", thread_id="556", group_id="900", is_private=False),
        reply_to="msg-1",
        context={"interaction_token": "tok", "expires": 1767225600, "nested": {"ids": [1, 2], "none": None}},
    )
    local = timezone(timedelta(hours=2))
    full = Job(
        id=new_job_id(),
        requester=requester,
        request=GenerationRequest(
            kind=JobKind.ANIMATE,
            user_prompt="waves",
            prompt="waves, anime style",
            model="v5",
            duration=8,
            quality="720p",
            aspect_ratio="9:16",
            seed=2147483647,
            audio=True,
            off_peak=True,
            style="Anime",
            negative_prompt="blur",
            character="hutao",
            motion=7,
            hd_quality=True,
            image_path="upload/abc.png",
            image_blob_id="blob-1",
            source_video_id="user:1-pixverse:a@b.c-video:9",
        ),
        state=JobState.DELIVERED,
        outcome=JobState.COMPLETED,
        action=ResultAction.REMIX,
        parent_id=parent.id,
        video_id="user:1-pixverse:a@b.c-video:10",
        account="a@b.c",
        result_url="https://media.pixverse.ai/v.mp4",
        failure=None,
        status_message_id="status-1",
        # A time in another zone comes back as the same instant in UTC.
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=local),
        updated_at=START,
        submitted_at=START + timedelta(seconds=1),
        finished_at=START + timedelta(seconds=90, microseconds=5),
        not_before=START + timedelta(minutes=2),
        attempts=3,
    )
    await jobs.add(parent)
    await jobs.add(full)
    assert await jobs.get(parent.id) == parent
    assert await jobs.get(full.id) == full
    assert await jobs.get("missing") is None


async def test_add_refuses_duplicates_and_naive_times(jobs: SqlJobStore) -> None:
    job = make_job()
    await jobs.add(job)
    with pytest.raises(INTEGRITY_ERRORS):
        await jobs.add(job)
    with pytest.raises(ValueError, match="naive"):
        await jobs.add(make_job(created_at=datetime(2026, 1, 1)))


async def test_concurrent_transitions_one_wins(jobs: SqlJobStore) -> None:
    job = make_job()
    await jobs.add(job)
    results = await asyncio.gather(
        *(jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account=f"acc-{n}") for n in range(10))
    )
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert winners[0].state is JobState.SUBMITTING
    assert await jobs.get(job.id) == winners[0]


async def test_transitions_race_across_connections(database_url: str, store_db: SqlDatabase) -> None:
    # Two processes (e.g. a restarted bot and a late webhook) share the database.
    db = store_db
    job = make_job(state=JobState.GENERATING)
    await SqlJobStore(db).add(job)
    async with await open_storage(database_url) as other:
        results = await asyncio.gather(
            SqlJobStore(db).transition(job.id, JobState.GENERATING, JobState.COMPLETED, video_id="v1"),
            SqlJobStore(other).transition(job.id, JobState.GENERATING, JobState.FAILED, failure="boom"),
        )
    assert sum(result is not None for result in results) == 1


async def test_illegal_transitions_raise(jobs: SqlJobStore) -> None:
    job = make_job()
    await jobs.add(job)
    with pytest.raises(ValueError, match="illegal"):
        await jobs.transition(job.id, JobState.QUEUED, JobState.COMPLETED)
    # Legal from QUEUED but not from DELIVERED: still refused.
    with pytest.raises(ValueError, match="illegal"):
        await jobs.transition(job.id, [JobState.QUEUED, JobState.DELIVERED], JobState.SUBMITTING)
    with pytest.raises(ValueError, match="expected state"):
        await jobs.transition(job.id, [], JobState.SUBMITTING)
    with pytest.raises(ValueError, match="cannot change"):
        await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, outcome=JobState.FAILED)
    assert await jobs.get(job.id) == job


async def test_transition_lifecycle(jobs: SqlJobStore, clock: FakeClock) -> None:
    job = make_job()
    await jobs.add(job)
    submitting = await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, attempts=1)
    assert submitting is not None and submitting.attempts == 1
    assert await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING) is None  # CAS lost

    submitted_at = clock.advance()
    running = await jobs.transition(
        job.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="vid-1", account="a@b.c", submitted_at=submitted_at
    )
    assert running is not None and running.updated_at == submitted_at and running.outcome is None
    assert await jobs.transition(job.id, JobState.SUBMITTED, JobState.GENERATING) is not None

    done_at = clock.advance(60)
    completed = await jobs.transition(
        job.id, [JobState.SUBMITTED, JobState.GENERATING], JobState.COMPLETED, result_url="https://example.com/v.mp4"
    )
    assert completed is not None
    assert (completed.state, completed.outcome, completed.finished_at) == (JobState.COMPLETED,) * 2 + (done_at,)

    clock.advance()
    delivered = await jobs.transition(job.id, JobState.COMPLETED, JobState.DELIVERED)
    assert delivered is not None
    assert (delivered.outcome, delivered.finished_at, delivered.has_video) == (JobState.COMPLETED, done_at, True)
    assert await jobs.get(job.id) == delivered


async def test_given_finished_at_is_kept(jobs: SqlJobStore) -> None:
    job = make_job()
    await jobs.add(job)
    finished = START - timedelta(hours=1)
    failed = await jobs.transition(job.id, JobState.QUEUED, JobState.FAILED, failure="bad", finished_at=finished)
    assert failed is not None
    assert (failed.outcome, failed.finished_at, failed.failure) == (JobState.FAILED, finished, "bad")


async def test_update(jobs: SqlJobStore, clock: FakeClock) -> None:
    job = make_job()
    await jobs.add(job)
    later = clock.advance(5)
    updated = await jobs.update(job.id, status_message_id="m-9", not_before=later, attempts=2)
    assert updated == job.evolve(status_message_id="m-9", not_before=later, attempts=2, updated_at=later)
    assert await jobs.get(job.id) == updated
    for refused in ("state", "outcome", "id"):
        with pytest.raises(ValueError, match="cannot change"):
            await jobs.update(job.id, **{refused: JobState.COMPLETED})
    with pytest.raises(TypeError, match="no field"):
        await jobs.update(job.id, colour="red")
    assert await jobs.update("missing", attempts=1) is None


async def test_update_of_requester_moves_its_query_columns(jobs: SqlJobStore) -> None:
    job = make_job(ALICE)
    await jobs.add(job)
    await jobs.update(job.id, requester=Requester(BOB, ChatRef(Platform.DISCORD, "c")))
    assert [found.id for found in await jobs.recent_for_user(BOB)] == [job.id]
    assert await jobs.recent_for_user(ALICE) == []


async def test_fair_place(jobs: SqlJobStore) -> None:
    # Two jobs created at the same instant are ordered by id.
    first, second = sorted((make_job(), make_job()), key=lambda job: job.id)
    third = make_job(created_at=START + timedelta(seconds=1))
    running = make_job(created_at=START - timedelta(seconds=1), state=JobState.SUBMITTED)
    for job in (third, second, running, first):
        await jobs.add(job)
    assert [await jobs.fair_place(job) for job in (first, second, third, running)] == [1, 2, 3, 0]

    await jobs.transition(first.id, JobState.QUEUED, JobState.SUBMITTING)
    assert [await jobs.fair_place(job) for job in (first, second, third)] == [0, 1, 2]
    assert [job.id for job in await jobs.in_states([JobState.QUEUED])] == [second.id, third.id]


async def queue_rows(db: SqlDatabase) -> dict[str, tuple[int, str | None]]:
    rows = await db.fetch_all("SELECT user_key, queued, oldest FROM queue_users WHERE queued > 0")
    return {row["user_key"]: (row["queued"], row["oldest"]) for row in rows}


async def queue_rows_recounted(db: SqlDatabase) -> dict[str, tuple[int, str | None]]:
    rows = await db.fetch_all(
        "SELECT user_key, COUNT(*) AS queued, MIN(created_at) AS oldest FROM jobs WHERE state = 'queued'"
        " GROUP BY user_key"
    )
    return {row["user_key"]: (row["queued"], row["oldest"]) for row in rows}


async def test_queue_users_follow_every_change_of_the_queue(store_db: SqlDatabase, jobs: SqlJobStore) -> None:
    carol = UserRef(Platform.TELEGRAM, "99", "Carol")
    alice_jobs = [make_job(ALICE, created_at=START + timedelta(seconds=i)) for i in range(3)]
    bob_job = make_job(BOB, created_at=START - timedelta(seconds=5))
    for job in [*alice_jobs, bob_job, make_job(BOB, state=JobState.GENERATING)]:
        await jobs.add(job)
    expected = {ALICE.key: (3, to_sql_time(START)), BOB.key: (1, to_sql_time(START - timedelta(seconds=5)))}
    assert await queue_rows(store_db) == expected == await queue_rows_recounted(store_db)

    # Sent, failed, back in the queue (keeping its place), handed to another user, deleted.
    await jobs.transition(alice_jobs[0].id, JobState.QUEUED, JobState.SUBMITTING)
    assert (await queue_rows(store_db))[ALICE.key] == (2, to_sql_time(START + timedelta(seconds=1)))
    await jobs.transition(alice_jobs[0].id, JobState.SUBMITTING, JobState.QUEUED)
    assert (await queue_rows(store_db))[ALICE.key] == (3, to_sql_time(START))
    await jobs.transition(alice_jobs[1].id, JobState.QUEUED, JobState.FAILED, failure="timed out")
    await jobs.update(alice_jobs[2].id, requester=Requester(user=carol, chat=ChatRef(carol.platform, "chat-1")))
    await jobs.update(alice_jobs[0].id, attempts=2)  # not a change of the queue
    await store_db.write("DELETE FROM jobs WHERE id = ?", (bob_job.id,))
    assert (
        await queue_rows(store_db)
        == await queue_rows_recounted(store_db)
        == {
            ALICE.key: (1, to_sql_time(START)),
            carol.key: (1, to_sql_time(START + timedelta(seconds=2))),
        }
    )


async def write_at_version(database_url: str, version: int, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """A new database of either backend brought to `version` (no further), with `statements`
    run on it as that version of the bot would have."""
    if is_postgresql(database_url):
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        async with PostgresDatabase(pool) as older:
            await older.migrate(load_migrations(POSTGRESQL)[:version])
            for sql, params in statements:
                await older.write(sql, params)
        return
    path = Path(database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(_CREATE_MIGRATIONS_TABLE)
    for migration in load_migrations()[:version]:
        for statement in _statements(migration.sql):
            connection.execute(statement)
        connection.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, to_sql_time(START))
        )
    for sql, params in statements:
        connection.execute(sql, params)
    connection.close()


async def test_migration_9_carries_the_queue_and_off_peak_jobs_over(database_url: str) -> None:
    """A database of the version before (migrations 1-8) with jobs in it answers the same
    after migration 9: its off-peak jobs are found as such, queue positions count them all."""
    ordinary = make_job(created_at=START)
    off_peak = make_job(BOB, created_at=START + timedelta(seconds=1))
    off_peak = off_peak.evolve(request=off_peak.request.with_changes(off_peak=True))
    running = make_job(created_at=START - timedelta(seconds=1), state=JobState.GENERATING)
    inserts = []
    for job in (ordinary, off_peak, running):
        # As version 8 wrote a job: no off_peak column, the request's JSON says it (and no
        # owner, which came with migration 10).
        columns = {
            name: value
            for name, value in _columns({f.name: getattr(job, f.name) for f in dataclasses.fields(job)}).items()
            if name not in {"off_peak", "owner"}
        }
        inserts.append(
            (
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                tuple(columns.values()),
            )
        )
    await write_at_version(database_url, 8, inserts)

    async with await open_storage(database_url) as db:
        assert await db.schema_version() >= 9
        jobs = SqlJobStore(db)
        now = START + timedelta(hours=1)
        assert [job.id for job in await jobs.queued_off_peak(now=now, limit=10)] == [off_peak.id]
        assert [job.id for job in await jobs.next_queued(BOB.key, now=now, limit=10, off_peak=False)] == []
        assert [job.id for job in await jobs.next_queued(BOB.key, now=now, limit=10, off_peak=True)] == [off_peak.id]
        assert await jobs.count_in_flight_by_user([JobState.GENERATING], off_peak=False) == {ALICE.key: 1}
        assert [await jobs.fair_place(job) for job in (ordinary, off_peak, running)] == [1, 2, 0]


async def test_queued_users_come_in_fair_order_a_page_at_a_time(jobs: SqlJobStore, clock: FakeClock) -> None:
    users = [UserRef(Platform.TELEGRAM, str(n), f"User {n}") for n in range(5)]
    # Older jobs first: user 4's is the oldest.
    queued = {user.key: make_job(user, created_at=START - timedelta(seconds=n)) for n, user in enumerate(users)}
    for job in queued.values():
        await jobs.add(job)
    # User 4 is served (a job of theirs goes out): they go last, after those never served.
    clock.advance()
    served = make_job(users[4], created_at=START + timedelta(seconds=9))
    await jobs.add(served)
    await jobs.transition(served.id, JobState.QUEUED, JobState.SUBMITTING)
    await jobs.transition(served.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="v")
    first = await jobs.queued_users(limit=2)
    rest = await jobs.queued_users(after=first[-1], limit=10)
    order = [user.user_key for user in first + rest]
    assert order == [users[3].key, users[2].key, users[1].key, users[0].key, users[4].key]
    assert (rest[-1].last_served, first[0].last_served) == (clock.now, None)
    assert {user.user_key for user in await jobs.queued_users_named([users[0].key, "nobody"])} == {users[0].key}


async def test_next_queued_reads_a_users_jobs_that_may_go_now(jobs: SqlJobStore) -> None:
    later = make_job(created_at=START + timedelta(seconds=1), not_before=START + timedelta(hours=1))
    off_peak = make_job(created_at=START + timedelta(seconds=2))
    off_peak = off_peak.evolve(request=off_peak.request.with_changes(off_peak=True))
    first, last = make_job(), make_job(created_at=START + timedelta(seconds=3))
    for job in (first, later, off_peak, last, make_job(BOB)):
        await jobs.add(job)
    now = START + timedelta(minutes=1)
    assert [j.id for j in await jobs.next_queued(ALICE.key, now=now, limit=10)] == [first.id, off_peak.id, last.id]
    assert [j.id for j in await jobs.next_queued(ALICE.key, now=now, limit=10, off_peak=False)] == [first.id, last.id]
    assert [j.id for j in await jobs.next_queued(ALICE.key, now=now, after=first, limit=1)] == [off_peak.id]
    assert [j.id for j in await jobs.queued_off_peak(now=now, limit=10)] == [off_peak.id]
    assert [j.id for j in await jobs.queued_slice(offset=3, limit=5)] == [off_peak.id, last.id]
    made_before = START + timedelta(seconds=1, milliseconds=500)
    assert len(await jobs.queued_slice(limit=10, created_before=made_before)) == 3  # first, later and Bob's


async def test_in_states_oldest_first(jobs: SqlJobStore) -> None:
    newest = make_job(created_at=START + timedelta(seconds=2), state=JobState.GENERATING)
    oldest = make_job(created_at=START, state=JobState.SUBMITTED)
    other = make_job(created_at=START + timedelta(seconds=1), state=JobState.QUEUED)
    for job in (newest, oldest, other):
        await jobs.add(job)
    assert await jobs.in_states([JobState.SUBMITTED, JobState.GENERATING]) == [oldest, newest]
    assert await jobs.in_states([JobState.QUEUED]) == [other]
    assert await jobs.in_states([]) == []


async def test_recent_for_user(jobs: SqlJobStore) -> None:
    alices = [make_job(ALICE, created_at=START + timedelta(seconds=n)) for n in range(4)]
    for job in [*alices, make_job(BOB)]:
        await jobs.add(job)
    assert await jobs.recent_for_user(ALICE, limit=3) == alices[::-1][:3]
    assert await jobs.recent_for_user(ALICE, limit=0) == []
    assert await jobs.recent_for_user(UserRef(Platform.CONSOLE, "nobody")) == []


async def test_find_by_video_id(jobs: SqlJobStore) -> None:
    job = make_job(state=JobState.SUBMITTING)
    await jobs.add(job)
    await jobs.add(make_job())
    assert await jobs.find_by_video_id("vid-7") is None
    submitted = await jobs.transition(job.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="vid-7")
    assert await jobs.find_by_video_id("vid-7") == submitted


async def test_count_in_flight_by_user(jobs: SqlJobStore) -> None:
    for user, state in ((ALICE, JobState.SUBMITTING), (ALICE, JobState.GENERATING), (BOB, JobState.SUBMITTED)):
        await jobs.add(make_job(user, state=state))
    await jobs.add(make_job(BOB, state=JobState.QUEUED))
    assert await jobs.count_in_flight_by_user() == {ALICE.key: 2, BOB.key: 1}
    assert await jobs.count_in_flight_by_user([JobState.QUEUED]) == {BOB.key: 1}


async def test_count_in_flight_by_user_for_off_peak_jobs_or_the_others(jobs: SqlJobStore) -> None:
    off_peak = GenerationRequest(kind=JobKind.CREATE, user_prompt="a fox", prompt="a fox", off_peak=True)
    await jobs.add(make_job(ALICE, state=JobState.SUBMITTED))
    await jobs.add(make_job(ALICE, state=JobState.SUBMITTED).evolve(request=off_peak))
    await jobs.add(make_job(BOB, state=JobState.GENERATING).evolve(request=off_peak))
    assert await jobs.count_in_flight_by_user(off_peak=False) == {ALICE.key: 1}
    assert await jobs.count_in_flight_by_user(off_peak=True) == {ALICE.key: 1, BOB.key: 1}
    assert await jobs.count_in_flight_by_user() == {ALICE.key: 2, BOB.key: 1}


async def test_job_queries_use_indexes(db: Database, clock: FakeClock) -> None:
    jobs = SqlJobStore(db, clock=clock)  # SQLite's planner, traced; PostgreSQL plans its own way
    job = make_job()
    await jobs.add(job)
    traced: list[str] = []
    await db.run(lambda connection: connection.set_trace_callback(traced.append))
    await jobs.get(job.id)
    await jobs.find_by_video_id("vid")
    await jobs.recent_for_user(ALICE)
    await jobs.in_states([JobState.QUEUED, JobState.SUBMITTED])
    await jobs.fair_place(job)
    await jobs.fair_slice(offset=0, limit=4)
    await jobs.count_in_flight_by_user()
    await jobs.count_in_flight_by_user(off_peak=False)
    # The scheduler's reads of the queue.
    [head] = await jobs.queued_users(limit=10)
    await jobs.queued_users(after=head, limit=10)
    await jobs.queued_users_named([ALICE.key])
    await jobs.next_queued(ALICE.key, now=utcnow(), after=job, limit=4, off_peak=False)
    await jobs.queued_off_peak(now=utcnow(), after=job, limit=4)
    await jobs.queued_slice(offset=10, limit=4)
    await jobs.queued_slice(limit=4, created_before=utcnow())
    await jobs.update(job.id, attempts=1)
    await jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING)
    await db.run(lambda connection: connection.set_trace_callback(None))
    # Each unit of work runs in a transaction of its own; the queries are the rest (a statement
    # that fires triggers is traced again for each trigger program).
    statements = list(dict.fromkeys(statement for statement in traced if not statement.endswith("-- batch")))
    assert len(statements) == 20, traced
    for statement in statements:
        plan = [row["detail"] for row in await db.fetch_all(f"EXPLAIN QUERY PLAN {statement}")]
        # A walk along an index in its order is fine when a LIMIT stops it.
        walks = " LIMIT " in statement and all("USING" in step and "INDEX" in step for step in plan)
        # queue_users has a row per user with queued jobs: the queue's length is a sum over it.
        # A subquery's own rows (a co-routine: fair_slice's per-user reads) are what it read.
        subqueries = {f"SCAN {step.split()[1]}" for step in plan if step.startswith("CO-ROUTINE")}
        scans = [
            step
            for step in plan
            if step.startswith("SCAN")
            and "queue_users" not in step
            and step != "SCAN CONSTANT ROW"
            and step not in subqueries
        ]
        assert walks or not scans, (statement, plan)
    # The triggers that keep queue_users in step find a user's oldest queued job by a seek.
    plan = await db.fetch_all(
        "EXPLAIN QUERY PLAN SELECT MIN(created_at) FROM jobs WHERE user_key = ? AND state = 'queued'", ("u",)
    )
    [step] = [row["detail"] for row in plan]
    assert step.startswith("SEARCH jobs USING") and "jobs_queued_by_user (user_key=?)" in step, step


async def test_queue_places_read_queue_users_indexes_alone(db: Database) -> None:
    """Queue places are sums over queue_users (a row per user with queued work: some 10,000 at
    scale). Read from an index that lacked the count, each row was looked up in the table, and
    the count per length was sorted: 4-7 ms per place, on the database thread (issue 14). Every
    read of queue_users behind a place, a band of places or a page of the fair order reads an
    index alone (migration 0011), in its order; only the one user asked about is looked up."""
    jobs = SqlJobStore(db)
    for user in (ALICE, BOB, UserRef(ALICE.platform, "99", "Carol")):
        for seconds in range(3):
            await jobs.add(make_job(user, created_at=START + timedelta(seconds=seconds)))
    [job, *_] = await jobs.next_queued(BOB.key, now=utcnow(), limit=1)
    traced: list[str] = []
    await db.run(lambda connection: connection.set_trace_callback(traced.append))
    await jobs.fair_place(job)
    await jobs.fair_ahead(ALICE.key, 2)
    await jobs.fair_slice(offset=4, limit=3)
    await jobs.queued_users(limit=10)
    await jobs.queued_total()
    await db.run(lambda connection: connection.set_trace_callback(None))
    statements = [statement for statement in traced if "queue_users" in statement and "-- batch" not in statement]
    assert len(statements) >= 6, statements  # fair_slice reads a round's users once or more
    for statement in statements:
        plan = [row["detail"] for row in await db.fetch_all(f"EXPLAIN QUERY PLAN {statement}")]
        assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
        reads = [
            step
            for step in plan
            if step.startswith(("SCAN", "SEARCH")) and " jobs " not in f"{step} " and step != "SCAN CONSTANT ROW"
        ]
        for step in reads:
            one_user = "(user_key=?)" in step
            assert one_user or "COVERING INDEX queue_users_" in step, (statement, step)


async def test_queued_off_peak_jobs_are_read_from_their_own_index(db: Database) -> None:
    """Not by a walk along every queued job (jobs_by_state) looking for the off-peak ones:
    with 100,000 queued, that walk held the database thread for some 60 ms each pass."""
    traced: list[str] = []
    await db.run(lambda connection: connection.set_trace_callback(traced.append))
    await SqlJobStore(db).queued_off_peak(now=utcnow(), limit=4)
    await db.run(lambda connection: connection.set_trace_callback(None))
    [statement] = [statement for statement in traced if not statement.endswith("-- batch")]
    plan = [row["detail"] for row in await db.fetch_all(f"EXPLAIN QUERY PLAN {statement}")]
    assert any("INDEX jobs_queued_off_peak" in step for step in plan), plan


async def test_the_quota_check_reads_the_ledger_index_alone(db: Database) -> None:
    """Every accepted command sums a user's (and group's) counted ledger rows: from the index
    alone, not row by row from the table (milliseconds for a busy user)."""
    for scope in ("user", "group"):
        sql, params = _fits(SQLITE, ports.QuotaCharge(scope, "someone", 10, START), 1)
        plan = [row["detail"] for row in await db.fetch_all(f"EXPLAIN QUERY PLAN SELECT {sql}", params)]
        assert any(f"COVERING INDEX quota_ledger_by_{scope}" in step for step in plan), plan


async def test_on_postgresql_off_peak_and_quota_reads_use_their_indexes(postgres_server: PostgresServer) -> None:
    """PostgreSQL's twin of the two tests above: the queued off-peak jobs are read from the
    partial index (its condition is the query's), the quota sums from the ledger indexes alone."""
    statements: list[str] = []

    class Recorded(PostgresDatabase):
        async def fetch_all(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
            statements.append(sql)
            return await super().fetch_all(sql, params)

    async with await open_storage(postgres_server.database()) as db:
        assert isinstance(db, PostgresDatabase)
        await SqlJobStore(Recorded(db._pool)).queued_off_peak(now=utcnow(), limit=4)
        [off_peak_sql] = statements
        quota_checks = [
            _fits(POSTGRESQL, ports.QuotaCharge(scope, "someone", 10, START), 1) for scope in ("user", "group")
        ]

        async def plans(transaction: Transaction) -> list[str]:
            # An empty table is read whole more cheaply than by any index: asked not to,
            # the planner shows which index can answer.
            await transaction.execute("SET LOCAL enable_seqscan = off")
            found = []
            for sql, params in [
                (off_peak_sql, (to_sql_time(START), 4)),
                *((f"SELECT {sql}", p) for sql, p in quota_checks),
            ]:
                rows = await transaction.fetch_all(f"EXPLAIN {sql}", params)
                found.append("\n".join(row[0] for row in rows))
            return found

        off_peak_plan, *quota_plans = await db.transaction(plans)
    assert "jobs_queued_off_peak" in off_peak_plan, off_peak_plan
    for scope, plan in zip(("user", "group"), quota_plans, strict=True):
        assert f"Index Only Scan using quota_ledger_by_{scope}" in plan, plan


# --- blobs and persistence


NO_QUOTA = ports.QuotaReservation(user_key=ALICE.key, group_key=None, amount=1, charges=())


async def admit_animate(db: SqlDatabase, image: bytes, content_type: str = "image/png", **changes: Any) -> Job:
    """An /animate job admitted with its image (the only way an image is stored)."""
    job = make_job(**changes)
    job = job.evolve(request=job.request.with_changes(kind=JobKind.ANIMATE, image_blob_id=new_job_id()))
    assert await SqlJobAdmission(db).admit(job, NO_QUOTA, ports.NewImage(image, content_type)) is None
    return job


async def test_blobs(store_db: SqlDatabase) -> None:
    blobs = SqlBlobStore(store_db)
    image = bytes(range(256)) * 10
    first = (await admit_animate(store_db, image)).request.image_blob_id
    second = (await admit_animate(store_db, b"", "image/webp")).request.image_blob_id
    assert first and second and first != second
    assert await blobs.get(first) == (image, "image/png")
    assert await blobs.get(second) == (b"", "image/webp")
    assert await blobs.total_bytes() == len(image)
    assert await blobs.delete(first) is True
    assert await blobs.delete(first) is False
    assert await blobs.get(first) is None
    assert await blobs.total_bytes() == 0


async def test_unreferenced_blobs_are_swept_and_waiting_ones_kept(store_db: SqlDatabase) -> None:
    blobs, jobs = SqlBlobStore(store_db), SqlJobStore(store_db)
    waiting = await admit_animate(store_db, b"queued")
    submitting = await admit_animate(store_db, b"submitting", state=JobState.SUBMITTING)
    uploaded = await admit_animate(store_db, b"uploaded", state=JobState.SUBMITTING)
    await jobs.update(uploaded.id, request=uploaded.request.with_changes(image_path="upload/x.png"))
    failed = await admit_animate(store_db, b"failed")
    await jobs.transition(failed.id, JobState.QUEUED, JobState.FAILED, failure="timed out")
    # An image whose job is gone, or was never written (left by an older version's two-step accept).
    await store_db.write(
        "INSERT INTO blobs (id, content_type, data, created_at) VALUES ('orphan', 'image/png', ?, '')", (b"\x00",)
    )

    assert await blobs.delete_unreferenced() == 3
    assert [await blobs.get(job.request.image_blob_id or "") is not None for job in (waiting, submitting)] == [
        True,
        True,
    ]
    assert await blobs.get(uploaded.request.image_blob_id or "") is None
    assert await blobs.get(failed.request.image_blob_id or "") is None
    assert await blobs.get("orphan") is None
    assert await blobs.delete_unreferenced() == 0


async def test_admission_refused_by_the_image_cap_writes_nothing(store_db: SqlDatabase) -> None:
    blobs, jobs = SqlBlobStore(store_db), SqlJobStore(store_db)
    await admit_animate(store_db, b"x" * 60)
    job = make_job()
    job = job.evolve(request=job.request.with_changes(kind=JobKind.ANIMATE, image_blob_id="second"))
    refused = await SqlJobAdmission(store_db).admit(
        job, NO_QUOTA, ports.NewImage(b"y" * 50, "image/png"), image_store_limit=100
    )
    assert refused == ports.ImageStoreFull(stored_bytes=60, limit=100)
    assert await jobs.get(job.id) is None and await blobs.get("second") is None
    assert await store_db.fetch_one("SELECT 1 FROM quota_ledger WHERE job_id = ?", (job.id,)) is None
    # What fits exactly is taken.
    fits = job.evolve(id=new_job_id())
    assert (
        await SqlJobAdmission(store_db).admit(
            fits, NO_QUOTA, ports.NewImage(b"y" * 40, "image/png"), image_store_limit=100
        )
        is None
    )
    assert await blobs.total_bytes() == 100


async def test_data_survives_reopen(database_url: str) -> None:
    job = make_job()
    async with await open_storage(database_url) as db:
        await SqlJobStore(db).add(job)
        blob_id = (await admit_animate(db, b"\x89PNG")).request.image_blob_id or ""
        moved = await SqlJobStore(db).transition(job.id, JobState.QUEUED, JobState.SUBMITTING)
    async with await open_storage(database_url) as db:
        assert await SqlJobStore(db).get(job.id) == moved
        assert await SqlBlobStore(db).get(blob_id) == (b"\x89PNG", "image/png")
