"""The slash commands that make videos, and the ones that look after them."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from adapters.discord.responder import Responder, user_ref
from adapters.discord.views import buttons_legend
from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.commands import MOTION_MAX, MOTION_MIN, V1_PROMPT_MAX, V1_SEED_MAX, Animate, CreateSingle, parse_command
from bot.domain import Requester
from bot.errors import InvalidInput
from bot.service import GenerationService
from bot.settings import V1_STYLES, Settings
from bot.texts import job_details, job_line
from bot.upstream.models import DURATION_MAX, DURATION_MIN, AspectRatio, Model, Quality

# Discord shows at most 25 autocomplete choices.
MAX_CHOICES = 25
Prompt = Range[str, 1, V1_PROMPT_MAX]
Seed = Range[int, 0, V1_SEED_MAX]
Duration = Range[int, DURATION_MIN, DURATION_MAX]


def _choices(values: Any) -> list[Choice[str]]:
    return [Choice(name=str(v), value=str(v)) for v in values]


# The v2 options both commands take, and their descriptions.
COMMON_CHOICES = {"model": _choices(Model), "quality": _choices(Quality)}
COMMON_DESCRIPTIONS = {
    "model": "PixVerse model (default: the operator's)",
    "quality": "Resolution",
    "seed": "Same seed + same prompt = similar video; 0 or empty picks one for you",
    "duration": "Length in seconds",
    "audio": "Add a generated soundtrack (not every model has it)",
    "off_peak": "Cheaper, but may take up to a day",
}


def command_fields(interaction: discord.Interaction, *, leave_out: str = "") -> dict[str, Any]:
    """The options the user filled in, named as the core's command fields.

    The method signatures below declare the options (Discord's schema); their values
    reach the core as they are, which validates them and names the field it refuses.
    """
    fields = {name: value for name, value in interaction.namespace if name != leave_out}
    if "seed" in fields:  # "seed" on Discord, v1's seed_value in the core
        fields["seed_value"] = fields.pop("seed")
    return fields


class GenerationCog(commands.Cog, name="Videos"):
    def __init__(
        self, service: GenerationService, responder: Responder, settings: Settings, tree: app_commands.CommandTree
    ) -> None:
        self._service = service
        self._responder = responder
        self._settings = settings
        self._tree = tree

    @app_commands.command(name="create_single", description="Make a short video from a text prompt")
    @app_commands.describe(
        prompt="What the video shows",
        style="Look of the video (default: the operator's)",
        aspect_ratio="Shape of the video",
        negative_prompt="What the video should avoid",
        character="An anime character to feature (style Anime only)",
        **COMMON_DESCRIPTIONS,
    )
    @app_commands.choices(style=_choices(V1_STYLES), aspect_ratio=_choices(AspectRatio), **COMMON_CHOICES)
    async def create_single(
        self,
        interaction: discord.Interaction,
        prompt: Prompt,
        style: str | None = None,
        aspect_ratio: str | None = None,
        model: str | None = None,
        quality: str | None = None,
        negative_prompt: Prompt | None = None,
        character: str | None = None,
        seed: Seed | None = None,
        duration: Duration | None = None,
        audio: bool | None = None,
        off_peak: bool | None = None,
    ) -> None:
        async def create(requester: Requester) -> None:
            await self._service.create_single(requester, parse_command(CreateSingle, **command_fields(interaction)))

        await self._responder.run(interaction, create)

    @create_single.autocomplete("character")
    async def _characters(self, interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        # No gate here: autocomplete fires on every keystroke and spends nothing, and counting
        # it against the command rate limit would lock out anyone who types slowly.
        wanted = current.strip().lower()
        names = [name for name in self._settings.anime_characters if wanted in name.lower()]
        return _choices(names[:MAX_CHOICES])

    @app_commands.command(description="Bring a picture to life")
    @app_commands.describe(
        image=f"The picture to animate ({ALLOWED_IMAGE_TYPES})",
        prompt="What should happen in the video",
        motion=f"How much movement, {MOTION_MIN} (almost still) to {MOTION_MAX} (wild)",
        hd_quality="Higher resolution (the operator's HD quality); or pick the resolution with quality",
        **COMMON_DESCRIPTIONS,
    )
    @app_commands.choices(hd_quality=_choices(("Yes", "No")), **COMMON_CHOICES)
    async def animate(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: Prompt | None = None,
        motion: Range[int, MOTION_MIN, MOTION_MAX] | None = None,
        seed: Seed | None = None,
        hd_quality: str | None = None,
        quality: str | None = None,
        model: str | None = None,
        duration: Duration | None = None,
        audio: bool | None = None,
        off_peak: bool | None = None,
    ) -> None:
        async def animate(requester: Requester) -> None:
            command = parse_command(Animate, **command_fields(interaction, leave_out="image"))
            await self._service.animate(requester, command, await self._read_image(image))

        await self._responder.run(interaction, animate)

    async def _read_image(self, image: discord.Attachment) -> bytes:
        """The attachment's bytes, once its declared type and size show it is worth downloading.

        The core checks the bytes themselves; this spares downloading what cannot pass.
        """
        declared = (image.content_type or "").split(";")[0].strip()
        if not declared.startswith("image/"):
            raise InvalidInput("image", f"is {declared or 'not a picture'}; send a {ALLOWED_IMAGE_TYPES} picture")
        limit = self._settings.max_image_bytes
        if image.size > limit:
            raise InvalidInput("image", f"is {image.size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB")
        try:
            return await image.read()
        except discord.HTTPException:
            raise InvalidInput("image", "could not be fetched from Discord; please send it again") from None

    @app_commands.command(description="Your recent videos and how they are doing")
    async def jobs(self, interaction: discord.Interaction) -> None:
        async def recent(requester: Requester) -> str:
            jobs = await self._service.recent_jobs(requester.user)
            return "\n".join(job_line(job) for job in jobs) or "No videos yet. Try /create_single."

        await self._responder.run(interaction, recent)

    @app_commands.command(description="Everything about one of your videos")
    @app_commands.describe(job="The job id (from /jobs or under the video)")
    async def status(self, interaction: discord.Interaction, job: Range[str, 1, 40]) -> None:
        async def details(requester: Requester) -> str:
            return job_details(await self._service.job_status(requester.user, job))

        await self._responder.run(interaction, details)

    @status.autocomplete("job")
    async def _recent_job_ids(self, interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        jobs = await self._service.recent_jobs(user_ref(interaction.user), limit=MAX_CHOICES)
        return [Choice(name=job_line(job)[:100], value=job.id) for job in jobs if current.strip() in job.id]

    @app_commands.command(name="help", description="What this bot does and how to use it")
    async def help_(self, interaction: discord.Interaction) -> None:
        async def describe(_requester: Requester) -> str:
            return self.help_text()

        await self._responder.run(interaction, describe)

    def help_text(self) -> str:
        """The commands as Discord shows them (their own descriptions), then the buttons."""
        everyone: list[str] = []
        admins: list[str] = []
        for command in sorted(self._tree.get_commands(), key=lambda c: c.name):
            if isinstance(command, app_commands.Command):
                line = f"/{command.name} — {command.description}"
                (admins if command.default_permissions else everyone).append(line)
        return "\n".join(
            [
                "Make short videos with PixVerse. Only you see my answers to commands; finished videos are posted "
                "for everyone.",
                "",
                *everyone,
                "",
                f"Under each finished video: {buttons_legend()}.",
                "",
                "For server admins:",
                *admins,
            ]
        )
