"""Shared fixtures: a PixVerse sandbox on a loopback port, with generations fast enough for tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.sandbox import Sandbox, SandboxConfig, running_sandbox
from storage import SqlDatabase, open_storage
from tests.postgres_server import REQUIRED_ENV, PostgresServer, PostgresUnavailable, start_server

# Long enough to observe a video while it generates, short enough to keep tests fast.
TEST_GENERATION_SECONDS = 0.3
TEST_OFF_PEAK_SECONDS = 0.8


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """The sandbox's starting config; override this fixture to start it differently."""
    return SandboxConfig(generation_seconds=TEST_GENERATION_SECONDS, off_peak_seconds=TEST_OFF_PEAK_SECONDS)


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    """A running sandbox; `sandbox.base_url` is its address, `sandbox.config` may be changed live."""
    async with running_sandbox(sandbox_config) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run, started on first use and always stopped.

    Skips the test when no PostgreSQL is installed, unless BOT_TEST_POSTGRESQL_REQUIRED
    is set (as `.ci/run` does): then that is a failure."""
    try:
        server = start_server()
    except PostgresUnavailable as missing:
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(f"{REQUIRED_ENV} is set but {missing}")
        pytest.skip(f"PostgreSQL tests skipped: {missing}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """BOT_DATABASE for a fresh, empty database of each backend: a SQLite file, and a new
    database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "bot.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database()


@pytest.fixture
async def store_db(database_url: str) -> AsyncIterator[SqlDatabase]:
    """A fresh, open database of each backend: the storage contract runs on both."""
    async with await open_storage(database_url) as database:
        yield database
