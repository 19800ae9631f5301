"""Several bot processes on one database (bot/instances.py): jobs owned by the process
that moved them last and taken over once its lease runs out (on both backends), the
process-wide locks and cache announcements of PostgreSQL (storage/coordination.py),
and two whole cores sharing one PostgreSQL database in this process."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from bot.domain import OUTCOME_STATES, JobState, utcnow
from bot.errors import Refused
from bot.moderation.service import FilterMode
from bot.sandbox import Sandbox
from storage import SqlDatabase, SqlJobStore, open_storage
from storage.coordination import LocalCoordinator, PostgresCoordinator
from storage.instances import SqlInstanceRegistry
from storage.postgres import PostgresDatabase
from storage.updates import SqlUpdateLog
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core
from tests.postgres_server import PostgresServer
from tests.test_storage import ALICE, make_job


class Clock:
    """A clock tests move by hand (the leases are read against it)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_a_job_is_its_owners_until_the_owners_lease_runs_out(store_db: SqlDatabase) -> None:
    clock = Clock()
    registry = SqlInstanceRegistry(store_db, clock=clock)
    await registry.register("A", lease=30, alone=False)
    await registry.register("B", lease=30, alone=False)
    a, b = SqlJobStore(store_db, owner="A", clock=clock), SqlJobStore(store_db, owner="B", clock=clock)
    job = make_job(ALICE)
    await a.add(job)
    sent = await a.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account="x@y")
    assert sent is not None and sent.owner == "A"

    # A lives: B neither claims it nor lists it among its own.
    assert await b.claim(job.id, [JobState.SUBMITTING]) is None
    assert await b.claimable([JobState.SUBMITTING]) == []
    assert [mine.id for mine in await a.claimable([JobState.SUBMITTING])] == [job.id]

    # A falls silent; B renews its lease. Once A's has run out, B takes the job over.
    clock.advance(20)
    await registry.renew("B", lease=30)
    assert await b.claim(job.id, [JobState.SUBMITTING]) is None
    clock.advance(11)
    assert await registry.live() == ["B"]
    [taken] = await b.claimable([JobState.SUBMITTING])
    assert taken.id == job.id and taken.owner == "B"
    assert taken.updated_at == sent.updated_at  # recovery's grace still counts from the submission
    # A comes back: the job is B's now (a live owner), so A does not touch it.
    await registry.renew("A", lease=30)
    assert await a.claim(job.id, [JobState.SUBMITTING]) is None
    # The process that moves a job owns it: A's transition makes it A's again.
    moved = await a.transition(job.id, JobState.SUBMITTING, JobState.SUBMITTED, video_id="v1")
    assert moved is not None and moved.owner == "A"


async def test_of_many_processes_taking_over_a_job_exactly_one_gets_it(database_url: str) -> None:
    databases = [await open_storage(database_url) for _ in range(4)]
    try:
        registry = SqlInstanceRegistry(databases[0])
        dead = SqlJobStore(databases[0], owner="dead")
        job = make_job(ALICE)
        await dead.add(job)
        await dead.transition(
            job.id, JobState.QUEUED, JobState.FAILED, failure="x"
        )  # owned by "dead", never registered
        owners = [f"p{n}" for n in range(12)]
        for owner in owners:
            await registry.register(owner, lease=60, alone=False)
        stores = [SqlJobStore(databases[n % len(databases)], owner=owner) for n, owner in enumerate(owners)]
        claims = await asyncio.gather(*(store.claim(job.id, OUTCOME_STATES) for store in stores))
        winners = [claim for claim in claims if claim is not None]
        assert len(winners) == 1
        stored = await stores[0].get(job.id)
        assert stored is not None and stored.owner == winners[0].owner
    finally:
        for database in databases:
            await database.close()


async def test_a_process_alone_on_its_database_forgets_earlier_ones(store_db: SqlDatabase) -> None:
    # SQLite: one process by construction; the jobs of one that crashed are its successor's at once.
    registry = SqlInstanceRegistry(store_db)
    await registry.register("crashed", lease=600, alone=False)
    await registry.register("restarted", lease=600, alone=True)
    assert await registry.live() == ["restarted"]
    await registry.retire("restarted")
    assert await registry.live() == []


