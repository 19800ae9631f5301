"""The upstream (useapi.net PixVerse v2) error tree.

Every failure of a call to the upstream is one of these. `str(error)` is a sentence
fit to show a chat user; details for the operator (status, upstream text) are
attributes. Classes for HTTP statuses are chosen by one factory, `error_from_response`,
so the mapping lives in one place.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class of every error raised by the PixVerse client."""

    user_message = "The video service had a problem. Please try again later."

    def __init__(self, detail: str = "", *, status: int | None = None) -> None:
        # `detail` is the upstream's own text (for logs); never includes credentials.
        self.detail = detail
        self.status = status
        super().__init__(self.user_message)

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, detail={self.detail!r})"


class RequestInvalid(UpstreamError):
    """The request broke a documented limit; caught before anything was sent."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.user_message = f"{field}: {problem}"
        super().__init__(self.user_message)


class BadRequest(UpstreamError):
    """400: the upstream rejected the request's parameters."""

    user_message = "The video service rejected the request's parameters."

    def __str__(self) -> str:
        # The upstream's 400 text names the bad field; it is safe and useful to show.
        return f"{self.user_message} ({self.detail})" if self.detail else self.user_message


class Unauthorized(UpstreamError):
    """401: the useapi.net token is wrong or expired (an operator problem)."""

    user_message = "The bot's video-service token was rejected. The operator has been told."


class NotFound(UpstreamError):
    """404: the video does not exist (or, for GET videos/{id}, is not ready yet)."""

    user_message = "That video was not found at the video service."


class InsufficientCredits(UpstreamError):
    """412: the PixVerse account has run out of credits."""

    user_message = "The bot's PixVerse account is out of credits. The operator has been told."


class Moderated(UpstreamError):
    """422: PixVerse's own moderator refused the prompt or image."""

    user_message = "PixVerse's moderator refused this prompt or image. Please rephrase it."


class Busy(UpstreamError):
    """429: no capacity right now; the caller queues and retries later."""

    user_message = "The video service is busy; the request is waiting for a free slot."


class AccountsAtCapacity(Busy):
    """429 from useapi.net: the account(s) already run `maxJobs` jobs."""


class ConcurrencyLimit(Busy):
    """429 passed on from PixVerse: the plan's concurrent-generation limit is reached."""


class AccountNeedsAttention(UpstreamError):
    """596: the PixVerse account has a pending error the operator must clear."""

    user_message = "The bot's PixVerse account needs attention from the operator."


class ServerError(UpstreamError):
    """5xx: the upstream failed; reads are retried, writes are checked first."""

    user_message = "The video service is having trouble right now. Please try again later."


class TransportError(UpstreamError):
    """The connection failed or the response never came back."""

    user_message = "The video service could not be reached. Please try again later."


class Timeout(TransportError):
    """No response within the configured time."""


class RequestNotSent(TransportError):
    """No connection could be made, so the request never reached the upstream; safe to send again."""


class OutcomeUnknown(TransportError):
    """A create/upscale/extend was sent, its answer was lost, and it was not found upstream.

    It may still have run (and been charged): the caller must look it up by `reply_ref`
    before sending it again.
    """

    user_message = "The video service did not confirm the request; it may still be running."

    def __init__(self, detail: str = "", *, reply_ref: str | None = None, status: int | None = None) -> None:
        self.reply_ref = reply_ref
        super().__init__(detail, status=status)


class InvalidResponse(UpstreamError):
    """A 2xx answer (or a callback body) that is not in the documented shape."""

    user_message = "The video service sent an answer the bot could not read."


class TooLarge(UpstreamError):
    """A download is bigger than the caller allows; no partial file is left behind."""

    user_message = "The video is larger than this chat accepts."

    def __init__(self, detail: str = "", *, max_bytes: int | None = None, size: int | None = None) -> None:
        # `size`: the declared Content-Length, or the bytes received when the stream went over.
        self.max_bytes = max_bytes
        self.size = size
        super().__init__(detail)


_BY_STATUS: dict[int, type[UpstreamError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    412: InsufficientCredits,
    422: Moderated,
    596: AccountNeedsAttention,
}

# PixVerse's own limit (passed through by useapi.net) versus useapi.net's scheduler
# being full: both are 429, only the text tells them apart.
_PIXVERSE_CONCURRENCY_MARKER = "concurrent generations"


def error_from_response(status: int, body: object) -> UpstreamError:
    """Map an upstream HTTP error status and its JSON body to one error class."""
    detail = ""
    if isinstance(body, dict) and body.get("error") is not None:
        detail = str(body["error"])
    elif isinstance(body, str):
        detail = body[:500]
    if status == 429:
        if _PIXVERSE_CONCURRENCY_MARKER in detail.lower():
            return ConcurrencyLimit(detail, status=status)
        return AccountsAtCapacity(detail, status=status)
    if status in _BY_STATUS:
        return _BY_STATUS[status](detail, status=status)
    if status >= 500:
        return ServerError(detail, status=status)
    return UpstreamError(detail, status=status)
