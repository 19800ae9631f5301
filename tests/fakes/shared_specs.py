"""The chat platforms' machine-readable specs, which live in shared/ beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECS_DIR = (Path(__file__).resolve().parents[2] / ".." / "shared" / "specs").resolve()


def read_spec(file_name: str, what: str) -> dict[str, Any]:
    """Parse one spec file; a missing file says where it was looked for."""
    path = SPECS_DIR / file_name
    try:
        spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{what} not found at {path}; the shared/ folder must sit beside the repository checkout"
        ) from None
    return spec
