"""AccountPool on its own: capacity, pauses and 429 backoff, with a fake clock.

The pool is the real one; its only collaborator, the upstream, is a stand-in that
answers `scheduler_available` with whatever capacity the test sets.
"""

from __future__ import annotations

import pytest

from bot.accounts import AccountPool
from bot.upstream.errors import ServerError
from bot.upstream.models import AccountCapacity, SchedulerAvailability

A, B = "a@sandbox.local", "b@sandbox.local"
BUSY_INITIAL, BUSY_MAX = 15.0, 120.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CapacityUpstream:
    """Answers GET scheduler/available with `capacity` ({email: (maxJobs, available)})."""

    def __init__(self, capacity: dict[str, tuple[int, int]]) -> None:
        self.capacity = capacity
        self.calls = 0
        self.fail = False

    async def scheduler_available(self) -> SchedulerAvailability:
        self.calls += 1
        if self.fail:
            raise ServerError("scheduler/available", status=503)
        return SchedulerAvailability(
            available=[
                AccountCapacity(email=email, maxJobs=max_jobs, executing=max_jobs - free, available=free)
                for email, (max_jobs, free) in self.capacity.items()
            ]
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pool_for(upstream: CapacityUpstream, clock: FakeClock, **options) -> AccountPool:
    options = {"busy_backoff_initial": BUSY_INITIAL, "busy_backoff_max": BUSY_MAX, **options}
    return AccountPool(upstream, refresh_interval=30.0, clock=clock, **options)  # type: ignore[arg-type]


def pick_all(pool: AccountPool, limit: int = 50) -> list[str]:
    """Everything the pool offers right now, as a pass would take it (until it says None)."""
    picked = []
    while len(picked) < limit and (email := pool.pick()) is not None:
        picked.append(email)
    return picked


async def test_capacity_is_counted_down_locally_between_refreshes(clock):
    upstream = CapacityUpstream({A: (3, 2), B: (3, 1)})
    pool = pool_for(upstream, clock)
    await pool.refresh()
    assert sorted(pick_all(pool)) == [A, A, B]
    await pool.refresh()  # within the refresh interval: no new request, nothing more offered
    assert upstream.calls == 1 and pool.pick() is None
    clock.advance(30)
    await pool.refresh()
    assert upstream.calls == 2 and len(pick_all(pool)) == 3


async def test_release_gives_an_unused_slot_back_but_never_beyond_max_jobs(clock):
    pool = pool_for(CapacityUpstream({A: (2, 1)}), clock)
    await pool.refresh()
    assert pool.pick() == A
    pool.release(A)
    pool.release(A)
    pool.release(A)
    assert pick_all(pool) == [A, A]


async def test_a_failed_refresh_keeps_the_last_known_capacity(clock):
    upstream = CapacityUpstream({A: (2, 2)})
    pool = pool_for(upstream, clock)
    await pool.refresh()
    upstream.fail = True
    await pool.refresh(force=True)
    assert pick_all(pool) == [A, A]


async def test_after_a_429_the_account_is_offered_to_no_job_until_its_backoff_ends(clock):
    pool = pool_for(CapacityUpstream({A: (3, 3)}), clock)
    await pool.refresh()
    assert pool.pick() == A
    assert pool.mark_busy(A) == BUSY_INITIAL
    pool.release(A)  # the refused job goes back to the queue
    assert pool.pick() is None  # the same pass: not one more job on it
    clock.advance(BUSY_INITIAL - 0.1)
    assert pool.pick() is None
    clock.advance(0.1)
    assert pool.pick() == A  # the probe


async def test_release_does_not_reopen_a_slot_on_a_busy_account(clock):
    pool = pool_for(CapacityUpstream({A: (3, 3)}), clock)
    await pool.refresh()
    assert pool.pick() == A
    pool.mark_busy(A)
    pool.release(A)
    clock.advance(BUSY_INITIAL)
    assert pick_all(pool) == [A]  # the probe, alone until it is answered
    pool.accepted(A)
    # 3 reported, 1 used by the refused job and not given back (the 429 proved it was not
    # there), 1 by the probe.
    assert pick_all(pool) == [A]


async def test_a_capacity_refresh_does_not_wipe_the_busy_mark(clock):
    # scheduler/available keeps reporting room: PixVerse's own concurrency limit is not in it.
    upstream = CapacityUpstream({A: (3, 3)})
    pool = pool_for(upstream, clock)
    await pool.refresh()
    pool.pick()
    pool.mark_busy(A)
    clock.advance(BUSY_INITIAL / 2)
    await pool.refresh(force=True)
    assert pool.pick() is None
    clock.advance(BUSY_INITIAL / 2)
    assert pool.pick() == A


async def test_429s_in_a_row_grow_the_backoff_up_to_its_maximum_and_a_success_resets_it(clock):
    pool = pool_for(CapacityUpstream({A: (3, 3)}), clock)
    await pool.refresh()
    backoffs = []
    for _ in range(6):
        clock.advance(BUSY_MAX)  # whatever the backoff was, it is over: probe again
        await pool.refresh(force=True)
        assert pool.pick() == A
        backoffs.append(pool.mark_busy(A))
    assert backoffs == [15, 30, 60, 120, 120, 120]
    clock.advance(BUSY_MAX)
    assert pool.pick() == A
    assert pool.accepted(A) is False  # it was busy, not paused: nothing to tell the operator
    assert pool.pick() == A  # no backoff once a job went through
    assert pool.mark_busy(A) == BUSY_INITIAL


async def test_429s_to_jobs_sent_together_count_as_one_and_the_probe_after_goes_alone(clock):
    pool = pool_for(CapacityUpstream({A: (3, 3)}), clock)
    await pool.refresh()
    assert pick_all(pool) == [A, A, A]  # sent together, before any answer
    # All three come back 429: one backoff, not three doublings.
    assert [pool.mark_busy(A) for _ in range(3)] == [BUSY_INITIAL] * 3
    clock.advance(BUSY_INITIAL)
    await pool.refresh(force=True)
    assert pick_all(pool) == [A]  # one probe, however many slots are reported
    assert pool.mark_busy(A) == 2 * BUSY_INITIAL  # the probe's 429 is the next in a row
    clock.advance(2 * BUSY_INITIAL)
    assert pick_all(pool) == [A]
    pool.release(A)  # the probe went back to the queue for another reason: it said nothing
    assert pool.pick() == A  # so another job may probe


async def test_a_busy_account_leaves_the_work_to_the_others(clock):
    pool = pool_for(CapacityUpstream({A: (5, 5), B: (2, 2)}), clock)
    await pool.refresh()
    assert pool.pick() == A  # the most free slots
    pool.mark_busy(A)
    pool.release(A)
    assert pick_all(pool) == [B, B]


async def test_a_paused_account_is_probed_once_per_interval_and_resumes_when_a_job_goes_through(clock):
    pool = pool_for(CapacityUpstream({A: (3, 3)}), clock, pause_probe_interval=600.0)
    await pool.refresh()
    assert pool.pause(A, "out of credits") is True
    assert pool.pause(A, "out of credits") is False  # already paused: the operator was told once
    assert pool.all_paused() and pool.pause_reasons() == ["out of credits"]
    assert pool.pick() is None
    clock.advance(600)
    assert pool.pick() == A  # the probe
    assert pool.pick() is None  # one per interval
    assert pool.accepted(A) is True
    assert not pool.all_paused()
    assert pool.pick() == A


async def test_only_the_configured_accounts_are_used_and_vanished_ones_are_dropped(clock):
    upstream = CapacityUpstream({A: (1, 1), B: (1, 1)})
    pool = AccountPool(upstream, only=[B], clock=clock)  # type: ignore[arg-type]
    await pool.refresh()
    assert pick_all(pool) == [B]
    upstream.capacity = {A: (1, 1)}
    await pool.refresh(force=True)
    assert pool.accounts == [] and pool.pick() is None


async def test_a_job_bound_to_one_account_takes_a_slot_there_or_none_and_never_elsewhere(clock):
    # An upscale or extend must run on the account that made its source video.
    pool = pool_for(CapacityUpstream({A: (2, 1), B: (5, 5)}), clock)
    assert pool.serves(A)  # nothing is known before the first refresh: nothing is gone
    await pool.refresh()
    assert pool.take(A) == A  # although B has more room
    assert pool.take(A) is None  # A is full: the job waits for A, it does not get B
    assert pick_all(pool) == [B] * 5  # and A's job kept none of B's slots
    pool.release(A)
    assert pool.take(A.upper()) == A  # a video id may spell the email in another case
    pool.release(A)
    pool.mark_busy(A)  # a 429 on the bound job marks its own account busy
    assert pool.take(A) is None
    clock.advance(BUSY_INITIAL)
    assert pool.take(A) == A


async def test_an_account_dropped_from_the_listing_or_the_configuration_is_no_longer_served(clock):
    upstream = CapacityUpstream({A: (1, 1), B: (1, 1)})
    pool = AccountPool(upstream, only=[B], clock=clock)  # type: ignore[arg-type]
    await pool.refresh()
    assert not pool.serves(A) and pool.take(A) is None  # not in USEAPI_ACCOUNTS
    assert pool.serves(B)
    upstream.capacity = {A: (1, 1)}
    await pool.refresh(force=True)
    assert not pool.serves(B)  # gone from useapi.net
    upstream.fail = True
    await pool.refresh(force=True)
    assert not pool.serves(B)  # a failed refresh brings nothing back


async def test_an_account_for_an_off_peak_job_takes_no_slot_and_a_full_one_will_do(clock):
    upstream = CapacityUpstream({A: (1, 0), B: (2, 1)})
    pool = pool_for(upstream, clock)
    await pool.refresh()
    assert [pool.pick_without_slot() for _ in range(3)] == [B, B, B]  # the most room first, none taken
    assert pick_all(pool) == [B]  # the slot is still there for a normal job
    pool.mark_busy(B)
    assert pool.pick_without_slot() == A  # full, yet fine: off-peak jobs are not counted; busy B is not
    pool.pause(A, "out of credits")
    assert pool.pick_without_slot() is None  # nothing usable: paused or busy
    clock.advance(BUSY_INITIAL)
    assert pool.pick_without_slot() == B


async def test_capacity_is_not_re_read_while_picked_jobs_are_on_their_way(clock):
    # useapi.net counts a job once its create is answered: read before that, it reports the
    # slots taken by creates still on their way as free, and they would be handed out twice.
    upstream = CapacityUpstream({A: (3, 3)})
    pool = pool_for(upstream, clock)
    await pool.refresh()
    with pool.sending():
        assert pick_all(pool) == [A, A, A]
        await pool.refresh(force=True)  # the upstream still says 3 free
        assert pool.pick() is None
    await pool.refresh(force=True)  # answered (here: never admitted), the reading counts again
    assert pick_all(pool) == [A, A, A]
