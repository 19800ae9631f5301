"""The SQLite database: one connection, schema migrations at open, a key/value table.

On SQLite (BOT_DATABASE a file), every store in `storage/` runs its SQL through a
`Database`: the SQLite `storage.sql.SqlDatabase` (`storage.postgres` is the other).
There is one sqlite3 connection per process, owned by one thread that runs units of work in order; many
units waiting at once share one transaction and one commit (group commit), so a
burst of commands does not pay a commit and a thread hand-over each.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from storage.sql import SQLITE, Params, SchemaAndMeta, Unit

# Re-exported: their home before PostgreSQL came, still imported from here.
from storage.sql import Migration as Migration
from storage.sql import from_sql_time as from_sql_time
from storage.sql import load_migrations as load_migrations
from storage.sql import to_sql_time as to_sql_time

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# RETURNING (used for compare-and-set that hands back the row) arrived in SQLite 3.35.
MIN_SQLITE_VERSION = (3, 35, 0)
# Set on every connection, after WAL (which lets reads go on while a write commits;
# set apart because its answer is checked). Under WAL, synchronous=NORMAL survives an
# application crash (a power cut may lose the last commits) and saves an fsync per
# write; SQLite leaves foreign keys off unless asked; busy_timeout waits out another
# process's lock (a backup, a second bot) instead of failing at once.
_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)
# Under WAL, SQLite copies the log back into the database (a checkpoint) inside the commit
# that takes the log past `wal_autocheckpoint` pages: about every 50 admissions on a large
# database, that one commit also wrote back and fsynced some 4 MB, and every unit queued
# behind it waited (the accept path's p99 was ten times its median). A checkpointer thread
# with a connection of its own does it instead, soon after writes, without blocking the
# database thread (a PASSIVE checkpoint never takes the write lock). The automatic one
# stays as a backstop, far out, for when the checkpointer cannot keep up or has stopped.
BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000
# At most one checkpoint per this many seconds, so a burst of commits costs one, not one each.
CHECKPOINT_EVERY = 0.5


def _statements(script: str) -> list[str]:
    """The statements of a SQL script, in order.

    sqlite3's executescript() commits any open transaction first, which would break
    all-or-nothing migrations, so statements are run one by one. complete_statement()
    knows that a semicolon in a string, a comment or a trigger body ends nothing.
    """
    statements: list[str] = []
    start = 0
    for end, char in enumerate(script, start=1):
        if char == ";" and sqlite3.complete_statement(script[start:end]):
            statements.append(script[start:end])
            start = end
    if script[start:].strip():
        # A trailing comment runs as a no-op; an unfinished statement fails loudly.
        statements.append(script[start:])
    return statements


T = TypeVar("T")
# A unit of work: a synchronous function of the connection, run on the database thread.
Work = Callable[[sqlite3.Connection], T]
# How many queued units one transaction may take. Large enough to absorb a burst of
# commands in one commit; small enough that the first caller of a batch is not kept long.
MAX_BATCH = 256


class _Shape(enum.Enum):
    """What a unit of work is, which decides how it joins a batch."""

    # One reading statement: needs no savepoint, a batch of reads alone takes no write lock,
    # and one alone is its own transaction (SQLite's autocommit), so it runs without BEGIN/COMMIT.
    READ = "read"
    # Writes (one statement or several): a SAVEPOINT makes it all or nothing in its batch.
    WRITE = "write"
    # Runs by itself, outside any transaction (PRAGMAs that SQLite ignores inside one).
    ALONE = "alone"


@dataclass(slots=True)
class _Unit:
    work: Work[Any]
    future: asyncio.Future[Any]
    shape: _Shape


@dataclass(slots=True)
class _Stop:
    closed: asyncio.Future[None]


_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]

# The thread's own transaction statements. The trailing comment keeps their text apart
# from anything a unit might run, so sqlite3's statement cache never hands a unit one of
# these already-authorised statements (see `_GroupCommitThread._authorise`).
_BEGIN_WRITE = "BEGIN IMMEDIATE -- batch"
_BEGIN_READ = "BEGIN DEFERRED -- batch"
_COMMIT = "COMMIT -- batch"
_ROLLBACK = "ROLLBACK -- batch"
_SAVEPOINT = "SAVEPOINT unit -- batch"
_RELEASE = "RELEASE unit -- batch"
_ROLLBACK_UNIT = "ROLLBACK TO unit -- batch"
_TRANSACTION_ACTIONS = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})


class _Checkpointer:
    """Checkpoints the WAL from a thread and connection of its own (see BACKSTOP_AUTOCHECKPOINT_PAGES).

    The database thread calls `wrote()` after each commit that wrote; the checkpointer wakes,
    copies what it can back into the database, then rests CHECKPOINT_EVERY seconds, so the
    log stays small while the commits never wait for a checkpoint.
    """

    def __init__(self, location: str) -> None:
        self._location = location
        self._written = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """A commit wrote to the log (called on the database thread; costs a flag test)."""
        if not self._written.is_set():
            self._written.set()

    def stop(self) -> None:
        self._stopped.set()
        self._written.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            connection = sqlite3.connect(self._location, isolation_level=None)
        except sqlite3.Error:
            log.exception("the WAL checkpointer could not open the database; SQLite's own checkpoints remain")
            return
        try:
            # Under WAL a checkpoint fsyncs the log before copying it and the database after
            # (synchronous=NORMAL as on the main connection): as durable as the automatic one.
            connection.execute("PRAGMA synchronous = NORMAL")
            while self._written.wait() and not self._stopped.is_set():
                self._written.clear()
                try:
                    # PASSIVE copies what no reader still needs and waits for no one; a busy
                    # answer (another process checkpointing) only means "next time".
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    log.warning("WAL checkpoint failed (SQLite's own checkpoints remain): %s", error)
                self._stopped.wait(CHECKPOINT_EVERY)
        finally:
            connection.close()


class _GroupCommitThread:
    """The one thread that owns the sqlite3 connection and runs every unit of work.

    Units queue up from the event loop (one loop per database). The thread takes all that
    are waiting (up to MAX_BATCH) and runs them in one transaction, each all or nothing
    (a SAVEPOINT around each unit that writes), so a failing unit undoes only itself;
    then it commits once and hands every result back to the loop in one wake-up. Idle,
    a batch is a single unit, as with a plain connection; under a burst, a hundred quota
    reservations and job inserts cost one commit and one wake-up instead of a hundred of
    each. No caller hears "done" before the commit, and every caller hears back.

    Units may not begin, commit or roll back themselves: an authoriser refuses it, since
    a unit that committed would commit its neighbours' writes behind their backs.
    """

    def __init__(self, location: str) -> None:
        self._location = location
        self._queue: queue.SimpleQueue[_Unit | _Stop] = queue.SimpleQueue()
        # An item taken from the queue that could not join the batch: the next batch's first.
        self._held: _Unit | _Stop | None = None
        self._thread = threading.Thread(target=self._serve, name="sqlite", daemon=True)
        self._stopping: asyncio.Future[None] | None = None
        self._controlling = False  # the thread itself is running a transaction statement
        self.checkpointer: _Checkpointer | None = None  # set once the database is in WAL mode

    async def start(self) -> None:
        opened = asyncio.get_running_loop().create_future()
        self._thread.start()
        self._queue.put(_Unit(_nothing, opened, _Shape.ALONE))
        await opened

    def submit(self, work: Work[T], shape: _Shape) -> asyncio.Future[T]:
        if self._stopping is not None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Unit(work, future, shape))
        return future

    async def stop(self) -> None:
        """Run what is queued, then close the connection and end the thread (idempotent)."""
        if self.checkpointer is not None:
            # First, so that closing the last connection checkpoints and removes the log as
            # before. It wakes at once: the wait is at most a checkpoint under way.
            checkpointer, self.checkpointer = self.checkpointer, None
            checkpointer.stop()
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_future()
            if self._thread.is_alive():
                self._queue.put(_Stop(self._stopping))
            else:
                self._stopping.set_result(None)
        await asyncio.shield(self._stopping)
        # Answering the stop is the thread's last act, so this waits microseconds; after
        # it, close() has left no thread behind (tests and clean shutdowns count on that).
        self._thread.join(timeout=5)

    # --- on the database thread

    def _serve(self) -> None:
        try:
            # Made on this thread, so sqlite3's own check refuses its use from any other.
            # isolation_level=None: no implicit transactions; batches open their own.
            connection = sqlite3.connect(self._location, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.set_authorizer(self._authorise)
        except Exception as error:
            self._fail_all(error)
            return
        batch: list[_Unit] = []
        try:
            while not isinstance(taken := self._next_batch(), _Stop):
                batch = taken
                if batch[0].shape is _Shape.ALONE or (len(batch) == 1 and batch[0].shape is _Shape.READ):
                    _hand_back(_run_alone(connection, batch[0]))
                else:
                    _hand_back(self._run_batch(connection, batch))
                batch = []
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            _hand_back([(taken.closed, None, None)])
        except BaseException as error:
            # A bug here must not leave anyone waiting: the batch under way and everything
            # queued after it hear that the database thread stopped.
            log.exception("the database thread stopped")
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            stopped = sqlite3.OperationalError(f"the database thread stopped: {error!r}")
            _hand_back([(unit.future, None, stopped) for unit in batch])
            self._fail_all(stopped)

    def _authorise(self, action: int, *_: object) -> int:
        if action in _TRANSACTION_ACTIONS and not self._controlling:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _control(self, connection: sqlite3.Connection, statement: str) -> None:
        self._controlling = True
        try:
            connection.execute(statement)
        finally:
            self._controlling = False

    def _take(self) -> _Unit | _Stop:
        """The next item: the one held back from the last batch, else the queue's (waiting for one)."""
        item = self._held or self._queue.get()
        self._held = None
        return item

    def _next_batch(self) -> list[_Unit] | _Stop:
        """The units waiting now, in order; a unit that must run alone ends the batch."""
        first = self._take()
        if isinstance(first, _Stop):
            return first
        batch = [first]
        while first.shape is not _Shape.ALONE and len(batch) < MAX_BATCH:
            try:
                following = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(following, _Stop) or following.shape is _Shape.ALONE:
                self._held = following
                break
            batch.append(following)
        return batch

    def _run_batch(self, connection: sqlite3.Connection, batch: list[_Unit]) -> list[_Outcome]:
        """Run `batch` in one transaction: each unit all or nothing, one commit for all."""
        shared = len(batch) > 1  # a lone unit needs no savepoint: the transaction is its own
        reads_only = all(unit.shape is _Shape.READ for unit in batch)
        outcomes: list[_Outcome] = []
        try:
            # IMMEDIATE takes SQLite's write lock now, so another process cannot make the
            # transaction fail half-way with "database is locked"; reads need no lock.
            self._control(connection, _BEGIN_READ if reads_only else _BEGIN_WRITE)
            for unit in batch:
                guarded = shared and unit.shape is _Shape.WRITE
                if guarded:
                    self._control(connection, _SAVEPOINT)
                try:
                    outcomes.append((unit.future, unit.work(connection), None))
                except BaseException as error:
                    if not shared or not connection.in_transaction:
                        # Alone, or an error (disk full, I/O) after which SQLite rolled the
                        # whole transaction back: the batch fails as one.
                        raise
                    if guarded:
                        self._control(connection, _ROLLBACK_UNIT)
                    outcomes.append((unit.future, None, error))
                if not connection.in_transaction:
                    # The unit swallowed an error that ended the transaction: what it wrote
                    # since went straight to disk, what came before is gone. Fail them all.
                    raise sqlite3.OperationalError("the transaction ended inside a unit of work")
                if guarded:
                    self._control(connection, _RELEASE)
            self._control(connection, _COMMIT)
            if not reads_only and self.checkpointer is not None:
                self.checkpointer.wrote()
        except BaseException as error:
            # Nothing of the batch is kept: a unit that had failed on its own keeps its own
            # error; every other one hears of this one, in an exception of its own.
            if connection.in_transaction:
                self._control(connection, _ROLLBACK)
            own = {id(future): unit_error for future, _, unit_error in outcomes if unit_error is not None}
            return [(unit.future, None, own.get(id(unit.future)) or _batch_error(error, shared)) for unit in batch]
        return outcomes

    def _fail_all(self, error: BaseException) -> None:
        """Answer everything queued (and every later submit) with `error`, until stopped."""
        while True:
            item = self._take()
            if isinstance(item, _Stop):
                _hand_back([(item.closed, None, None)])
                return
            _hand_back([(item.future, None, error)])