async def test_an_update_is_taken_once_by_any_number_of_processes(database_url: str) -> None:
    databases = [await open_storage(database_url) for _ in range(3)]
    try:
        logs = [SqlUpdateLog(database) for database in databases]
        taken = await asyncio.gather(*(log.first_time("telegram", 4242) for log in logs * 4))
        assert sorted(taken) == [False] * 11 + [True]
        assert await logs[0].first_time("discord", 4242)  # another platform's numbers are its own
    finally:
        for database in databases:
            await database.close()


async def test_alone_every_lock_is_held() -> None:
    coordinator = LocalCoordinator()
    assert await coordinator.hold("anything") and await coordinator.hold("anything")


# ---------------------------------------------------------------- PostgreSQL only


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.database()


async def test_a_process_wide_lock_passes_to_another_process_when_its_holders_session_dies(
    postgres_url: str,
) -> None:
    first, second, third = [await open_storage(postgres_url) for _ in range(3)]
    assert isinstance(first, PostgresDatabase) and isinstance(second, PostgresDatabase)
    one, other = PostgresCoordinator(first), PostgresCoordinator(second)
    try:
        await one.start()
        await other.start()
        assert await one.hold("retention")
        assert await one.hold("retention")  # held, not taken twice
        assert not await other.hold("retention")
        assert await other.hold("scheduler")  # another lock is another matter
        # The holder's connection dies, as it does when its process is killed.
        killed = await third.fetch_one(
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            " AND objid = (hashtextextended('process-lock:retention', 0) & 4294967295)::oid"
        )
        assert killed is not None and killed["killed"]
        await eventually(lambda: other.hold("retention"), what="the other process takes the lock over")
        assert not await one.hold("retention")  # its new session finds the lock taken
    finally:
        for coordinator in (one, other):
            await coordinator.close()
        for database in (first, second, third):
            await database.close()


async def test_an_announcement_reaches_every_process(postgres_url: str) -> None:
    databases = [await open_storage(postgres_url) for _ in range(2)]
    coordinators = [PostgresCoordinator(database) for database in databases]  # type: ignore[arg-type]
    heard: list[int] = []
    try:
        for number, coordinator in enumerate(coordinators):
            await coordinator.start()
            coordinator.subscribe("group-settings", lambda number=number: heard.append(number))
        await coordinators[0].announce("group-settings")
        await coordinators[1].announce("other-topic")
        await eventually(lambda: sorted(heard) == [0, 1], what="both processes hear it")
    finally:
        for coordinator in coordinators:
            await coordinator.close()
        for database in databases:
            await database.close()


