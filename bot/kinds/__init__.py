"""The generation kinds, one module each; adapters render every kind in `KINDS`."""

from __future__ import annotations

from bot.domain import JobKind
from bot.kinds.animate import ANIMATE
from bot.kinds.base import GenerationKind, Pictures
from bot.kinds.create import CREATE
from bot.kinds.edit import EXTEND, MODIFY
from bot.kinds.effect import EFFECT
from bot.kinds.frames import FRAMES
from bot.kinds.fusion import FUSION
from bot.kinds.transition import TRANSITION

KINDS: tuple[GenerationKind, ...] = (CREATE, ANIMATE, FRAMES, TRANSITION, FUSION, EFFECT, MODIFY, EXTEND)
_BY_JOB_KIND = {kind.job_kind: kind for kind in KINDS}
_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_of(job_kind: JobKind) -> GenerationKind | None:
    """The command kind that makes `job_kind` jobs (None for upscale, which only a button makes)."""
    return _BY_JOB_KIND.get(job_kind)


def kind_named(name: str) -> GenerationKind | None:
    return _BY_NAME.get(name)


__all__ = [
    "ANIMATE",
    "CREATE",
    "EFFECT",
    "EXTEND",
    "FRAMES",
    "FUSION",
    "KINDS",
    "MODIFY",
    "TRANSITION",
    "GenerationKind",
    "Pictures",
    "kind_named",
    "kind_of",
]
