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
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.errors import InvalidInput
from bot.user_text import clean_user_text


@dataclass(frozen=True, slots=True)
class Option:
    field: str  # the command field it sets
    names: tuple[str, ...]  # spellings, without dashes; the first is shown in help
    flag: bool = False  # takes no value (present = yes)
    value_hint: str = ""


CREATE_OPTIONS = (
    Option("style", ("style", "s"), value_hint='Realistic|Anime|"3D Animation"'),
    Option("aspect_ratio", ("ar", "aspect", "aspect_ratio"), value_hint="16:9|9:16|1:1|4:3|3:4"),
    Option("negative_prompt", ("neg", "negative", "negative_prompt", "no"), value_hint='"text"'),
    Option("character", ("character", "char"), value_hint="name (Anime only)"),
)
ANIMATE_OPTIONS = (
    Option("motion", ("motion",), value_hint="1-10"),
    Option("hd_quality", ("hd", "hd_quality"), value_hint="yes|no"),
)
COMMON_OPTIONS = (
    Option("seed_value", ("seed", "seed_value"), value_hint="0-2147483647"),
    Option("model", ("model", "m"), value_hint="v5.6|v5.5|v5|v5-fast"),
    Option("duration", ("duration", "dur", "d"), value_hint="1-10"),
    Option("quality", ("quality", "q"), value_hint="360p|540p|720p|1080p"),
    Option("audio", ("audio", "sound"), flag=True),
    Option("off_peak", ("offpeak", "off-peak", "off_peak"), flag=True),
)
INT_FIELDS = frozenset({"seed_value", "duration", "motion"})


def usage(options: tuple[Option, ...]) -> str:
    """One line per option, for help and error replies."""
    lines = []
    for opt in options:
        spellings = ", ".join(f"-{n}" if len(n) == 1 else f"--{n}" for n in opt.names)
        lines.append(f"{spellings}" + ("" if opt.flag else f" {opt.value_hint}"))
    return "\n".join(lines)


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
            values[opt.field] = inline if has_inline else True
            continue
        if has_inline:
            value = inline
        elif i < len(words):
            value = words[i]
            i += 1
        else:
            raise InvalidInput(typed, f"needs a value: {opt.value_hint}")
        if opt.field in INT_FIELDS:
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
