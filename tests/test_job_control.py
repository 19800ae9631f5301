"""/queue and /cancel in the core, against the real store, scheduler, tracker and sandbox.

Places in line follow the scheduler's fair order, and the estimate the median time of
recent videos and the free slots. A cancel refunds a queued job at once, cancels a
running one upstream (DELETE scheduler) and refunds it when that is confirmed, and
settles a job caught being sent where it lands — never sending it twice. A cancelled
job stays cancelled through restarts and a late completion upstream.
"""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.console.app import ConsoleNotifier, ConsoleSession, Terminal
from bot.bootstrap import open_core
from bot.commands import CreateSingle, parse_command
from bot.domain import ChatRef, GenerationRequest, Job, JobKind, JobState, Platform, Requester, UserRef, utcnow
from bot.errors import InvalidInput, JobNotFound, NotYourJobToCancel
from bot.kinds.animate import Animate
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from bot.submission import build_upstream_request
from bot.texts import queue_text
from bot.upstream.models import VideoStage
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core, tiny_png
from tests.test_queue_scale import QUEUED, USERS, seed_queue
from tests.test_queue_scale import jobs_built as jobs_built  # a fixture, used by name

CREATES = "/v2/pixverse/videos/create"
SCHEDULER_DELETES = "/v2/pixverse/scheduler/"
ALICE_MAIL = "alice@sandbox.local"


def command(prompt: str = "a fox in the snow"):
    return parse_command(CreateSingle, prompt=prompt)


async def state_of(core, job_id: str) -> JobState:
    job = await core.jobs.get(job_id)
    return job.state


async def delivered(core, job_id: str) -> Job | None:
    job = await core.jobs.get(job_id)
    return job if job.state is JobState.DELIVERED else None


async def reserved(core, who: Requester) -> int:
    mine, _ = await core.quotas.status(who.user)
    return mine.reserved + mine.used


def group_member(user_id: str, *, admin: bool = False, group: str = "g1") -> Requester:
    return Requester(
        user=UserRef(Platform.CONSOLE, user_id, f"User {user_id}"),
        chat=ChatRef(Platform.CONSOLE, "room", group_id=group),
        is_group_admin=admin,
    )


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(generation_seconds=0.4)


# ---------------------------------------------------------------------------------- cancel


async def test_a_queued_job_is_cancelled_at_once_refunded_exactly_and_its_picture_deleted(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox, quota_per_user="5"), RecordingNotifier()
    me = requester()
    async with running_core(settings, notifier, start=False) as core:
        before = await reserved(core, me)
        job = await core.service.animate(me, parse_command(Animate, prompt="smile"), tiny_png())
        [blob] = [image.blob_id for image in job.request.images]
        assert await core.blobs.get(blob) is not None
        assert await reserved(core, me) == before + 1

        answer = await core.control.cancel(me, f" job {job.id} ")  # as /jobs and captions show it
        assert answer == f"Job {job.id} is cancelled. It had not started, so nothing was charged."
        await core.start_loops()
        done = await eventually(lambda: delivered(core, job.id))
        assert done.outcome is JobState.CANCELLED
        assert await reserved(core, me) == before  # the reservation is gone, nothing committed
        assert await core.blobs.get(blob) is None
        assert notifier.failures == [(job.id, "Cancelled by User u1 before it started; nothing was charged.")]
        assert "already cancelled" in await core.control.cancel(me, job.id)
    # Restarted: a cancelled job is never sent, nor told again.
    async with running_core(settings, notifier) as core:
        await core.scheduler.submit_ready()
        await core.tracker.poll_once()
        await core.deliverer.deliver_pending()
        assert (await core.jobs.get(job.id)).outcome is JobState.CANCELLED
    assert sandbox.count("POST", CREATES) == 0
    assert notifier.outcome_counts()[job.id] == 1


