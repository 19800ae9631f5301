"""The core's error tree: everything a command can refuse with.

`str(error)` is a message for the chat user that says what is wrong and what is
allowed. Adapters catch `BotError` in one place and show it; anything else is a bug
and gets logged with its traceback.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class of every refusal the core answers a user with."""

    # A silent refusal is not answered at all (a flood after its one warning, a
    # group where the bot is switched off): answering would be the flood.
    silent: bool = False


class InvalidInput(BotError):
    """A command's option is missing or out of range."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class JobNotFound(BotError):
    """No job with that id (or not one this user may see)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"No job {job_id!r} found. /jobs lists your recent jobs.")


class ButtonExpired(BotError):
    """A result button whose job the bot no longer keeps (deleted after RETENTION_DAYS)."""

    def __init__(self, job_id: str, kept_for: str | None) -> None:
        self.job_id = job_id
        gone = f"is older than {kept_for}, so the bot no longer keeps it" if kept_for else "is no longer known"
        super().__init__(f"This video {gone}: its buttons no longer work.")


class NotYourJob(BotError):
    """Someone other than the requester pressed a result button."""

    def __init__(self) -> None:
        super().__init__("Only the person who asked for this video can use its buttons.")


class NotYourJobToCancel(BotError):
    """Someone other than the requester (or an admin of the job's group) tried to cancel it."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Only the person who asked for job {job_id}, or an admin of its group, can cancel it.")


class ActionUnavailable(BotError):
    """The button does not apply to this job (no video yet, already upscaled …)."""


class TooManyOffPeakJobs(BotError):
    """The user already has as many off-peak jobs waiting as `MAX_OFF_PEAK_JOBS_PER_USER` allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"You already have {limit} off-peak video{'s' if limit != 1 else ''} waiting (at most {limit} at a time; "
            "PixVerse makes them within about a day). Ask for this one without off-peak, "
            "or again once one has arrived."
        )


class NotAllowed(BotError):
    """An admin command from someone who is not an admin (no details revealed)."""

    def __init__(self) -> None:
        super().__init__("Sorry, only admins can use this command.")


class Refused(BotError):
    """The user may not use the bot right now (banned, muted, flooding, switched off here)."""

    def __init__(self, message: str, *, silent: bool = False) -> None:
        self.silent = silent
        super().__init__(message)
