"""Parsing `/create_single a fox --ar 9:16 --seed 42` style text commands.

Shared by the text-based adapters (Telegram, console): words that are not options
form the prompt; options take the `--name value`, `--name=value` or bare `--flag`
form, with short aliases that also take one dash (`-s Anime`, `-q 720p`). Quotes group
words (`--neg "blurry, dark"`). A word that looks like an option but is none (`-x`,
`--foo`) is refused, never folded into the prompt and charged.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from bot.catalogue import Catalogue, shipped_catalogue
from bot.errors import InvalidInput
from bot.settings import V1_STYLES
from bot.user_text import clean_user_text

V1_PROMPT_MAX = 512
V1_SEED_MAX = 2_147_483_647
MOTION_MIN, MOTION_MAX, MOTION_DEFAULT = 1, 10, 5

# Where an option's allowed values come from: the model catalogue, or a fixed list.
ChoiceSource = Callable[[Catalogue], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a generation kind, declared once for every adapter.

    Text adapters read `names` (`--ar`, `-s`); Discord makes a typed slash option
    named `slash_name` (or `field`) of `value_type`, within `bounds`, offering `choices`.
    """

    field: str  # the command field it sets
    names: tuple[str, ...]  # spellings, without dashes; the first is shown in help
    flag: bool = False  # takes no value (present = yes)
    value_hint: str = ""  # shown in help when there are no `choices`
    help: str = ""  # one line: what it does
    value_type: type = str  # str, int or bool (flags are bool)
    bounds: tuple[int, int] | None = None  # an int's range, a text's length
    choices: ChoiceSource | None = None
    slash_name: str = ""  # the Discord option name, when it is not `field`
    suggested: bool = False  # Discord: choices offered as you type (too many for a list)

    def hint(self, catalogue: Catalogue) -> str:
        """What the value may be, as help shows it."""
        if self.choices is None:
            return self.value_hint
        return "|".join(f'"{c}"' if " " in c else c for c in self.choices(catalogue))


def _models(catalogue: Catalogue) -> Sequence[str]:
    return catalogue.names


def _qualities(catalogue: Catalogue) -> Sequence[str]:
    return catalogue.qualities


def _aspect_ratios(catalogue: Catalogue) -> Sequence[str]:
    return catalogue.aspect_ratios


def _styles(_catalogue: Catalogue) -> Sequence[str]:
    return V1_STYLES


def _yes_no(_catalogue: Catalogue) -> Sequence[str]:
    return ("Yes", "No")


CREATE_OPTIONS = (
    Option("style", ("style", "s"), help="Look of the video (default: the operator's)", choices=_styles),
    Option("aspect_ratio", ("ar", "aspect", "aspect_ratio"), help="Shape of the video", choices=_aspect_ratios),
    Option(
        "negative_prompt",
        ("neg", "negative", "negative_prompt", "no"),
        value_hint='"text"',
        help="What the video should avoid",
        bounds=(1, V1_PROMPT_MAX),
    ),
    Option(
        "character",
        ("character", "char"),
        value_hint="name (Anime only)",
        help="An anime character to feature (style Anime only)",
        suggested=True,
    ),
)
ANIMATE_OPTIONS = (
    Option(
        "motion",
        ("motion",),
        value_hint="1-10",
        help=f"How much movement, {MOTION_MIN} (almost still) to {MOTION_MAX} (wild)",
        value_type=int,
        bounds=(MOTION_MIN, MOTION_MAX),
    ),
    Option(
        "hd_quality",
        ("hd", "hd_quality"),
        value_hint="yes|no",
        help="Higher resolution (the operator's HD quality); or pick the resolution with quality",
        choices=_yes_no,
    ),
)
# Speech on create (lip_sync_tts_prompt) and on lip-sync (prompt): the docs' limits.
SPEECH_MAX_CHARS = 140
LIPSYNC_SPEECH_MAX_CHARS = 200
SOUND_EFFECT_MAX_CHARS = 2048
VOICE_OPTION = Option(
    "voice", ("voice",), value_hint="name", help="The voice that speaks the words (/voices lists and plays them)"
)
# Sound on create (v5's own parameters; v5.5 and v5.6 make sound with --audio instead).
SOUND_OPTIONS = (
    Option(
        "sound_effect",
        ("sfx", "sound_effect"),
        value_hint='"text"',
        help='A sound effect to add, e.g. "waves crashing" (v5)',
        bounds=(1, SOUND_EFFECT_MAX_CHARS),
    ),
    Option("auto_sound", ("sound", "auto_sound"), flag=True, help="Let PixVerse add fitting sound (v5)"),
    Option(
        "speech",
        ("say", "speech"),
        value_hint='"words"',
        help=f"Words the video speaks, up to {SPEECH_MAX_CHARS} characters (v5)",
        bounds=(1, SPEECH_MAX_CHARS),
    ),
    VOICE_OPTION,
)
# create and animate (videos/create has `preview_mode`); where the catalogue's model has it.
PREVIEW_OPTION = Option(
    "preview", ("preview",), flag=True, help="A fast, cheaper draft; ⬆️ Upscale it for the full video"
)
COMMON_OPTIONS = (
    Option(
        "seed_value",
        ("seed", "seed_value"),
        value_hint=f"0-{V1_SEED_MAX}",
        help="Same seed + same prompt = similar video; 0 or empty picks one for you",
        value_type=int,
        bounds=(0, V1_SEED_MAX),
        slash_name="seed",
    ),
    Option("model", ("model", "m"), help="PixVerse model (default: the operator's)", choices=_models),
    Option("duration", ("duration", "dur", "d"), value_hint="1-10", help="Length in seconds", value_type=int),
    Option("quality", ("quality", "q"), help="Resolution", choices=_qualities),
    Option("audio", ("audio",), flag=True, help="Add a generated soundtrack (not every model has it)"),
    Option("off_peak", ("offpeak", "off-peak", "off_peak"), flag=True, help="Cheaper, but may take up to a day"),
)


