"""The buttons under a finished video, the remix and lip-sync dialogs, and ✖️ Cancel under a job's progress.

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
from bot.cancellation import JobControl
from bot.commands import V1_PROMPT_MAX
from bot.domain import Requester, ResultAction
from bot.service import GenerationService
from bot.text_options import LIPSYNC_SPEECH_MAX_CHARS

BUTTON_LOOKS: dict[ResultAction, tuple[str, str]] = {
    ResultAction.REROLL: ("🔄", "Reroll"),
    ResultAction.REMIX: ("🔀", "Remix"),
    ResultAction.UPSCALE: ("⬆️", "Upscale"),
    ResultAction.EXTEND: ("➕", "Extend"),
    ResultAction.LIPSYNC: ("🗣", "Lip-sync"),
}
# Job ids are short and alphanumeric (bot.domain.new_job_id), so a custom_id stays far below 100 chars.
CUSTOM_ID_TEMPLATE = rf"px:(?P<action>{'|'.join(a.value for a in ResultAction)}):(?P<job>[A-Za-z0-9]+)"
CANCEL_CUSTOM_ID_TEMPLATE = r"px:cancel:(?P<job>[A-Za-z0-9]+)"
# The dialog waits as long as Discord lets us answer what it submits.
REMIX_DIALOG_TIMEOUT = 15 * 60.0


class ResultActions:
    """What the result buttons and the remix dialog do: the core's `press`, through the responder."""

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
        if action is ResultAction.REMIX:
            # A modal must be the interaction's first answer, so no deferral here; the
            # permission check runs first, so strangers get a note instead of a dialog.
            async def open_dialog(requester: Requester) -> None:
                parent = await self._service.button_target(requester, job_id)
                await interaction.response.send_modal(RemixDialog(self, job_id, parent.request.user_prompt))

            await self._responder.run(interaction, open_dialog, admin_if=MESSAGE_MODERATOR, acknowledge=False)
        elif action is ResultAction.LIPSYNC:

            async def open_lipsync_dialog(requester: Requester) -> None:
                await self._service.button_target(requester, job_id)
                await interaction.response.send_modal(LipsyncDialog(self, job_id))

            await self._responder.run(interaction, open_lipsync_dialog, admin_if=MESSAGE_MODERATOR, acknowledge=False)
        else:
            await self._press(interaction, job_id, action)

    async def lipsync(self, interaction: discord.Interaction, job_id: str, text: str, voice: str | None) -> None:
        async def speak(requester: Requester) -> None:
            await self._service.lipsync(requester, job_id, text=text, voice=voice)

        await self._responder.run(interaction, speak, admin_if=MESSAGE_MODERATOR)

    async def remix(self, interaction: discord.Interaction, job_id: str, prompt: str) -> None:
        await self._press(interaction, job_id, ResultAction.REMIX, prompt=prompt)

    async def _press(
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


class RemixDialog(discord.ui.Modal, title="🔀 Remix with a new prompt"):
    def __init__(self, actions: ResultActions, job_id: str, previous_prompt: str) -> None:
        super().__init__(custom_id=f"px:remix-prompt:{job_id}", timeout=REMIX_DIALOG_TIMEOUT)
        self._actions = actions
        self._job_id = job_id
        self.prompt: discord.ui.TextInput[RemixDialog] = discord.ui.TextInput(
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            max_length=V1_PROMPT_MAX,
            default=previous_prompt[:V1_PROMPT_MAX] or None,
        )
        self.add_item(
            discord.ui.Label(
                text="New prompt", description="Same settings, new seed, this text.", component=self.prompt
            )
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._actions.remix(interaction, self._job_id, self.prompt.value)


class LipsyncDialog(discord.ui.Modal, title="🗣 Lip-sync: what should it say?"):
    """The words and the voice; an audio track comes with the /lipsync command instead."""

    def __init__(self, actions: ResultActions, job_id: str) -> None:
        super().__init__(custom_id=f"px:lipsync-words:{job_id}", timeout=REMIX_DIALOG_TIMEOUT)
        self._actions = actions
        self._job_id = job_id
        self.words: discord.ui.TextInput[LipsyncDialog] = discord.ui.TextInput(
            custom_id="words", style=discord.TextStyle.paragraph, max_length=LIPSYNC_SPEECH_MAX_CHARS
        )
        self.voice: discord.ui.TextInput[LipsyncDialog] = discord.ui.TextInput(
            custom_id="voice", required=False, max_length=40
        )
        self.add_item(
            discord.ui.Label(
                text="Words to say",
                description=f"Up to {LIPSYNC_SPEECH_MAX_CHARS} characters. For your own audio, use /lipsync.",
                component=self.words,
            )
        )
        self.add_item(
            discord.ui.Label(text="Voice", description="A name /voices lists (optional)", component=self.voice)
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._actions.lipsync(interaction, self._job_id, self.words.value, self.voice.value.strip() or None)


def result_view(job_id: str, actions: Sequence[ResultAction]) -> discord.ui.View:
    """The row of buttons under a finished video."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(ResultButton(action, job_id))
    return view


def buttons_legend() -> str:
    """The buttons, as the help text names them."""
    return " · ".join(f"{emoji} {label}" for emoji, label in BUTTON_LOOKS.values())
