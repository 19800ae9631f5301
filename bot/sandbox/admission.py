"""Whether a create, upscale or extend is accepted, on which account, and how it will end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.sandbox.config import SandboxAccount, SandboxConfig
from bot.sandbox.errors import (
    ACCOUNT_BUSY,
    ACCOUNT_NEEDS_ATTENTION,
    ALL_ACCOUNTS_BUSY,
    CONCURRENCY_LIMIT,
    OUT_OF_CREDITS,
    PROMPT_MODERATED,
    STATUS_ACCOUNT_NEEDS_ATTENTION,
    ApiError,
)
from bot.sandbox.videos import VideoPhase

if TYPE_CHECKING:
    from bot.sandbox.core import Sandbox


@dataclass(frozen=True)
class Admission:
    """What a job asks of an account."""

    email: str | None  # None: any account with room
    max_jobs: int | None  # the request's maxJobs, overriding the account's
    off_peak: bool
    prompt: str
    cost: int


def admit(sandbox: Sandbox, ask: Admission) -> SandboxAccount:
    """Pick the account that runs the job and charge it, or raise the documented error."""
    account = _choose_account(sandbox, ask)
    if account.needs_attention:
        raise ApiError(STATUS_ACCOUNT_NEEDS_ATTENTION, ACCOUNT_NEEDS_ATTENTION)
    # Off-peak jobs are queued by PixVerse, outside both concurrency limits.
    if not ask.off_peak:
        if not _has_room(sandbox, account, ask.max_jobs):
            raise ApiError(429, ACCOUNT_BUSY)
        limit = account.concurrency_limit
        if limit is not None and sandbox.occupying(account.email) >= limit:
            raise ApiError(429, CONCURRENCY_LIMIT)
    if mentions(ask.prompt, sandbox.config.moderation_word):
        raise ApiError(422, PROMPT_MODERATED)
    if account.credits < ask.cost:
        raise ApiError(412, OUT_OF_CREDITS)
    account.credits -= ask.cost
    return account


def planned_outcome(config: SandboxConfig, prompt: str) -> VideoPhase:
    """The final phase an accepted job will reach, from the words in its prompt."""
    if mentions(prompt, config.late_moderation_word):
        return VideoPhase.MODERATED
    if mentions(prompt, config.failure_word):
        return VideoPhase.FAILED
    if mentions(prompt, config.unlisted_status_word):
        return VideoPhase.UNLISTED
    return VideoPhase.COMPLETED


def mentions(prompt: str, word: str) -> bool:
    return bool(word) and word.lower() in prompt.lower()


def _has_room(sandbox: Sandbox, account: SandboxAccount, max_jobs: int | None) -> bool:
    return sandbox.executing(account.email) < (max_jobs or account.max_jobs)


def _choose_account(sandbox: Sandbox, ask: Admission) -> SandboxAccount:
    accounts = sandbox.config.accounts
    if ask.email:
        account = sandbox.config.account(ask.email)
        if account is None:
            raise ApiError(400, f"email: account {ask.email} is not configured")
        return account
    if not accounts:
        raise ApiError(400, "email: no PixVerse account is configured (POST accounts/{email} first)")
    candidates = [a for a in accounts if ask.off_peak or _has_room(sandbox, a, ask.max_jobs)]
    if not candidates:
        raise ApiError(429, ALL_ACCOUNTS_BUSY)
    # useapi.net balances load by picking at random among accounts with room.
    return sandbox.rng.choice(candidates)
