"""What the adapter keeps with each job: the interaction it answers through while the token lives.

It travels in `Requester.context` (opaque to the core, persisted with the job), so a
result that arrives after a restart can still edit the progress message and post the
followup, for as long as Discord honours the interaction's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Discord's own default upload limit, for jobs made before the interaction said otherwise.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Discord honours an interaction token for 15 minutes. A minute less leaves time for an
# upload started just before the end to land, instead of failing half-way.
DEFAULT_TOKEN_LIFETIME = timedelta(minutes=14)


@dataclass(frozen=True, slots=True)
class InteractionContext:
    application_id: int
    token: str
    expires_at: datetime
    # The deferred ("thinking") response that shows the job's progress; None if Discord did not say.
    original_message_id: int | None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT

    def to_context(self) -> dict[str, Any]:
        """JSON values for `Requester.context`."""
        return {
            "interaction_token": self.token,
            "application_id": str(self.application_id),
            "token_expires_at": self.expires_at.isoformat(),
            "original_message_id": None if self.original_message_id is None else str(self.original_message_id),
            "upload_limit": self.upload_limit,
        }

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> InteractionContext | None:
        """Read it back; None for a job that did not come from an interaction."""
        try:
            original = context.get("original_message_id")
            return cls(
                application_id=int(context["application_id"]),
                token=str(context["interaction_token"]),
                expires_at=datetime.fromisoformat(context["token_expires_at"]),
                original_message_id=int(original) if original else None,
                upload_limit=int(context.get("upload_limit") or DEFAULT_UPLOAD_LIMIT),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def is_live(self, now: datetime) -> bool:
        return now < self.expires_at
