"""The buttons under a finished video, the dialogs of remix, modify and lip-sync, and ✖️ Cancel
under a job's progress.

The buttons are `DynamicItem`s: their custom_id (`px:<action>:<job id>`) carries
everything a press needs, so a bot that restarted — and so lost every view object —
still answers presses on videos it posted before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import discord

from adapters.discord.responder import MESSAGE_MODERATOR, Responder
from bot.cancellation import JobControl
from bot.commands import V1_PROMPT_MAX
from bot.domain import TEXT_ACTIONS, Requester, ResultAction
from bot.service import GenerationService
from bot.text_options import LIPSYNC_SPEECH_MAX_CHARS

BUTTON_LOOKS: dict[ResultAction, tuple[str, str]] = {
    ResultAction.REROLL: ("🔄", "Reroll"),
    ResultAction.REMIX: ("🔀", "Remix"),
    ResultAction.UPSCALE: ("⬆️", "Upscale"),
    ResultAction.EXTEND: ("➕", "Extend"),
    ResultAction.MODIFY: ("✏️", "Modify"),
    ResultAction.LIPSYNC: ("🗣", "Lip-sync"),
}


@dataclass(frozen=True, slots=True)
class DialogLooks:
    """The dialog a button that takes text opens (bot.domain.TEXT_ACTIONS)."""

    title: str
    label: str  # the text field's label and description
    description: str
    starts_with_prompt: bool = False  # a remix edits the video's prompt; the others start blank
    max_length: int = V1_PROMPT_MAX
    asks_voice: bool = False  # lip-sync: a second, optional field for the voice's name


DIALOG_LOOKS: dict[ResultAction, DialogLooks] = {
    ResultAction.REMIX: DialogLooks(
        "🔀 Remix with a new prompt", "New prompt", "Same settings, new seed, this text.", starts_with_prompt=True
    ),
    ResultAction.MODIFY: DialogLooks("✏️ Modify this video", "The change", "What to change, e.g. make it snow."),
    ResultAction.LIPSYNC: DialogLooks(
        "🗣 Lip-sync: what should it say?",
        "Words to say",
        f"Up to {LIPSYNC_SPEECH_MAX_CHARS} characters. For your own audio, use /lipsync.",
        max_length=LIPSYNC_SPEECH_MAX_CHARS,
        asks_voice=True,
    ),
}
# Job ids are short and alphanumeric (bot.domain.new_job_id), so a custom_id stays far below 100 chars.
CUSTOM_ID_TEMPLATE = rf"px:(?P<action>{'|'.join(a.value for a in ResultAction)}):(?P<job>[A-Za-z0-9]+)"
CANCEL_CUSTOM_ID_TEMPLATE = r"px:cancel:(?P<job>[A-Za-z0-9]+)"
# The dialog waits as long as Discord lets us answer what it submits.
TEXT_DIALOG_TIMEOUT = 15 * 60.0


class ResultActions:
    """What the result buttons and their dialogs do: the core's `press` (or `lipsync`), through the responder."""

    def __init__(self, service: GenerationService, control: JobControl, responder: Responder) -> None:
        self._service = service
        self._control = control
        self._responder = responder

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        """✖️ Cancel under a progress message: the core's answer, to the presser only."""

        async def cancel(requester: Requester) -> str:
            return await self._control.cancel(requester, job_id)

        await self._responder.run(interaction, cancel)

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

    async def answered(
        self, interaction: discord.Interaction, job_id: str, action: ResultAction, text: str, voice: str | None
    ) -> None:
        """A dialog's text: the remix prompt or the change go to `press`; lip-sync's words, in
        the voice named, to the core's `lipsync`."""
        if action is not ResultAction.LIPSYNC:
            await self.press(interaction, job_id, action, prompt=text)
            return

        async def speak(requester: Requester) -> None:
            await self._service.lipsync(requester, job_id, text=text, voice=voice)

        await self._responder.run(interaction, speak, admin_if=MESSAGE_MODERATOR)

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


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_CUSTOM_ID_TEMPLATE):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, emoji="✖️", label="Cancel", custom_id=f"px:cancel:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        actions = cast(_CarriesResultActions, interaction.client).result_actions
        await actions.cancel(interaction, self.job_id)


def cancel_view(job_id: str) -> discord.ui.View:
    """The ✖️ Cancel button a progress message carries until the job's outcome replaces it."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


class TextDialog(discord.ui.Modal):
    """The text 🔀 Remix (the new prompt), ✏️ Modify (the change) or 🗣 Lip-sync (the words,
    and optionally a voice) asks for."""

    def __init__(self, actions: ResultActions, action: ResultAction, job_id: str, previous_prompt: str) -> None:
        looks = DIALOG_LOOKS[action]
        super().__init__(title=looks.title, custom_id=f"px:{action.value}-prompt:{job_id}", timeout=TEXT_DIALOG_TIMEOUT)
        self._actions = actions
        self._action = action
        self._job_id = job_id
        self.prompt: discord.ui.TextInput[TextDialog] = discord.ui.TextInput(
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            max_length=looks.max_length,
            default=(previous_prompt[: looks.max_length] or None) if looks.starts_with_prompt else None,
        )
        self.add_item(discord.ui.Label(text=looks.label, description=looks.description, component=self.prompt))
        self.voice: discord.ui.TextInput[TextDialog] | None = None
        if looks.asks_voice:
            self.voice = discord.ui.TextInput(custom_id="voice", required=False, max_length=40)
            self.add_item(
                discord.ui.Label(text="Voice", description="A name /voices lists (optional)", component=self.voice)
            )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        voice = (self.voice.value.strip() or None) if self.voice is not None else None
        await self._actions.answered(interaction, self._job_id, self._action, self.prompt.value, voice)


def result_view(job_id: str, actions: Sequence[ResultAction]) -> discord.ui.View:
    """The row of buttons under a finished video."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(ResultButton(action, job_id))
    return view


def buttons_legend() -> str:
    """The buttons, as the help text names them."""
    return " · ".join(f"{emoji} {label}" for emoji, label in BUTTON_LOOKS.values())
