"""Sound on create: a sound effect, PixVerse's own soundtrack, and words the video speaks.

These are v5's own create parameters (`sound_effect_prompt`, `auto_sound`,
`lip_sync_tts_prompt` with `lip_sync_tts_speaker_id`); v5.5 and v5.6 make their sound
with `audio: true` instead (model-capabilities.md). Which model has which is data: the
catalogue's `sound_effects`, `auto_sound` and `lip_sync` features. /create_single and
/animate take them through `SoundCommand`; the voice is looked up by name before the
request is built (`prepare_voice`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo, field_validator

from bot.catalogue import Catalogue, Feature
from bot.commands import _Command, yes_no
from bot.errors import InvalidInput
from bot.text_options import SOUND_EFFECT_MAX_CHARS, SPEECH_MAX_CHARS

if TYPE_CHECKING:
    from bot.kinds.base import Lookups

# command field -> the longest text it takes (the docs' limits, as text_options declares them)
_MAX_CHARS = {"sound_effect": SOUND_EFFECT_MAX_CHARS, "speech": SPEECH_MAX_CHARS}
# command field -> (the feature its model needs, what the refusal calls it)
_NEEDS = {
    "sound_effect": (Feature.SOUND_EFFECTS, "a sound effect"),
    "auto_sound": (Feature.AUTO_SOUND, "auto sound"),
    "speech": (Feature.LIP_SYNC, "speech"),
}


class SoundCommand(_Command):
    """The sound options of a command that makes a video with `videos/create`."""

    sound_effect: str | None = None
    auto_sound: bool | None = None
    speech: str | None = None
    voice: str | None = None
    # Set by `prepare_voice` from `voice`, never by the user.
    speaker_id: str | None = None

    @field_validator("sound_effect", "speech")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("sound_effect", "speech")
    @classmethod
    def _within_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked here, where the refusal names the option as typed (--sfx, --say), not
        # by the upstream request model, which would name its own field.
        limit = _MAX_CHARS[str(info.field_name)]
        if value is not None and len(value) > limit:
            raise ValueError(f"is {len(value)} characters long; at most {limit} are allowed")
        return value

    @field_validator("auto_sound", mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        return None if value is None else yes_no(value)


async def prepare_voice(lookups: Lookups, command: SoundCommand) -> SoundCommand:
    """`command` with its `--voice` looked up (its speaker id and the voice's own spelling)."""
    if not command.voice:
        return command
    voice = await lookups.voices.find(command.voice)
    return command.model_copy(update={"voice": voice.name, "speaker_id": voice.speaker_id})


def sound_fields(command: SoundCommand, model: str, catalogue: Catalogue) -> dict[str, Any]:
    """The request's sound fields for `command` on `model`; InvalidInput naming the models
    that have an option this one lacks (and --audio, where the model makes sound that way)."""
    spec = catalogue.get(model)
    for field, (feature, what) in _NEEDS.items():
        if getattr(command, field) is None or spec.has(feature):
            continue
        allowed = ", ".join(catalogue.having(feature)) or "none"
        hint = f"; {model} makes sound with --audio" if spec.has(Feature.AUDIO) else ""
        raise InvalidInput(field, f"{what} is not available on {model}; models that have it: {allowed}{hint}")
    if command.voice and not command.speech:
        raise InvalidInput("voice", 'needs words to speak: add --say "…" (up to 140 characters)')
    if command.voice and command.speaker_id is None:
        raise ValueError("a command with a voice is built only once its voice is looked up")
    return {
        "sound_effect": command.sound_effect,
        "auto_sound": command.auto_sound,
        "speech": command.speech,
        "speaker_id": command.speaker_id,
        "voice_name": command.voice,
    }
