"""The slash commands that make videos, and the ones that look after them."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from adapters.discord.effects import effect_choices, show_listing
from adapters.discord.kinds import slash_command
from adapters.discord.responder import Responder, Work, user_ref
from adapters.discord.views import buttons_legend
from bot.audio import MAX_AUDIO_BYTES, WHAT_TO_SEND
from bot.blobs import ALLOWED_IMAGE_TYPES, human_size
from bot.cancellation import JobControl
from bot.commands import parse_command
from bot.domain import Requester
from bot.errors import BotError, InvalidInput
from bot.kinds import KINDS, GenerationKind
from bot.service import GenerationService
from bot.settings import Settings
from bot.text_options import LIPSYNC_SPEECH_MAX_CHARS
from bot.texts import job_details, job_line, queue_text, voices_text
from bot.upstream.models import MAX_LIPSYNC_AUDIO_SECONDS

# Discord shows at most 25 autocomplete choices.
MAX_CHOICES = 25


def _choices(values: Any) -> list[Choice[str]]:
    return [Choice(name=str(v), value=str(v)) for v in values]


class GenerationCog(commands.Cog, name="Videos"):
    """Every generation kind as a slash command (adapters.discord.kinds), and the lookups."""

    def __init__(
        self,
        service: GenerationService,
        control: JobControl,
        responder: Responder,
        settings: Settings,
        tree: app_commands.CommandTree,
    ) -> None:
        self._service = service
        self._control = control
        self._responder = responder
        self._settings = settings
        self._tree = tree

    async def cog_load(self) -> None:
        async def characters(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
            # No gate here: autocomplete fires on every keystroke and spends nothing, and counting
            # it against the command rate limit would lock out anyone who types slowly.
            wanted = current.strip().lower()
            names = [name for name in self._settings.anime_characters if wanted in name.lower()]
            return _choices(names[:MAX_CHOICES])

        async def effect_names(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
            try:
                return await effect_choices(self._service.effects, current)
            except BotError:  # the list cannot be fetched now: no suggestions, the command says why
                return []

        # The choices (models, qualities) come from the catalogue, and are synced at start.
        for kind in KINDS:
            self._tree.add_command(
                slash_command(kind, self._service.catalogue, self._generate, characters, effect_names)
            )

    async def _generate(
        self,
        interaction: discord.Interaction,
        kind: GenerationKind,
        fields: dict[str, Any],
        attachments: list[discord.Attachment],
        video: discord.Attachment | None,
    ) -> None:
        async def prepare(requester: Requester) -> Work:
            # Parsing, fetching the attachments and the core's checks run while the deferral is
            # on its way; only queueing the job waits for it (it answers through the deferred response).
            command = parse_command(kind.command, self._service.catalogue, **fields)
            if video is not None:
                # Refused before the download when the options or the request cannot pass.
                self._service.check(kind, command, 0)
                data = await self._read_video(video)
                prepared = await self._service.prepare_job(requester, kind, command, video=data)
            else:
                images = [await self._read_image(attachment) for attachment in attachments]
                prepared = await self._service.prepare_job(requester, kind, command, images)

            async def queue(deferred: Requester) -> None:
                await self._service.accept(prepared, deferred.context)

            return queue

        await self._responder.run_prepared(interaction, prepare)

    async def _read_video(self, video: discord.Attachment) -> bytes:
        """The attachment's bytes, unless its size alone shows it cannot pass (the core checks
        the bytes themselves: the container, its video stream, its length)."""
        limits = self._service.video_limits
        if video.size > limits.max_bytes:
            raise InvalidInput("video", f"is {human_size(video.size)}; the limit is {human_size(limits.max_bytes)}")
        try:
            return await video.read()
        except discord.HTTPException:
            raise InvalidInput("video", "could not be fetched from Discord; please send it again") from None

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

    @app_commands.command(description="Ready-made effects: browse them, or search with words")
    @app_commands.describe(words="Words to look for in the effects' names and descriptions")
    async def effects(self, interaction: discord.Interaction, words: Range[str, 0, 100] | None = None) -> None:
        async def listing(_requester: Requester) -> None:
            await show_listing(interaction, self._service.effects, words or "")

        await self._responder.run(interaction, listing)

    @app_commands.command(description="The voices for --voice and lip-sync, with a sample of each")
    async def voices(self, interaction: discord.Interaction) -> None:
        async def listing(_requester: Requester) -> str:
            return voices_text(await self._service.voices.all())

        await self._responder.run(interaction, listing)

    @app_commands.command(description="Make a video speak: words in a voice, or your own audio")
    @app_commands.describe(
        job="One of my v5 videos: its job id (from /jobs or under the video)",
        video="Or your own video (MP4 or MOV) instead of a job",
        text=f"Words to say, up to {LIPSYNC_SPEECH_MAX_CHARS} characters",
        voice="A voice /voices lists (for the words)",
        audio=f"Or an audio file to lip-sync to, up to {MAX_LIPSYNC_AUDIO_SECONDS} seconds",
    )
    async def lipsync(
        self,
        interaction: discord.Interaction,
        job: Range[str, 1, 40] | None = None,
        video: discord.Attachment | None = None,
        text: Range[str, 1, LIPSYNC_SPEECH_MAX_CHARS] | None = None,
        voice: Range[str, 1, 40] | None = None,
        audio: discord.Attachment | None = None,
    ) -> None:
        async def speak(requester: Requester) -> None:
            # Nothing is downloaded for a lip-sync that cannot go ahead.
            self._service.check_lipsync(job, video=video is not None, text=text, audio=audio is not None)
            if job is not None:
                await self._service.job_status(requester.user, job)  # a mistyped id says "not found"
            sound = await self._read_audio(audio) if audio is not None else None
            data = await self._read_video(video) if video is not None else None
            await self._service.lipsync(requester, job, video=data, text=text, voice=voice, audio=sound)

        await self._responder.run(interaction, speak)

    @lipsync.autocomplete("voice")
    async def _voice_names(self, interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        try:
            voices = await self._service.voices.all()
        except BotError:  # the list cannot be fetched now: no suggestions, the command says why
            return []
        wanted = current.strip().lower()
        return _choices([voice.name for voice in voices if wanted in voice.name.lower()][:MAX_CHOICES])

    async def _read_audio(self, audio: discord.Attachment) -> bytes:
        """The attachment's bytes, once its declared type and size show it is worth downloading."""
        declared = (audio.content_type or "").split(";")[0].strip()
        if not declared.startswith(("audio/", "video/")):
            raise InvalidInput("audio", f"is {declared or 'not audio'}; {WHAT_TO_SEND}")
        if audio.size > MAX_AUDIO_BYTES:
            raise InvalidInput("audio", f"is {audio.size / 2**20:.1f} MB; the limit is {MAX_AUDIO_BYTES // 2**20} MB")
        try:
            return await audio.read()
        except discord.HTTPException:
            raise InvalidInput("audio", "could not be fetched from Discord; please send it again") from None

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

    @app_commands.command(description="Your waiting and running videos: place in line, when they may be ready")
    async def queue(self, interaction: discord.Interaction) -> None:
        async def listing(requester: Requester) -> str:
            # A server admin (Manage Server, the responder's default) gets the server's queue.
            return queue_text(await self._control.queue(requester))

        await self._responder.run(interaction, listing)

    @app_commands.command(description="Stop one of your videos (a server admin: anyone's in this server)")
    @app_commands.describe(job="The job id (from /jobs, /queue or under the video)")
    async def cancel(self, interaction: discord.Interaction, job: Range[str, 1, 40]) -> None:
        async def cancel(requester: Requester) -> str:
            return await self._control.cancel(requester, job)

        await self._responder.run(interaction, cancel)

    @cancel.autocomplete("job")
    @status.autocomplete("job")
    @lipsync.autocomplete("job")
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