async def test_a_running_job_is_cancelled_upstream_refunded_on_confirmation_and_a_late_video_is_ignored(
    tmp_path, sandbox
):
    sandbox.config.generation_seconds = 30  # running until the test lets it finish
    settings, notifier = fast_settings(tmp_path, sandbox, quota_per_user="5"), RecordingNotifier()
    me = requester()
    async with running_core(settings, notifier) as core:
        before = await reserved(core, me)
        job = await core.service.create_single(me, command())
        running = await eventually(lambda: _running(core, job.id))
        answer = await core.control.cancel(me, job.id)
        assert answer.startswith(f"Job {job.id} is cancelled and your quota refunded.")
        assert "may still finish the video and charge the bot's PixVerse credits" in answer
        assert sandbox.request_log.count(("DELETE", SCHEDULER_DELETES + running.video_id)) == 1
        done = await eventually(lambda: delivered(core, job.id))
        assert done.outcome is JobState.CANCELLED
        assert await reserved(core, me) == before
        # useapi.net forgot it, PixVerse finishes it anyway (the docs promise no more).
        sandbox.complete_now(running.video_id)
        await eventually(lambda: sandbox.videos[running.video_id].phase.over)
        await core.tracker.poll_once()
        await core.deliverer.deliver_pending()
    async with running_core(settings, notifier) as core:
        await core.tracker.poll_once()
        await core.deliverer.deliver_pending()
        assert (await core.jobs.get(job.id)).outcome is JobState.CANCELLED
        assert await reserved(core, me) == before  # not charged by the late video
    assert notifier.deliveries == []
    assert notifier.outcome_counts()[job.id] == 1


async def test_where_delete_scheduler_stops_the_generation_the_video_ends_failed_and_nothing_is_charged(
    tmp_path, sandbox
):
    sandbox.config.generation_seconds = 30
    sandbox.config.scheduler_delete_stops_video = True
    account = sandbox.config.account(ALICE_MAIL)
    settings, notifier = fast_settings(tmp_path, sandbox, useapi_accounts=ALICE_MAIL), RecordingNotifier()
    async with running_core(settings, notifier) as core:
        credits = account.credits
        job = await core.service.create_single(requester(), command())
        running = await eventually(lambda: _running(core, job.id))
        assert account.credits < credits
        assert "is cancelled" in await core.control.cancel(requester(), job.id)
        video = await core.upstream.get_video(running.video_id)
        assert video is not None and video.stage is VideoStage.FAILED  # final, with the reason
        assert account.credits == credits  # PixVerse gave its credits back
        await eventually(lambda: delivered(core, job.id))


async def test_a_job_caught_being_sent_is_cancelled_once_the_upstream_answers_and_sent_only_once(tmp_path, sandbox):
    sandbox.config.generation_seconds = 30
    settings, notifier = fast_settings(tmp_path, sandbox, quota_per_user="5"), RecordingNotifier()
    me = requester()
    sandbox.config.response_delay = 1.0  # the create is under way while the cancel comes
    async with running_core(settings, notifier) as core:
        before = await reserved(core, me)
        job = await core.service.create_single(me, command())
        await eventually(lambda: _in(core, job.id, JobState.SUBMITTING))
        answer = await core.control.cancel(me, job.id)
        assert answer.startswith(f"Job {job.id} is being sent to PixVerse right now.")
        done = await eventually(lambda: delivered(core, job.id), timeout=15)
        sandbox.config.response_delay = 0
        assert done.outcome is JobState.CANCELLED and done.video_id
        assert sandbox.count("POST", CREATES) == 1
        assert sandbox.request_log.count(("DELETE", SCHEDULER_DELETES + done.video_id)) == 1
        assert await reserved(core, me) == before
    assert notifier.outcome_counts()[job.id] == 1


async def test_a_cancel_asked_while_sending_survives_a_restart_whichever_way_the_send_went(tmp_path, sandbox):
    sandbox.config.generation_seconds = 30
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    me = requester()
    async with running_core(settings, notifier, start=False) as core:
        never_sent = await core.service.create_single(me, command("never sent"))
        sent = await core.service.create_single(me, command("sent, answer lost"))
        for job in (never_sent, sent):
            await core.jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING, account=ALICE_MAIL)
            assert "being sent to PixVerse right now" in await core.control.cancel(me, job.id)
        claimed = await core.jobs.get(sent.id)
        request = build_upstream_request(claimed.request, email=ALICE_MAIL, reply_ref=sent.id)
        video = await core.upstream.create_video(request)  # the process dies before recording this
    # The restart looks both up: one goes back to the queue, one is running — both end cancelled.
    async with running_core(settings, notifier) as core:
        for job in (never_sent, sent):
            done = await eventually(lambda job=job: delivered(core, job.id), timeout=15)
            assert done.outcome is JobState.CANCELLED
        assert (await core.jobs.get(sent.id)).video_id == video.id
    assert sandbox.count("POST", CREATES) == 1  # the one sent before the restart, never again
    assert sandbox.request_log.count(("DELETE", SCHEDULER_DELETES + video.id)) == 1
    assert notifier.outcome_counts() == {never_sent.id: 1, sent.id: 1}


