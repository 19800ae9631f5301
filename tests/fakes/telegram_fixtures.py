"""The Telegram adapter under test: the real aiogram bot, polling FakeTelegram, on a core using the sandbox.

Fixtures for tests/test_telegram_*.py — `fake` (a FakeTelegram) and `bot` (the adapter running
against it); a test module imports `fake_fixture, bot_fixture` to use them — and helpers:

    async def test_something(fake, bot):
        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox")
        [video] = await wait_videos(fake, ALICE_CHAT)

Helpers read what a user would see (`fake.bot_messages`), or wait on it; `HandledUpdates`
tells when aiogram finished an update, so a test can prove the bot stayed silent
without sleeping.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.telegram import Pacing, TelegramAdapter, running_telegram
from bot.bootstrap import Core, open_core
from bot.domain import Job, JobState, Platform, UserRef
from bot.ports import UNLIMITED
from bot.settings import Settings
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.harness import eventually, fast_settings

JSON = dict[str, Any]

ALICE = FakeUser(id=1001, first_name="Alice", username="alice")
ALICE_CHAT = FakeChat.private(ALICE)
BOB = FakeUser(id=1002, first_name="Bob")
CAROL = FakeUser(id=1003, first_name="Carol")
OPERATOR = FakeUser(id=9001, first_name="Olga")
OPERATOR_CHAT = FakeChat.private(OPERATOR)
GROUP = FakeChat(id=-1001000000001, type="supergroup", title="Pix friends")
FORUM = FakeChat(id=-1001000000002, type="supergroup", title="Pix lab", is_forum=True)

# Progress as fast as the core reports; 429s waited out briefly.
FAST_PACING = Pacing(private_chat=UNLIMITED, group_chat=UNLIMITED, retry_attempts=5, max_retry_wait=5)
VIDEO_TIMEOUT = 15.0


@pytest.fixture(name="fake")
async def fake_fixture() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture(name="bot")
async def bot_fixture(tmp_path: Path, sandbox: Any, fake: FakeTelegram) -> AsyncIterator[RunningBot]:
    """The adapter polling `fake`, on a core using the `sandbox` fixture (tests/conftest.py)."""
    async with running_bot(telegram_settings(tmp_path, sandbox, fake)) as running:
        yield running


def telegram_settings(tmp_path: Path, sandbox: Any, fake: FakeTelegram, **overrides: Any) -> Settings:
    """Fast core settings, with the bot token of `fake` and its address as a self-hosted Bot API server."""
    values: dict[str, Any] = {
        "telegram_bot_token": SecretStr(fake.token),
        "telegram_api_base": fake.base_url,
        "bot_admin_ids": [f"telegram:{OPERATOR.id}"],
    }
    return fast_settings(tmp_path, sandbox, **(values | overrides))


@dataclass
class RunningBot:
    core: Core
    adapter: TelegramAdapter
    handled: HandledUpdates

    async def job(self, job_id: str) -> Job:
        job = await self.core.jobs.get(job_id)
        assert job is not None, job_id
        return job

    async def delivered(self, job_id: str) -> Job:
        """Wait until the job's outcome has reached the chat (or was given up on)."""

        async def done() -> Job | None:
            job = await self.job(job_id)
            return job if job.state is JobState.DELIVERED else None

        return await eventually(done, timeout=VIDEO_TIMEOUT, what=f"job {job_id} delivered")


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, pacing: Pacing = FAST_PACING) -> AsyncIterator[RunningBot]:
    """A started core with the Telegram adapter running on it (polling, or webhook when BOT_PUBLIC_URL is set)."""
    with HandledUpdates.installed() as handled:
        async with open_core(settings) as core, running_telegram(core, pacing=pacing) as adapter:
            yield RunningBot(core, adapter, handled)


class HandledUpdates(logging.Handler):
    """aiogram's "Update id=N is handled/not handled" log lines, collected: N → handled."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: dict[int, bool] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(record.msg, str) and record.msg.startswith("Update id=") and isinstance(args, tuple):
            update_id, outcome = args[0], args[1]
            self.seen[int(str(update_id))] = outcome == "handled"

    async def finished(self, update: JSON) -> bool:
        """Wait until aiogram is done with `update`; True when a handler took it."""
        update_id = update["update_id"]
        await eventually(lambda: update_id in self.seen, what=f"update {update_id} handled")
        return self.seen[update_id]

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[HandledUpdates]:
        logger = logging.getLogger("aiogram.event")
        handler, level = cls(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


# ---------------------------------------------------------------- what the chat shows


def user_ref(user: FakeUser) -> UserRef:
    """The core's name for a fake user (display names do not matter to lookups)."""
    return UserRef(Platform.TELEGRAM, str(user.id))


def videos(fake: FakeTelegram, chat: FakeChat, *, thread_id: int | None = None) -> list[JSON]:
    return [m for m in fake.bot_messages(chat, thread_id=thread_id) if "video" in m]


async def wait_videos(fake: FakeTelegram, chat: FakeChat, count: int = 1, **where: Any) -> list[JSON]:
    """Wait until the chat shows `count` videos from the bot; returns them (oldest first)."""

    def enough() -> list[JSON] | None:
        found = videos(fake, chat, **where)
        return found if len(found) >= count else None

    return await fake.wait_for(enough, VIDEO_TIMEOUT, what=f"{count} video(s) in chat {chat.id}")


def replies_to(fake: FakeTelegram, chat: FakeChat, message: JSON) -> list[JSON]:
    """The bot's messages (as they stand now) that reply to `message`."""
    return [
        m for m in fake.bot_messages(chat) if m.get("reply_to_message", {}).get("message_id") == message["message_id"]
    ]


async def wait_text_reply(fake: FakeTelegram, chat: FakeChat, message: JSON, containing: str = "") -> JSON:
    """Wait for a text reply from the bot to `message` (containing `containing`); return it."""

    def found() -> JSON | None:
        texts = [m for m in replies_to(fake, chat, message) if containing in m.get("text", "")]
        return texts[-1] if texts else None

    return await fake.wait_for(found, what=f"a reply containing {containing!r} to message {message['message_id']}")


def buttons(message: JSON) -> list[str]:
    """The callback_data of every inline button under `message`."""
    return [b["callback_data"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def job_id_of(video: JSON) -> str:
    """The job a posted video belongs to, read from its buttons (`px:<action>:<job id>`)."""
    return buttons(video)[0].rsplit(":", 1)[1]


def status_message(fake: FakeTelegram, chat: FakeChat, command: JSON) -> JSON:
    """The progress message the bot keeps editing for the job `command` started (its first text reply)."""
    return next(m for m in replies_to(fake, chat, command) if "text" in m)


def free_port() -> int:
    """A loopback port free right now, for a server whose URL must be known before it starts
    (BOT_PUBLIC_URL is handed to Telegram in setWebhook before the HTTP server serves)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
