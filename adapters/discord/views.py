"""The buttons under a finished video, and the dialogs of remix and modify.

The buttons are `DynamicItem`s: their custom_id (`px:<action>:<job id>`) carries
everything a press needs, so a bot that restarted — and so lost every view object —
still answers presses on videos it posted before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, cast

import discord

from adapters.discord.responder import MESSAGE_MODERATOR, Responder
from bot.commands import V1_PROMPT_MAX
from bot.domain import TEXT_ACTIONS, Requester, ResultAction
from bot.service import GenerationService

BUTTON_LOOKS: dict[ResultAction, tuple[str, str]] = {
    ResultAction.REROLL: ("🔄", "Reroll"),
    ResultAction.REMIX: ("🔀", "Remix"),
    ResultAction.UPSCALE: ("⬆️", "Upscale"),
    ResultAction.EXTEND: ("➕", "Extend"),
    ResultAction.MODIFY: ("✏️", "Modify"),
}
# The dialog a button that takes text opens: its title, its field's label and description,
# and whether it starts with the video's prompt (a remix edits it; a change starts blank).
DIALOG_LOOKS: dict[ResultAction, tuple[str, str, str, bool]] = {
    ResultAction.REMIX: ("🔀 Remix with a new prompt", "New prompt", "Same settings, new seed, this text.", True),
    ResultAction.MODIFY: ("✏️ Modify this video", "The change", "What to change, e.g. make it snow.", False),
}
# Job ids are short and alphanumeric (bot.domain.new_job_id), so a custom_id stays far below 100 chars.
CUSTOM_ID_TEMPLATE = rf"px:(?P<action>{'|'.join(a.value for a in ResultAction)}):(?P<job>[A-Za-z0-9]+)"
# The dialog waits as long as Discord lets us answer what it submits.
TEXT_DIALOG_TIMEOUT = 15 * 60.0


class ResultActions:
    """What the result buttons and their dialogs do: the core's `press`, through the responder."""

    def __init__(self, service: GenerationService, responder: Responder) -> None:
        self._service = service
        self._responder = responder

    async def pressed(self, interaction: discord.Interaction, job_id: str, action: ResultAction) -> None:
        if action in TEXT_ACTIONS:
            # A modal must be the interaction's first answer, so no deferral here; the
            # permission check runs first, so strangers get a note instead of a dialog.
            async def open_dialog(requester: Requester) -> None:
                parent = await self._service.button_target(requester, job_id)
                await interaction.response.send_modal(TextDialog(self, action, job_id, parent.request.user_prompt))

            await self._responder.run(interaction, open_dialog, admin_if=MESSAGE_MODERATOR, acknowledge=False)
        else:
            await self.press(interaction, job_id, action)

    async def press(
        self, interaction: discord.Interaction, job_id: str, action: ResultAction, *, prompt: str | None = None
    ) -> None:
        async def press(requester: Requester) -> None:
            await self._service.press(requester, job_id, action, prompt=prompt)

        await self._responder.run(interaction, press, admin_if=MESSAGE_MODERATOR)


class _CarriesResultActions(Protocol):
    result_actions: ResultActions


class ResultButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    def __init__(self, action: ResultAction, job_id: str) -> None:
        emoji, label = BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, emoji=emoji, label=label, custom_id=f"px:{action.value}:{job_id}"
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        return cls(ResultAction(match["action"]), match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        # Buttons outlive any object that made them; the bot is what is always there.
        actions = cast(_CarriesResultActions, interaction.client).result_actions
        await actions.pressed(interaction, self.job_id, self.action)


class TextDialog(discord.ui.Modal):
    """The text 🔀 Remix (the new prompt) or ✏️ Modify (the change) asks for."""

    def __init__(self, actions: ResultActions, action: ResultAction, job_id: str, previous_prompt: str) -> None:
        title, label, description, starts_with_prompt = DIALOG_LOOKS[action]
        super().__init__(title=title, custom_id=f"px:{action.value}-prompt:{job_id}", timeout=TEXT_DIALOG_TIMEOUT)
        self._actions = actions
        self._action = action
        self._job_id = job_id
        self.prompt: discord.ui.TextInput[TextDialog] = discord.ui.TextInput(
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            max_length=V1_PROMPT_MAX,
            default=(previous_prompt[:V1_PROMPT_MAX] or None) if starts_with_prompt else None,
        )
        self.add_item(discord.ui.Label(text=label, description=description, component=self.prompt))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._actions.press(interaction, self._job_id, self._action, prompt=self.prompt.value)


def result_view(job_id: str, actions: Sequence[ResultAction]) -> discord.ui.View:
    """The row of buttons under a finished video."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(ResultButton(action, job_id))
    return view


def buttons_legend() -> str:
    """The buttons, as the help text names them."""
    return " · ".join(f"{emoji} {label}" for emoji, label in BUTTON_LOOKS.values())