async def test_cancel_is_refused_for_others_unknown_or_missing_jobs_and_allowed_to_the_groups_admin(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        job = await core.service.create_single(group_member("alice"), command())
        with pytest.raises(NotYourJobToCancel) as refused:
            await core.control.cancel(group_member("bob"), job.id)
        assert (
            str(refused.value)
            == f"Only the person who asked for job {job.id}, or an admin of its group, can cancel it."
        )
        with pytest.raises(NotYourJobToCancel):  # an admin of another group is not this group's admin
            await core.control.cancel(group_member("carol", admin=True, group="g2"), job.id)
        with pytest.raises(JobNotFound) as unknown:
            await core.control.cancel(group_member("alice"), "nosuchjob")
        assert str(unknown.value) == "No job 'nosuchjob' found. /jobs lists your recent jobs."
        with pytest.raises(InvalidInput) as missing:
            await core.control.cancel(group_member("alice"), "  ")
        assert str(missing.value) == "job: is missing; e.g. /cancel abc123 — /queue lists your waiting jobs"
        assert await state_of(core, job.id) is JobState.QUEUED
        assert "is cancelled" in await core.control.cancel(group_member("dave", admin=True), job.id)
        assert await state_of(core, job.id) is JobState.CANCELLED


async def test_an_off_peak_job_at_pixverse_cannot_be_cancelled_and_the_user_is_told_why(tmp_path, sandbox):
    sandbox.config.off_peak_seconds = 30
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier) as core:
        job = await core.service.create_single(requester(), parse_command(CreateSingle, prompt="x", off_peak=True))
        await eventually(lambda: _running(core, job.id))
        answer = await core.control.cancel(requester(), job.id)
        assert "off-peak video PixVerse already holds, and useapi.net cannot cancel those" in answer
        assert await state_of(core, job.id) in {JobState.SUBMITTED, JobState.GENERATING}
    assert sandbox.count("DELETE", SCHEDULER_DELETES) == 0


# ---------------------------------------------------------------------------------- /queue


async def test_queue_shows_places_in_the_order_the_scheduler_sends_and_an_estimate_from_recent_videos(tmp_path):
    config = SandboxConfig(generation_seconds=0.2, accounts=[SandboxAccount(ALICE_MAIL, max_jobs=1)])
    async with running_sandbox(config) as sandbox:
        settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
        alice, bob = requester("alice"), requester("bob")
        async with running_core(settings, notifier, start=False) as core:
            await _finished_videos(core, seconds=(60, 120, 90))
            a1, a2, a3 = [await core.service.create_single(alice, command(f"a{n}")) for n in (1, 2, 3)]
            b1 = await core.service.create_single(bob, command("b1"))
            mine = await core.control.queue(alice)
            estimate = mine.estimate
            assert (estimate.typical_run, estimate.runs_measured, estimate.slots, estimate.free) == (90, 3, 1, 1)
            assert [(e.job.id, e.place, e.ahead) for e in mine.entries] == [(a1.id, 1, 0), (a2.id, 3, 2), (a3.id, 4, 3)]
            # One slot, free: the first starts now; each later one waits a median time per job ahead.
            assert [e.ready_in for e in mine.entries] == [90, 270, 360]
            theirs = await core.control.queue(bob)
            assert [(e.job.id, e.place, e.ahead, e.ready_in) for e in theirs.entries] == [(b1.id, 2, 1, 180)]
            text = queue_text(mine)
            assert f"{a2.id} · #3 in line (2 ahead) · ready in ~5 min · a2" in text
            assert "4 queued in all; 1 of 1 PixVerse slots free; a video takes 2 min (median of the last 3)" in text
            await core.start_loops()
            for job in (a1, b1, a2, a3):
                await eventually(lambda job=job: delivered(core, job.id), timeout=15)
            sent = sorted([await core.jobs.get(j.id) for j in (a1, a2, a3, b1)], key=lambda j: j.submitted_at)
            assert [j.id for j in sent] == [a1.id, b1.id, a2.id, a3.id]  # the places /queue gave
            empty = await core.control.queue(alice)
            assert empty.entries == () and queue_text(empty).startswith("Your queue is empty")


