"""Telegram: pacing of progress-message edits (adapters/telegram/pacing.py)."""

from __future__ import annotations

from adapters.telegram.pacing import EditPacer
from tests.harness import eventually


async def test_an_early_edit_is_deferred_and_only_the_latest_is_made() -> None:
    pacer, made = EditPacer(), []

    async def edit(text: str) -> None:
        made.append(text)

    pacer.hold("message", 0.2)
    assert not pacer.ready("message")
    pacer.defer("message", lambda: edit("generating 0:01"))
    pacer.defer("message", lambda: edit("generating 0:02"))

    await eventually(lambda: made, what="the deferred edit")
    assert made == ["generating 0:02"]
    await eventually(lambda: pacer.ready("message"), what="the pacer to let edits through again")
    await pacer.close()


async def test_forgetting_a_message_drops_its_deferred_edit() -> None:
    pacer, made = EditPacer(), []

    async def edit() -> None:
        made.append("late")

    pacer.hold("message", 30)
    pacer.defer("message", edit)
    pacer.forget("message")

    assert pacer.ready("message")
    await pacer.close()
    assert made == []
