"""Several bot processes on one database (README "Scaling out").

Each running process is an *instance*: it registers under a fresh id with a lease, and
renews the lease (a heartbeat) while it lives. A job records the instance that moved it
last as its owner (`JobStore.claimable`, `JobStore.claim`), responsible for its next
step — sending it, tracking it, delivering it. When an owner's lease runs out (the
process died, or hangs), any other process takes its jobs over, recovering each as a
restarted process would (`Scheduler.recover`).

Work that must be done by one process at a time (`run_alone`) takes a process-wide lock
from the `Coordinator` (a PostgreSQL session advisory lock: when its holder dies, its
connection closes and the lock passes to another process at that one's next try). On
SQLite there is one process; it holds every lock and owns every job.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.ports import Coordinator, InstanceRegistry

log = logging.getLogger(__name__)


def new_instance_id() -> str:
    """A fresh id for this process: the host name (for the operator reading logs) and a random part."""
    return f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}"


class Instance:
    """This process's membership of the bot: its id and its lease.

    `lease` seconds is how long the process counts as alive after each renewal; it is
    renewed every third of that, so one or two late renewals do not make it "dead".
    """

    def __init__(self, registry: InstanceRegistry, instance_id: str, *, lease: float) -> None:
        self.id = instance_id
        self._registry = registry
        self.lease = lease

    @property
    def heartbeat_interval(self) -> float:
        return self.lease / 3

    async def join(self, *, alone: bool) -> None:
        """Register with a fresh lease. `alone` (SQLite: one process by construction) also
        forgets every other instance, so the jobs of an earlier run are taken over at once."""
        await self._registry.register(self.id, lease=self.lease, alone=alone)
        log.info("bot process %s joined (lease %g s)", self.id, self.lease)

    async def heartbeat(self) -> None:
        """Renew the lease (a process whose row was removed registers again)."""
        await self._registry.renew(self.id, lease=self.lease)

    async def leave(self) -> None:
        """Give up the lease: other processes take this one's jobs over at once."""
        await self._registry.retire(self.id)


def run_alone(
    coordinator: Coordinator, lock: str, step: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[None]]:
    """`step`, run only while this process holds the process-wide `lock` (else skipped):
    for periodic work that must not run in two processes at once."""

    async def guarded() -> None:
        if await coordinator.hold(lock):
            await step()

    return guarded