async def test_progress_messages_say_the_place_in_line_queue_shows_when_queued_and_as_the_queue_moves(tmp_path):
    config = SandboxConfig(generation_seconds=30, accounts=[SandboxAccount(ALICE_MAIL, max_jobs=1)])
    async with running_sandbox(config) as sandbox:
        settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
        alice, bob, carol = requester("alice"), requester("bob"), requester("carol")

        async def said_and_shown() -> tuple[dict[str, int], dict[str, int]]:
            await core.progress.idle()
            said = {job_id: p.queue_position for job_id, p in notifier.progress_events if p.queue_position}
            shown = {
                entry.job.id: entry.place
                for who in (alice, bob, carol)
                for entry in (await core.control.queue(who)).entries
                if entry.place is not None
            }
            return said, shown

        async with running_core(settings, notifier, start=False) as core:
            a1, a2, a3 = [await core.service.create_single(alice, command(f"a{n}")) for n in (1, 2, 3)]
            b1 = await core.service.create_single(bob, command("b1"))
            c1, c2 = [await core.service.create_single(carol, command(f"c{n}")) for n in (1, 2)]
            said, shown = await said_and_shown()
            # Users take turns: Bob's only job goes second, not after Alice's three.
            assert said[b1.id] == shown[b1.id] == 2
            assert said[c2.id] == shown[c2.id] == 5
            # Bob and Carol went ahead of Alice's third: the next pass tells her so.
            assert said[a3.id] == 3 and shown[a3.id] == 6
            # One slot: Alice's first goes and she waits her turn behind Bob and Carol.
            assert await core.scheduler.submit_ready() == 1
            said, shown = await said_and_shown()
            assert {job.id: said[job.id] for job in (b1, c1, a2, c2, a3)} == shown
            assert [shown[job.id] for job in (b1, c1, a2, c2, a3)] == [1, 2, 3, 4, 5]
    assert a1.id not in shown


async def test_a_newcomer_who_goes_ahead_moves_the_places_behind_and_they_are_retold(tmp_path):
    config = SandboxConfig(generation_seconds=30, accounts=[SandboxAccount(ALICE_MAIL, max_jobs=1)])
    async with running_sandbox(config) as sandbox:
        settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
        alice, bob = requester("alice"), requester("bob")
        async with running_core(settings, notifier, start=False) as core:
            a1, a2, a3 = [await core.service.create_single(alice, command(f"a{n}")) for n in (1, 2, 3)]
            assert await core.scheduler.submit_ready() == 1  # a1 runs; the slot stays taken
            b1 = await core.service.create_single(bob, command("b1"))
            # The slot is full, nothing leaves the queue: Bob's job, never served, still goes first.
            assert await core.scheduler.submit_ready() == 0
            await core.progress.idle()
            said = {job_id: p.queue_position for job_id, p in notifier.progress_events if p.queue_position}
            shown = {e.job.id: e.place for who in (alice, bob) for e in (await core.control.queue(who)).entries}
    assert shown == {a1.id: None, b1.id: 1, a2.id: 2, a3.id: 3}
    assert [said[job.id] for job in (b1, a2, a3)] == [1, 2, 3]