def _nothing(connection: sqlite3.Connection) -> None:
    """The unit that answers once the connection is open."""


def _drive(unit: Unit[T], connection: sqlite3.Connection) -> T:
    """Run an async unit of work to its end on the database thread, where no event loop runs.

    Its awaits are `SqliteTransaction`'s, which never suspend: the coroutine ends at
    its first step. One that does suspend awaited something else, which is a bug.
    """
    coroutine = unit(SqliteTransaction(connection))
    try:
        coroutine.send(None)  # type: ignore[attr-defined]  # a coroutine, as `async def` makes
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()  # type: ignore[attr-defined]
    raise RuntimeError("a unit of work awaited something other than its transaction's statements")


class SqliteTransaction:
    """`storage.sql.Transaction` on the database thread's connection: every statement
    runs at once (the awaits never suspend)."""

    dialect = SQLITE

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return self._connection.execute(sql, params).fetchone()  # type: ignore[no-any-return]

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return self._connection.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._connection.execute(sql, params).rowcount

    async def lock(self, keys: Iterable[str]) -> None:
        """Nothing to do: every unit runs in an IMMEDIATE transaction, which holds
        SQLite's one write lock (across processes too) from its start."""

    async def run_script(self, script: str) -> None:
        """Run the script's statements one by one (see `_statements`)."""
        for statement in _statements(script):
            self._connection.execute(statement)