def usage(options: tuple[Option, ...], catalogue: Catalogue | None = None) -> str:
    """One line per option, for help and error replies."""
    catalogue = catalogue or shipped_catalogue()
    lines = []
    for opt in options:
        spellings = ", ".join(f"-{n}" if len(n) == 1 else f"--{n}" for n in opt.names)
        lines.append(f"{spellings}" + ("" if opt.flag else f" {opt.hint(catalogue)}"))
    return "\n".join(lines)


# Words a flag takes as its value when they follow it (`--audio no`); any other word is prompt.
FLAG_WORDS = frozenset({"yes", "no", "y", "n", "true", "false", "on", "off"})

# What shlex treats specially in POSIX mode (besides its whitespace): quotes and escapes.
_SHLEX_SPECIAL = frozenset("\"'\\")
_SHLEX_WHITESPACE = re.compile("[ \t\r\n]+")


def split_words(text: str) -> list[str]:
    """Words as a POSIX shell splits them, so a value may be quoted: `--style "oil painting"`.

    shlex reads character by character (about 20 µs for a short command); without a quote
    or a backslash its answer is the split at its whitespace, which a regex gives at once.
    """
    if _SHLEX_SPECIAL.isdisjoint(text):
        return [word for word in _SHLEX_WHITESPACE.split(text) if word]
    return shlex.split(text, posix=True)


# An option word: two dashes (or the em dash phones make of them), or one dash, then a
# letter. "-20°" and a lone "-" or "—" stay in the prompt.
_OPTION_WORD = re.compile(r"(?:--|—|-)(?=[^\W\d_])")


@dataclass(frozen=True, slots=True)
class ParsedText:
    """A text command split into its prompt and option values."""

    prompt: str
    values: dict[str, object] = field(default_factory=dict)
    # field -> the option as the user typed it ("-q", "--seed"), so errors use their words.
    spelled: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def in_users_words(self) -> Iterator[None]:
        """Re-label an `InvalidInput` about an option with the spelling the user typed."""
        try:
            yield
        except InvalidInput as exc:
            typed = self.spelled.get(exc.field)
            if typed is None or typed == exc.field:
                raise
            raise InvalidInput(typed, exc.problem) from None


def parse_options(text: str, options: tuple[Option, ...]) -> ParsedText:
    """Split `text` into its prompt and {field: value}. Raises InvalidInput naming a bad option.

    The text is cleaned first (see ``bot.user_text``): a prompt of only invisible
    characters is no prompt, and the adapter asks for one as it would for nothing.
    """
    try:
        words = split_words(clean_user_text(text))
    except ValueError:
        raise InvalidInput("quotes", 'a quote is not closed; put matching " around a multi-word value') from None
    by_name = {name: opt for opt in options for name in opt.names}
    prompt_words: list[str] = []
    values: dict[str, object] = {}
    spelled: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        dashes = _OPTION_WORD.match(word)
        if dashes is None:
            prompt_words.append(word)
            continue
        name, has_inline, inline = word[dashes.end() :].partition("=")
        typed = dashes.group().replace("—", "--") + name
        opt = by_name.get(name.lower())
        if opt is None:
            known = ", ".join(_spellings(o) for o in options)
            raise InvalidInput(typed, f"is not an option here; options are {known}")
        spelled[opt.field] = typed
        if opt.flag:
            if has_inline:
                values[opt.field] = inline
            elif i < len(words) and words[i].lower() in FLAG_WORDS:
                # `--audio yes` / `--offpeak no`: the word is the flag's value, not the prompt's.
                values[opt.field] = words[i]
                i += 1
            else:
                values[opt.field] = True
            continue
        if has_inline:
            value = inline
        elif i < len(words):
            value = words[i]
            i += 1
        else:
            raise InvalidInput(typed, f"needs a value: {opt.hint(shipped_catalogue())}")
        if opt.value_type is int:
            try:
                values[opt.field] = int(value)
            except ValueError:
                raise InvalidInput(typed, f"{value!r} is not a whole number ({opt.value_hint})") from None
        else:
            values[opt.field] = value
    return ParsedText(" ".join(prompt_words).strip(), values, spelled)


def _spellings(option: Option) -> str:
    """`--style/-s`: the long name and the one-letter alias, as the README lists them."""
    short = [f"-{name}" for name in option.names if len(name) == 1]
    return "/".join([f"--{option.names[0]}", *short])