async def test_the_fair_order_read_in_slices_is_the_order_of_the_places_queue_shows(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    counts = {"ann": 5, "ben": 1, "cy": 3, "dee": 2}
    async with running_core(settings, notifier, start=False) as core:
        for name, count in counts.items():
            for n in range(count):
                await core.service.create_single(requester(name), command(f"{name}{n}"))
        everyone = [e.job for name in counts for e in (await core.control.queue(requester(name))).entries]
        places = {job.id: await core.jobs.fair_place(job) for job in everyone}
        by_place = sorted(everyone, key=lambda job: places[job.id])
        assert sorted(places.values()) == list(range(1, 12))
        for offset in range(12):
            for limit in (1, 2, 3, 11):
                sliced = await core.jobs.fair_slice(offset=offset, limit=limit)
                assert [job.id for job in sliced] == [job.id for job in by_place[offset : offset + limit]]


async def test_a_group_admin_sees_the_groups_queue_and_a_member_only_their_own(tmp_path, sandbox):
    settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
    async with running_core(settings, notifier, start=False) as core:
        alice_job = await core.service.create_single(group_member("alice"), command("alice's"))
        bob_job = await core.service.create_single(group_member("bob"), command("bob's"))
        await core.service.create_single(group_member("erin", group="g2"), command("elsewhere"))
        member = await core.control.queue(group_member("alice"))
        assert [e.job.id for e in member.entries] == [alice_job.id] and not member.group
        admin = await core.control.queue(group_member("carol", admin=True))
        assert [e.job.id for e in admin.entries] == [alice_job.id, bob_job.id] and admin.group
        assert queue_text(admin).startswith("This group's jobs not finished yet:")
        assert "· User bob" in queue_text(admin)


async def test_queue_in_a_queue_of_100000_reads_the_users_jobs_and_sums_over_users(
    tmp_path: Path, jobs_built: list[int]
):
    await seed_queue(tmp_path / "bot.sqlite3", QUEUED, USERS)
    config = SandboxConfig(accounts=[SandboxAccount(ALICE_MAIL, max_jobs=4)])
    async with running_sandbox(config) as sandbox:
        settings, notifier = fast_settings(tmp_path, sandbox), RecordingNotifier()
        async with running_core(settings, notifier, start=False) as core:
            jobs_built[0] = 0
            started = time.perf_counter()
            view = await core.control.queue(requester("user5", "chat5"))
            took = time.perf_counter() - started
    # user5's jobs are q…05, q…10005, …: in this queue the fair order is the age order.
    assert [(e.job.id, e.place) for e in view.entries[:2]] == [("q00000005", 6), ("q00010005", 10006)]
    assert view.queued_total == QUEUED and len(view.entries) == 10
    assert jobs_built[0] == 10  # their own jobs, and no other job read
    assert took < 2, took  # sums over 10,000 users per job listed (generous: the machine is shared)


async def _finished_videos(core, seconds: tuple[int, ...]) -> None:
    """Completed jobs that each took `seconds` from being sent to finishing, as the tracker writes them."""
    for number, took in enumerate(seconds):
        job = Job(id=f"done{number}", requester=requester("earlier"), request=GenerationRequest(JobKind.CREATE))
        await core.jobs.add(job)
        finished = utcnow() - timedelta(minutes=10 - number)
        await core.jobs.transition(job.id, JobState.QUEUED, JobState.SUBMITTING)
        await core.jobs.transition(
            job.id, JobState.SUBMITTING, JobState.SUBMITTED, submitted_at=finished - timedelta(seconds=took)
        )
        await core.jobs.transition(job.id, JobState.SUBMITTED, JobState.COMPLETED, finished_at=finished)
        await core.jobs.transition(job.id, JobState.COMPLETED, JobState.DELIVERED)


async def _running(core, job_id: str) -> Job | None:
    job = await core.jobs.get(job_id)
    return job if job.state in {JobState.SUBMITTED, JobState.GENERATING} else None


async def _in(core, job_id: str, state: JobState) -> bool:
    return await state_of(core, job_id) is state


# ---------------------------------------------------------------------------------- console


async def test_console_queue_and_cancel(tmp_path):
    config = SandboxConfig(accounts=[SandboxAccount(ALICE_MAIL, max_jobs=0)])  # nothing leaves the queue
    async with running_sandbox(config) as sandbox:
        settings, out = fast_settings(tmp_path, sandbox), io.StringIO()
        async with open_core(settings) as core:
            terminal = Terminal(out, interactive=False)
            notifier = ConsoleNotifier(terminal, settings.console_output_dir)
            core.notifiers.register(Platform.CONSOLE, notifier)
            session = ConsoleSession(core.service, core.control, core.admin, core.gate, notifier, terminal, "tester")
            await session.handle("/create_single a fox in the snow")
            [job_id] = session.started
            await session.handle("/queue")
            assert f"{job_id} · #1 in line (0 ahead) · no estimate yet · a fox in the snow" in out.getvalue()
            await session.handle("/cancel nosuchjob")
            await session.handle(f"/cancel {job_id}")
            assert (await eventually(lambda: delivered(core, job_id))).outcome is JobState.CANCELLED
            assert notifier.failed_jobs == 0  # asked for, not a failure of the run
    text = out.getvalue()
    assert "⚠️ No job 'nosuchjob' found. /jobs lists your recent jobs." in text
    assert f"Job {job_id} is cancelled. It had not started, so nothing was charged." in text
    assert f"[{job_id}] ✖️ Cancelled by tester before it started; nothing was charged." in text
