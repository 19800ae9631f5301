"""Error answers of the sandbox: the texts useapi.net documents, and one exception for all.

Handlers raise `ApiError`; one middleware turns it into `{"error": ..., "code": ...}`.
"""

from __future__ import annotations

UNAUTHORIZED = "Unauthorized"
ACCOUNT_BUSY = "Account is busy executing tasks."
ALL_ACCOUNTS_BUSY = "All configured accounts are running at maximum capacity."
CONCURRENCY_LIMIT = "Reached the limit for concurrent generations."
OUT_OF_CREDITS = "All Credits have been used up. Please upgrade your membership or purchase credits."
PROMPT_MODERATED = "Your prompt has triggered our AI moderator, please re-enter your prompt"
ACCOUNT_NEEDS_ATTENTION = (
    "Your PixVerse account has pending error. Please address this issue at "
    "https://useapi.net/docs/api-pixverse-v2/post-pixverse-accounts-email before making any new API calls."
)
INJECTED_SERVER_ERROR = "Sandbox injected server error"

# useapi.net's own status for "the PixVerse account needs the operator".
STATUS_ACCOUNT_NEEDS_ATTENTION = 596


class ApiError(Exception):
    """An answer other than success: an HTTP status and the `error` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
