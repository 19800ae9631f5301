"""Shared fixtures: a PixVerse sandbox on a loopback port, with generations fast enough for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox import Sandbox, SandboxConfig, running_sandbox

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
