"""A just-admitted job's first answer goes out without reading the job back; a report that
had to wait is read back first, so a job finished meanwhile (by another process) shows nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain import ChatRef, GenerationRequest, Job, JobKind, JobState, Platform, Requester, UserRef
from bot.ports import ChatBudget, Progress, ProgressStage, VideoDelivery
from bot.progress import WRITTEN_SNAPSHOT_TRUSTED_FOR, Notifiers, ProgressReporter
from storage import Database, SqlJobStore, open_database

QUEUED = Progress(ProgressStage.QUEUED, queue_position=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class OneChat:
    """The platform side: one chat whose budget allows a message every `gap` seconds."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.shown: list[tuple[str, ProgressStage]] = []

    def upload_limit(self, job: Job) -> int:
        return 0

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return ChatBudget(min_gap=self.gap)

    def budget_scope(self, job: Job) -> str:
        return job.chat.chat_id

    async def progress(self, job: Job, progress: Progress) -> str | None:
        self.shown.append((job.id, progress.stage))
        return None

    async def deliver(self, job: Job, delivery: VideoDelivery) -> None:
        raise AssertionError("no delivery here")

    async def failed(self, job: Job, reason: str) -> None:
        raise AssertionError("no failure here")

    async def alert_operator(self, text: str) -> None:
        raise AssertionError("no alert here")


class CountedReads(SqlJobStore):
    """The real store, counting the reads of one job (what the reporter does before a send)."""

    reads = 0

    async def get(self, job_id: str) -> Job | None:
        self.reads += 1
        return await super().get(job_id)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "bot.sqlite3")
    try:
        yield database
    finally:
        await database.close()


async def _admitted(jobs: SqlJobStore, job_id: str) -> Job:
    requester = Requester(user=UserRef(Platform.TELEGRAM, job_id, job_id), chat=ChatRef(Platform.TELEGRAM, "-1"))
    job = Job(id=job_id, requester=requester, request=GenerationRequest(kind=JobKind.CREATE))
    await jobs.add(job)
    return job


async def test_a_just_admitted_jobs_first_answer_is_not_read_back_and_later_reports_are(db: Database) -> None:
    jobs, chat, clock = CountedReads(db), OneChat(gap=0.0), Clock()
    notifiers = Notifiers()
    notifiers.register(Platform.TELEGRAM, chat)
    reporter = ProgressReporter(notifiers, jobs, interval=0.0, clock=clock)
    job = await _admitted(jobs, "fresh")

    await reporter.report(job, QUEUED, written=True)
    await reporter.idle()
    assert chat.shown == [("fresh", ProgressStage.QUEUED)] and jobs.reads == 0

    # A snapshot someone read earlier (a scheduler pass, a poll) is read again before it is shown.
    await reporter.report(job, Progress(ProgressStage.STARTED, elapsed_seconds=0))
    await reporter.idle()
    assert chat.shown[-1] == ("fresh", ProgressStage.STARTED) and jobs.reads == 1


async def test_a_written_report_that_waited_for_the_chats_budget_is_read_back(db: Database) -> None:
    # Telegram's budget is the chat's: a second job's first answer waits behind the first one's.
    gap = WRITTEN_SNAPSHOT_TRUSTED_FOR + 0.05
    jobs, chat, clock = CountedReads(db), OneChat(gap=gap), Clock()
    notifiers = Notifiers()
    notifiers.register(Platform.TELEGRAM, chat)
    reporter = ProgressReporter(notifiers, jobs, interval=0.0, clock=clock)
    first, second = await _admitted(jobs, "first"), await _admitted(jobs, "second")

    await reporter.report(first, QUEUED, written=True)
    await reporter.report(second, QUEUED, written=True)
    # While the second waits, another process cancels it (and will post that itself).
    assert await jobs.transition("second", JobState.QUEUED, JobState.CANCELLED)
    clock.now += gap
    await reporter.idle()
    assert chat.shown == [("first", ProgressStage.QUEUED)]
    assert jobs.reads == 1  # the second job's, once its snapshot was too old to trust
