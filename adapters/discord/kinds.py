"""Slash commands made from the generation kinds' declarations (bot.kinds).

Each kind becomes an `app_commands.Command` whose callback signature is generated from
the declaration: one attachment option per picture role (or `video` for a kind that
takes the user's own video), the prompt, and each option
typed (text, whole number within its range, yes/no), described and offering its
choices (models and qualities from the catalogue). discord.py reads the signature as it
reads any typed callback, so Discord validates types and ranges before the bot sees them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from bot.catalogue import Catalogue
from bot.kinds import GenerationKind
from bot.text_options import V1_PROMPT_MAX, Option

# What the command does with the filled-in values: the core's field names, the pictures in
# order, and the video (for a kind that takes one).
Run = Callable[
    [discord.Interaction, GenerationKind, dict[str, Any], list[discord.Attachment], discord.Attachment | None],
    Awaitable[None],
]
VIDEO_OPTION = "video"
Suggest = Callable[[discord.Interaction, str], Coroutine[Any, Any, list[Choice[str]]]]


def picture_names(kind: GenerationKind) -> list[str]:
    """`image`, `image2`, … — the attachment options, one per picture role."""
    count = len(kind.pictures.roles) if kind.pictures else 0
    return ["image" if n == 0 else f"image{n + 1}" for n in range(count)]


def slash_name(option: Option) -> str:
    return option.slash_name or option.field


def _annotation(option: Option, catalogue: Catalogue) -> Any:
    if option.flag:
        return bool
    if option.value_type is int:
        low, high = option.bounds or catalogue.duration_range
        return Range[int, low, high]
    if option.bounds is not None:
        return Range[str, option.bounds[0], option.bounds[1]]
    return str


def slash_command(
    kind: GenerationKind, catalogue: Catalogue, run: Run, suggest: Suggest, suggest_prompt: Suggest | None = None
) -> app_commands.Command:
    """`kind` as a slash command; `suggest` answers the autocomplete of `suggested` options,
    `suggest_prompt` the free text's when the kind offers it as you type (effect names)."""
    P = inspect.Parameter
    required: list[inspect.Parameter] = [P("interaction", P.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)]
    optional: list[inspect.Parameter] = []
    descriptions: dict[str, str] = {}
    for n, name in enumerate(picture_names(kind)):
        assert kind.pictures is not None
        needed = n < kind.pictures.required
        annotation = discord.Attachment if needed else discord.Attachment | None
        (required if needed else optional).append(
            P(name, P.POSITIONAL_OR_KEYWORD, annotation=annotation, default=P.empty if needed else None)
        )
        descriptions[name] = kind.picture_help[n] if n < len(kind.picture_help) else kind.pictures.roles[n]
    if kind.takes_video:
        required.append(P(VIDEO_OPTION, P.POSITIONAL_OR_KEYWORD, annotation=discord.Attachment))
        descriptions[VIDEO_OPTION] = kind.video_help
    prompt = Range[str, 1, V1_PROMPT_MAX]
    prompt_name = kind.prompt_name
    if kind.prompt_required:
        required.append(P(prompt_name, P.POSITIONAL_OR_KEYWORD, annotation=prompt))
    else:
        optional.append(P(prompt_name, P.POSITIONAL_OR_KEYWORD, annotation=prompt | None, default=None))
    descriptions[prompt_name] = kind.prompt_help
    choices: dict[str, list[Choice[str]]] = {}
    for option in kind.all_options:
        name = slash_name(option)
        optional.append(
            P(name, P.POSITIONAL_OR_KEYWORD, annotation=_annotation(option, catalogue) | None, default=None)
        )
        descriptions[name] = option.help or option.field
        if option.choices is not None:
            choices[name] = [Choice(name=value, value=value) for value in option.choices(catalogue)]
    by_slash_name = {slash_name(option): option.field for option in kind.all_options} | {prompt_name: "prompt"}
    pictures = picture_names(kind)

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        images = [values.pop(name) for name in pictures if values.get(name) is not None]
        video = values.pop(VIDEO_OPTION, None)
        fields = {by_slash_name.get(name, name): value for name, value in values.items() if name not in pictures}
        await run(interaction, kind, fields, images, video)

    callback.__signature__ = inspect.Signature(required + optional)  # type: ignore[attr-defined]
    callback.__name__ = callback.__qualname__ = kind.name
    command: app_commands.Command = app_commands.Command(name=kind.name, description=kind.summary, callback=callback)
    app_commands.describe(**descriptions)(command)
    if choices:
        app_commands.choices(**choices)(command)
    for option in kind.all_options:
        if option.suggested:
            command.autocomplete(slash_name(option))(suggest)
    if kind.prompt_suggested and suggest_prompt is not None:
        command.autocomplete(prompt_name)(suggest_prompt)
    return command
