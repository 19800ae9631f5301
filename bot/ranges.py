"""Every number an admin may type, declared once with the range it must fall in.

Commands parse and check their numbers here (on every platform), Discord declares its
option bounds from the same ranges, and group settings saved earlier are checked
against them when read back. Infinity and nan are never numbers here: one such value
in a group's strike window once broke every prompt in that group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.errors import InvalidInput

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class NumberRange(Generic[N]):
    """A number's name (as messages call it), its kind (whole or not) and its bounds, both included."""

    name: str
    kind: type[N]
    low: N
    high: N
    # Words accepted instead of a number, for the refusal (", or 'unlimited'").
    also: str = ""

    def parse(self, typed: str) -> N:
        """The number in `typed`; `InvalidInput` naming the allowed range if it is not one in range."""
        try:
            value = self.kind(typed.strip())
        except ValueError:
            raise self.refusal(typed) from None
        return self.check(value, typed=typed)

    def check(self, value: N, *, typed: str | None = None) -> N:
        """`value` itself if it is in range; `InvalidInput` (quoting `typed`, if given) otherwise."""
        if not self.allows(value):
            raise self.refusal(str(value) if typed is None else typed)
        return value

    def allows(self, value: object) -> bool:
        """Whether `value` is a finite number of the right kind within the bounds."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        return math.isfinite(value) and self.low <= value <= self.high

    def refusal(self, typed: str) -> InvalidInput:
        what = "a whole number" if self.kind is int else "a number"
        bounds = f"between {self.low:.15g} and {self.high:.15g}"
        return InvalidInput(self.name, f"{typed!r} is not {what} {bounds}{self.also}")


# The maxima are far beyond any sensible use; they exist so that no typo (or prank)
# can set a value the arithmetic behind it cannot handle.
STRIKE_LIMIT = NumberRange("strike limit", int, 1, 100)
STRIKE_WINDOW_HOURS = NumberRange("window hours", float, 0.1, 30 * 24.0)
MUTE_MINUTES = NumberRange("mute minutes", float, 1.0, 365 * 24 * 60.0)
QUOTA_LIMIT = NumberRange("quota", int, 0, 1_000_000, also=", or 'unlimited'")
STATS_DAYS = NumberRange("days", int, 1, 3650)
MODLOG_ENTRIES = NumberRange("limit", int, 1, 50)
