"""What a user typed, made safe to store, show and send: the one gate all user text passes.

Prompts, negative prompts, remix prompts and image captions are cleaned here before
a command is built from them, so that no control character reaches the database,
a console, a chat or PixVerse:

- ANSI escape sequences (``\\x1b[31m``, ``\\x1b]0;title\\x07``) are removed whole;
- control characters (C0, DEL, C1) are removed; the ones that space text (tab,
  line breaks) become a space;
- invisible format characters are removed: zero-width spaces, word joiners, the
  byte order mark, soft hyphens, bidirectional controls (which make text read
  backwards), tag characters, invisible separators and fillers;
- runs of spacing become one space, and the text is stripped.

Zero-width joiners and variation selectors are kept, because they shape emoji and
some scripts; text with nothing visible left (only those, or nothing) is empty,
so that it is refused like an empty prompt.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# CSI (ESC [ … final byte, or its one-byte form 0x9B), OSC (ESC ] … BEL or ESC \),
# and the two-character escapes (ESC followed by one byte).
_ANSI_ESCAPE: Final = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -~]?"
)
# Controls that only ever spaced text: they read as a space.
_SPACING_CONTROLS: Final = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85"
# Invisible characters that are not format characters (category Cf) but still show
# nothing: Hangul fillers, the braille blank, the combining grapheme joiner, the
# Khmer inherent vowels, the Mongolian vowel separator.
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180e")
# Format characters that join or shape visible ones: kept inside text, yet nothing
# to see on their own. Variation selectors (emoji presentation) count with them.
_JOINERS: Final = frozenset("\u200c\u200d")
_SELECTORS: Final = re.compile(r"[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Format characters that are visible (the Arabic number signs and their kind).
_VISIBLE_FORMAT: Final = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)
_SPACES: Final = re.compile(r"\s+")


def clean_user_text(text: str | None) -> str:
    """`text` without escape sequences, control or invisible characters, single-spaced
    and stripped; ``""`` when nothing visible is left (or `text` is None)."""
    if not text:
        return ""
    text = _ANSI_ESCAPE.sub("", text)
    kept = "".join(_clean_char(ch) for ch in text) if not text.isascii() or not text.isprintable() else text
    kept = _SPACES.sub(" ", kept).strip()
    return kept if _has_visible(kept) else ""


def _clean_char(ch: str) -> str:
    if ch in _SPACING_CONTROLS:
        return " "
    category = unicodedata.category(ch)
    if category == "Cc" or ch in _BLANK_LETTERS:
        return ""
    if category == "Cf" and ch not in _JOINERS and ch not in _VISIBLE_FORMAT:
        return ""
    return ch


def _has_visible(text: str) -> bool:
    return any(not ch.isspace() and ch not in _JOINERS for ch in _SELECTORS.sub("", text))