def _run_alone(connection: sqlite3.Connection, unit: _Unit) -> list[_Outcome]:
    try:
        return [(unit.future, unit.work(connection), None)]
    except BaseException as error:
        return [(unit.future, None, error)]


def _batch_error(error: BaseException, shared: bool) -> BaseException:
    """What a unit hears when its batch failed: the error itself when the unit was alone,
    else an OperationalError of its own (the cause attached), so callers never share one."""
    if not shared:
        return error
    own = sqlite3.OperationalError(f"the transaction this unit ran in failed: {error}")
    own.__cause__ = error
    return own


def _hand_back(outcomes: list[_Outcome]) -> None:
    """Give the results to their loop in one wake-up (a loop that has closed hears nothing)."""
    if not outcomes:
        return
    loop = outcomes[0][0].get_loop()
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():  # its caller was cancelled; the unit ran all the same
            continue
        if error is None:
            future.set_result(result)
        elif isinstance(error, StopIteration):
            # A future refuses StopIteration (it would end the awaiting coroutine silently).
            future.set_exception(RuntimeError(f"a unit of work raised {error!r}"))
        else:
            future.set_exception(error)


class Database(SchemaAndMeta):
    """An open SQLite database. Use `open_database()` to get one; close it when done
    (or use it as `async with`).

    Every statement runs on one thread (see `_GroupCommitThread`); `run` runs a whole
    unit of work there, all or nothing, without handing the loop back in between.
    """

    dialect = SQLITE

    def __init__(self, thread: _GroupCommitThread) -> None:
        self._thread = thread

    async def close(self) -> None:
        """Finish the queued work and close the connection (idempotent)."""
        await self._thread.stop()

    # --- running SQL

    async def run(self, work: Work[T]) -> T:
        """Run `work(connection)` atomically: its writes are all kept or, if it raises,
        none are.

        It runs on the database thread, so it must not touch the event loop, and it must
        return plain values (rows read to the end, not cursors). It may not begin, commit
        or roll back (refused). Once queued it runs even if the awaiting task is cancelled.
        """
        return await self._thread.submit(work, _Shape.WRITE)

    async def transaction(self, unit: Unit[T]) -> T:
        """Run the async `unit` atomically, as `run` does (see `storage.sql.SqlDatabase`)."""
        return await self.run(lambda connection: _drive(unit, connection))

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row a query answers, or None."""
        return await self._thread.submit(lambda connection: connection.execute(sql, params).fetchone(), _Shape.READ)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Every row a query answers."""
        return await self._thread.submit(lambda connection: connection.execute(sql, params).fetchall(), _Shape.READ)

    async def write(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run one writing statement; returns its RETURNING rows."""
        return await self.run(lambda connection: connection.execute(sql, params).fetchall())

    async def pragma(self, statement: str) -> sqlite3.Row | None:
        """Run a PRAGMA outside any transaction (SQLite ignores some inside one)."""
        return await self._thread.submit(lambda connection: connection.execute(statement).fetchone(), _Shape.ALONE)


async def open_database(path: Path | str) -> Database:
    """Open (creating if needed) the database at `path` and bring its schema up to date.

    `":memory:"` gives a private in-memory database, for tests.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the bot needs "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer"
        )
    location = str(path)
    if location != MEMORY:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    thread = _GroupCommitThread(location)
    database = Database(thread)
    try:
        await thread.start()
        mode = await database.pragma("PRAGMA journal_mode = WAL")
        if location != MEMORY and (mode is None or mode[0] != "wal"):
            log.warning("SQLite refused WAL mode for %s (journal_mode=%s)", location, mode and mode[0])
        for pragma in _PRAGMAS:
            await database.pragma(pragma)
        if location != MEMORY and mode is not None and mode[0] == "wal":
            await database.pragma(f"PRAGMA wal_autocheckpoint = {BACKSTOP_AUTOCHECKPOINT_PAGES}")
            thread.checkpointer = _Checkpointer(location)
            thread.checkpointer.start()
        await database.migrate(load_migrations(SQLITE))
    except BaseException:
        await database.close()
        raise
    return database


class BackupError(Exception):
    """A backup could not be made; `str()` says why, for the operator."""


def backup_database(source: Path | str, target: Path | str) -> int:
    """Copy the database at `source` to the new file `target` with SQLite's online backup API.

    Safe while the bot runs: the copy is a consistent snapshot (WAL included), and the
    bot's writes wait at most a moment. The container image has no sqlite3 program,
    so this is how an operator backs up. Returns the number of pages copied.
    """
    source, target = Path(source), Path(target)
    if str(source) == MEMORY or not source.is_file():
        raise BackupError(f"there is no database at {source} (BOT_DATABASE)")
    if target.exists():
        raise BackupError(f"{target} already exists; give the backup a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    live = sqlite3.connect(source)
    copy = sqlite3.connect(target)
    try:
        live.execute("PRAGMA busy_timeout = 5000")
        live.backup(copy)
        (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise BackupError(f"the copy at {target} failed SQLite's check: {verdict}")
        (pages,) = copy.execute("PRAGMA page_count").fetchone()
    except (sqlite3.Error, BackupError) as exc:
        copy.close()
        target.unlink(missing_ok=True)  # never leave a half-made backup behind
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"copying {source} failed: {exc}") from None
    finally:
        live.close()
    copy.close()
    return int(pages)
