"""Bounded in-memory maps for everything the core keeps per user, chat or job.

The bot runs for months and meets users, groups and jobs without end: a plain dict
keyed by any of them only grows. Every such map is an `LruDict` (or an `LruSet`)
with a size limit — the least recently used entries are dropped first — and,
where an entry only matters for a while, an idle time after which it is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, MutableMapping, MutableSet
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruDict(MutableMapping[K, V]):
    """A dict of at most `max_size` entries that drops the least recently used first.

    With `ttl` (seconds, on `clock`), an entry not used for that long is gone too.
    Reading (`[]`, `get`, `in`) counts as use, as does writing.
    """

    def __init__(self, max_size: int, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be more than 0 seconds, not {ttl}")
        self.max_size = max_size
        self._ttl = ttl
        self._clock = clock
        # Oldest use first: (value, when it was last used).
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __getitem__(self, key: K) -> V:
        value, used = self._entries[key]
        now = self._clock()
        if self._expired(used, now):
            del self._entries[key]
            raise KeyError(key)
        self._entries.move_to_end(key)
        self._entries[key] = (value, now)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        now = self._clock()
        self._entries[key] = (value, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        self._drop_expired(now)

    def __delitem__(self, key: K) -> None:
        del self._entries[key]

    def __iter__(self) -> Iterator[K]:
        self._drop_expired(self._clock())
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._drop_expired(self._clock())
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def _expired(self, used: float, now: float) -> bool:
        return self._ttl is not None and now - used >= self._ttl

    def _drop_expired(self, now: float) -> None:
        # Entries are kept in order of use, so the expired ones are all at the front.
        while self._entries:
            _, used = next(iter(self._entries.values()))
            if not self._expired(used, now):
                break
            self._entries.popitem(last=False)


class LruSet(MutableSet[K]):
    """A set with `LruDict`'s bounds: at most `max_size` members, optionally each for `ttl` idle seconds."""

    def __init__(self, max_size: int, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._members: LruDict[K, None] = LruDict(max_size, ttl=ttl, clock=clock)

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __iter__(self) -> Iterator[K]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, value: K) -> None:
        self._members[value] = None

    def discard(self, value: K) -> None:
        self._members.pop(value, None)


class SharedCache(Mapping[K, V]):
    """A bounded cache (a read-only mapping) of values other processes may change (several bot processes on one
    database, `bot.ports.Coordinator`): `forget`, called when one announces a change,
    drops every entry, and a value read from the database while a `forget` came is
    returned but not kept (it may be the value from before the change)."""

    def __init__(self, max_size: int) -> None:
        self._entries: LruDict[K, V] = LruDict(max_size)
        self._generation = 0

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, else `load()`'s (kept unless forgotten meanwhile)."""
        if key in self._entries:
            return self._entries[key]
        generation = self._generation
        value = await load()
        if generation == self._generation:
            self._entries[key] = value
        return value

    def __getitem__(self, key: K) -> V:
        return self._entries[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: K, value: V) -> None:
        """Keep `value`, just written by this process."""
        self._entries[key] = value

    def forget(self) -> None:
        """Drop everything: it may have changed."""
        self._generation += 1
        self._entries.clear()


class SharedSnapshot(Generic[V]):
    """One value read whole from the database — a small table, held so that a command needs
    no read of it — which other processes may change (like `SharedCache`): `forget`, called
    when one announces a change, drops it, and a value read while a `forget` came is
    returned but not kept. Concurrent first uses share one read."""

    def __init__(self) -> None:
        self._value: V | None = None
        self._held = False
        self._generation = 0
        self._loading = asyncio.Lock()

    async def get_or_load(self, load: Callable[[], Awaitable[V]]) -> V:
        """The value held, else `load()`'s (held unless forgotten meanwhile)."""
        if self._held:
            return self._value  # type: ignore[return-value]
        async with self._loading:
            if self._held:  # read by the use this one waited for
                return self._value  # type: ignore[return-value]
            generation = self._generation
            value = await load()
            if generation == self._generation:
                self._value, self._held = value, True
            return value

    def forget(self) -> None:
        """Drop the value: it may have changed."""
        self._generation += 1
        self._value, self._held = None, False