async def test_a_group_setting_changed_in_one_process_is_enforced_by_another(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    settings = fast_settings(tmp_path, sandbox, bot_database=postgres_url)
    member = requester("member", "group-1")
    group = member.chat.group_key
    assert group is not None
    async with (
        running_core(settings, RecordingNotifier(), start=False) as a,
        running_core(settings, RecordingNotifier(), start=False) as b,
    ):
        await b.gate.admit(member)  # B has read (and cached) the group's settings
        assert (await b.moderation.settings_for(group)).bot_enabled
        await a.moderation.update_settings(group, bot_enabled=False)

        async def b_refuses() -> bool:
            try:
                await b.gate.admit(member)
            except Refused:
                return True
            return False

        await eventually(b_refuses, timeout=2, what="B refuses once A switched the bot off")
        # Filters and quota overrides alike.
        await a.moderation.update_settings(group, bot_enabled=True, filter_mode=FilterMode.STRIKE)
        await eventually(
            lambda: _filter_mode(b, group, FilterMode.STRIKE), timeout=2, what="B sees the new filter mode"
        )
        assert await b.quotas.limit_for("user", member.user.key) is None
        await a.quotas.set_limit("user", member.user.key, 3)
        await eventually(lambda: _limit(b, member.user.key, 3), timeout=2, what="B sees the new quota")


async def test_a_ban_or_mute_set_in_one_process_is_enforced_by_another(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    """Each process holds the bans and mutes in memory (a command reads neither): a change
    made through one is announced, and the other reads them again."""
    settings = fast_settings(tmp_path, sandbox, bot_database=postgres_url)
    member = requester("member", "group-1")
    group = member.chat.group_key
    assert group is not None
    async with (
        running_core(settings, RecordingNotifier(), start=False) as a,
        running_core(settings, RecordingNotifier(), start=False) as b,
    ):
        await b.gate.admit(member)  # B holds the (empty) lists now
        await a.moderation.ban(member.user.key, group, by="operator")
        await eventually(lambda: _refused(b, member), timeout=2, what="B refuses once A banned the user")
        assert await a.moderation.unban(member.user.key, group)
        await eventually(lambda: _admitted(b, member), timeout=2, what="B admits once A lifted the ban")

        await a.moderation.update_settings(group, filter_mode=FilterMode.STRIKE, strike_limit=1)
        await a.moderation.record(member.user, group, "a bad prompt", "bad", "blocklist")  # the strike that mutes
        await eventually(lambda: _refused(b, member), timeout=2, what="B refuses once A muted the user")
        assert await a.moderation.unmute(member.user.key, group)
        await eventually(lambda: _admitted(b, member), timeout=2, what="B admits once A lifted the mute")


async def _refused(core, who) -> bool:  # type: ignore[no-untyped-def]
    try:
        await core.gate.admit(who, rate_limited=False)
    except Refused:
        return True
    return False


async def _admitted(core, who) -> bool:  # type: ignore[no-untyped-def]
    return not await _refused(core, who)


async def _filter_mode(core, group: str, mode: FilterMode) -> bool:  # type: ignore[no-untyped-def]
    return (await core.moderation.settings_for(group)).filter_mode is mode


async def _limit(core, user_key: str, limit: int) -> bool:  # type: ignore[no-untyped-def]
    return await core.quotas.limit_for("user", user_key) == limit


async def test_two_processes_on_one_database_deliver_each_job_once(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    settings = fast_settings(tmp_path, sandbox, bot_database=postgres_url)
    notifiers = [RecordingNotifier(), RecordingNotifier()]
    async with running_core(settings, notifiers[0]) as a, running_core(settings, notifiers[1]) as b:
        jobs = []
        for number in range(12):
            core = (a, b)[number % 2]
            jobs.append(await core.service.create_single(requester(f"u{number % 4}"), _command(number)))

        async def all_delivered() -> bool:
            states = [(await a.jobs.get(job.id)).state for job in jobs]  # type: ignore[union-attr]
            return all(state is JobState.DELIVERED for state in states)

        await eventually(all_delivered, timeout=30, what="every job delivered")
        # Retry passes of both processes have run over the finished jobs meanwhile.
        await a.deliverer.deliver_pending()
        await b.deliverer.deliver_pending()
    posts = {job.id: notifiers[0].outcome_counts()[job.id] + notifiers[1].outcome_counts()[job.id] for job in jobs}
    assert posts == {job.id: 1 for job in jobs}
    creates = sandbox.count("POST", "/v2/pixverse/videos/create")
    assert creates == len(jobs)


def _command(number: int):  # type: ignore[no-untyped-def]
    from bot.commands import CreateSingle, parse_command

    return parse_command(CreateSingle, prompt=f"a fox number {number}")


async def test_one_process_polls_telegram_and_another_takes_over_when_it_stops(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    from tests.fakes.telegram_api import FakeTelegram
    from tests.fakes.telegram_fixtures import ALICE, ALICE_CHAT, running_bot, telegram_settings, wait_videos

    async with FakeTelegram() as fake:
        settings = telegram_settings(tmp_path, sandbox, fake, bot_database=postgres_url, instance_lease=1)
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(running_bot(settings))
            async with running_bot(settings) as second:
                assert first.adapter._polling is not None and second.adapter._polling is None  # one polls
                await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a kite")
                await wait_videos(fake, ALICE_CHAT, 1)
                # The first stops: its session closes, and with it the polling lock.
                await stack.aclose()
                await eventually(lambda: second.adapter._polling is not None, what="the other process polls")
                await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a second kite")
                await wait_videos(fake, ALICE_CHAT, 2)
        assert fake.spec_violations == []


async def test_a_webhook_update_delivered_again_is_handled_once(tmp_path, sandbox: Sandbox, database_url: str) -> None:
    from benchmarks.common import free_port
    from bot.bootstrap import serving_http
    from tests.fakes.telegram_api import FakeTelegram
    from tests.fakes.telegram_fixtures import ALICE, ALICE_CHAT, running_bot, telegram_settings, user_ref

    port = free_port()
    async with FakeTelegram() as fake:
        settings = telegram_settings(
            tmp_path, sandbox, fake, bot_database=database_url, bot_public_url=f"http://127.0.0.1:{port}"
        )
        async with running_bot(settings) as bot, serving_http(bot.core.http_app, "127.0.0.1", port):
            await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
            assert fake.webhook is not None
            # Telegram got no answer in time (say), and delivers the same update again.
            again = await fake.post_update_to(
                fake.webhook.url, fake.updates[-1], secret_token=fake.webhook.secret_token
            )
            assert again == 200
            assert len(await bot.core.service.recent_jobs(user_ref(ALICE))) == 1


async def test_a_job_another_live_process_is_sending_is_left_to_it_and_recovered_once_it_is_gone(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    from bot.submission import build_upstream_request

    settings = fast_settings(tmp_path, sandbox, bot_database=postgres_url, unknown_outcome_grace=0)
    async with (
        running_core(settings, RecordingNotifier(), start=False) as a,
        running_core(settings, RecordingNotifier(), start=False) as b,
    ):
        await a.instance.join(alone=False)
        await b.instance.join(alone=False)
        job = await a.service.create_single(requester(), _command(1))
        claimed = await a.jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account="alice@sandbox.local")
        assert claimed is not None
        # A's create is under way (the upstream does not list it yet): B must not touch it.
        await b.scheduler.recover()
        left = await b.jobs.get(job.id)
        assert left is not None and left.state is JobState.SUBMITTING and left.owner == a.instance.id
        # A's request arrives; A dies before it records the answer.
        request = build_upstream_request(claimed.request, email="alice@sandbox.local", reply_ref=job.id)
        sent = await a.upstream.create_video(request)
        await a.instance.leave()
        await b.scheduler.recover()  # B takes the job over and finds it upstream by its replyRef
        recovered = await b.jobs.get(job.id)
        assert recovered is not None and recovered.state is JobState.SUBMITTED
        assert recovered.video_id == sent.id and recovered.owner == b.instance.id
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1  # sent once, paid once


async def test_a_job_finished_in_a_process_without_its_chats_adapter_is_posted_by_one_with_it(
    tmp_path, sandbox: Sandbox, postgres_url: str
) -> None:
    from bot.bootstrap import open_core

    settings = fast_settings(tmp_path, sandbox, bot_database=postgres_url)
    notifier = RecordingNotifier()
    async with open_core(settings) as without, running_core(settings, notifier) as with_adapter:
        # Sent and tracked by either process; `without` finishes some of them (its tracker
        # or a callback), and has no console adapter to post them.
        jobs = [await without.service.create_single(requester(f"u{n}"), _command(n)) for n in range(6)]

        async def all_delivered() -> bool:
            states = [(await with_adapter.jobs.get(job.id)).state for job in jobs]  # type: ignore[union-attr]
            return all(state is JobState.DELIVERED for state in states)

        await eventually(all_delivered, timeout=30, what="every job delivered by the process with the adapter")
    assert {job.id: notifier.outcome_counts()[job.id] for job in jobs} == {job.id: 1 for job in jobs}
