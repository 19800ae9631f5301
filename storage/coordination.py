"""What bot processes sharing one database need of each other (`bot.ports.Coordinator`).

On PostgreSQL one connection of the process's own (a *session*) holds its process-wide
locks — session-level advisory locks, which the server releases when the session ends,
so a process that dies (even by `kill -9`: its socket closes) leaves them to the others —
and LISTENs for cache announcements, sent with NOTIFY. On SQLite there is one process:
it holds every lock, and its caches are kept right by the process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import asyncpg

from storage.postgres import PostgresDatabase
from storage.sql import SqlDatabase

log = logging.getLogger(__name__)

# The one NOTIFY channel; the payload names the topic.
CHANNEL = "pixverse_bot_cache"
# Session locks are named apart from the transaction-scoped ones of `Transaction.lock`
# (both kinds share PostgreSQL's one space of advisory lock keys).
_LOCK_PREFIX = "process-lock:"
# What a broken session raises (a connection the server ended may also be left in a state
# asyncpg calls internal).
_LOST = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.TimeoutError)


class LocalCoordinator:
    """One process (SQLite): every lock is this process's; there is no one to tell."""

    async def hold(self, lock: str) -> bool:
        return True

    async def announce(self, topic: str) -> None:
        """Nothing to send: the process that changed a setting has updated its own cache."""

    def signal(self, topic: str) -> None:
        """Nothing to send."""

    def subscribe(self, topic: str, forget: Callable[[], None]) -> None:
        """Nothing will be announced."""

    async def start(self) -> None:
        pass

    async def check(self) -> None:
        pass

    async def close(self) -> None:
        pass


class PostgresCoordinator:
    """Process-wide locks and cache announcements over one PostgreSQL session."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._session: asyncpg.Connection | None = None
        self._held: set[str] = set()
        self._opened_before = False
        self._signalled: set[str] = set()
        self._signals: set[asyncio.Task[None]] = set()
        self._subscribers: dict[str, list[Callable[[], None]]] = defaultdict(list)
        # One statement at a time on the session (asyncpg refuses overlapping ones).
        self._using = asyncio.Lock()

    async def start(self) -> None:
        async with self._using:
            await self._open()

    async def hold(self, lock: str) -> bool:
        async with self._using:
            session = await self._alive()
            if session is None:
                return False
            try:
                if lock in self._held:
                    # The session answered just now (_alive), so the lock is still ours.
                    return True
                taken = bool(
                    await session.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _LOCK_PREFIX + lock)
                )
            except _LOST as error:
                await self._lose(error)
                return False
            if taken:
                self._held.add(lock)
                log.info("this process now runs %r (a process-wide lock)", lock)
            return taken

    async def announce(self, topic: str) -> None:
        await self._db.write("SELECT pg_notify(?, ?)", (CHANNEL, topic))

    def signal(self, topic: str) -> None:
        if topic in self._signalled:
            return  # one is waiting to be sent: it tells of this change too
        self._signalled.add(topic)
        task = asyncio.create_task(self._send_signal(topic), name=f"announce-{topic}")
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _send_signal(self, topic: str) -> None:
        self._signalled.discard(topic)
        try:
            await self.announce(topic)
        except _LOST as error:
            log.warning("could not tell the other processes of %s: %r", topic, error)

    def subscribe(self, topic: str, forget: Callable[[], None]) -> None:
        self._subscribers[topic].append(forget)

    async def check(self) -> None:
        async with self._using:
            await self._alive()

    async def close(self) -> None:
        for task in list(self._signals):
            task.cancel()
        await asyncio.gather(*self._signals, return_exceptions=True)
        async with self._using:
            session, self._session = self._session, None
            self._held.clear()
            if session is not None:
                with contextlib.suppress(*_LOST):
                    await session.close(timeout=5)

    # --- under self._using

    async def _alive(self) -> asyncpg.Connection | None:
        """The session, after a round trip proved it alive; a lost one is replaced (None if
        the server cannot be reached now)."""
        if self._session is not None and self._session.is_closed():
            await self._lose(ConnectionError("the server closed the session"))
        if self._session is not None:
            try:
                await self._session.execute("SELECT 1")
                return self._session
            except _LOST as error:
                await self._lose(error)
        try:
            await self._open()
        except _LOST as error:
            log.warning("cannot open a database session for process-wide locks: %r", error)
            return None
        return self._session

    async def _open(self) -> None:
        session = await self._db.open_session()
        try:
            await session.add_listener(CHANNEL, self._heard)
        except BaseException:
            session.terminate()
            raise
        reopened, self._opened_before = self._opened_before, True
        self._session = session
        if reopened:
            # Announcements made while no session listened were missed: forget everything.
            for topic in list(self._subscribers):
                self._tell(topic)

    async def _lose(self, error: BaseException) -> None:
        log.warning("lost the database session (%r): process-wide locks %s are released", error, sorted(self._held))
        session, self._session = self._session, None
        self._held.clear()
        if session is not None:
            session.terminate()

    def _heard(self, _connection: object, _pid: int, _channel: str, topic: object) -> None:
        self._tell(str(topic))

    def _tell(self, topic: str) -> None:
        for forget in self._subscribers.get(topic, ()):
            try:
                forget()
            except Exception:
                log.exception("forgetting the cached %s failed", topic)


def coordinator_for(db: SqlDatabase) -> LocalCoordinator | PostgresCoordinator:
    """The coordinator for the database the bot runs on."""
    return PostgresCoordinator(db) if isinstance(db, PostgresDatabase) else LocalCoordinator()
