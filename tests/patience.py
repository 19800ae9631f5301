"""How long tests wait for what should happen: a deadline, never a sleep.

A deadline only matters when a test is about to fail, so it is generous: on a loaded
2-core CI machine (the bot in a subprocess, the fakes, the sandbox) a slow pass must
not be reported as a failure. `TEST_PATIENCE` scales every deadline (default 4).
"""

from __future__ import annotations

import os

PATIENCE = float(os.environ.get("TEST_PATIENCE", "4"))


def deadline(seconds: float) -> float:
    """`seconds` as written in a test, scaled by the patience factor."""
    return seconds * PATIENCE
