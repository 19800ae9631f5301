"""One canonical spelling for prompts and filter entries, so that evasions meet their entry.

Prompts and entries go through the same steps, so whatever they do to a word they
do on both sides:

1. **Unicode**: NFKC (fullwidth ``ｎｕｄｅ``, ligatures, circled and mathematical
   letters become plain ones); invisible characters are removed (zero-width spaces
   and joiners, bidi controls, soft hyphen, variation selectors, tag characters,
   Hangul fillers, C0/C1 controls); whitespace and underscores become single spaces.
   A second reading (``normalized_forms``) also drops punctuation, symbols and
   underscores *inside* a word (``k.ill``, ``nu_de``, ``p🍑rn``), but never a space:
   ``a. b`` stays two words, so two innocent words are not glued into an entry.
2. **Accents**: NFD, then combining marks are dropped where they decorate Latin,
   Greek or Cyrillic letters, digits or punctuation (``nüde``, Zalgo text). Marks
   that carry meaning in other scripts (Devanagari vowel signs, Thai, Arabic
   harakat, kana voicing) are kept, so those scripts stay readable. Latin letters
   with a stroke (``ø``, ``ł``, ``đ`` ...) lose it too. Where a script written
   without spaces (Han, kana, Thai ...) touches another word, a space is put, so
   that ``一个nude女人`` still has the word ``nude``.
3. **Spelled-out words**: in a run of one-letter words separated by one to three
   other characters (``n.u.d.e``, ``n u d e``, ``n-u-d-3``), each letter is read
   as in 4 (look-alikes, digits as leetspeak) but the separators are *kept*:
   gluing the letters would also glue a neighbouring one-letter word (``a n.u.d.e``
   would become ``anude`` and hide the word). Entries match spelled-out text
   instead (see ``rules``). A run needs two letters, one of them ASCII, so that
   ``1 . 5`` and the Russian ``а в`` are left alone.
4. **Words** (letters and digits, with ``@`` and ``$``, and ``!`` or ``|`` between
   two of those):
   - *Look-alike letters* are folded only in a word that mixes the Latin, Cyrillic
     and Greek alphabets (``nudе`` with a Cyrillic ``е``, ``нaркотики`` with a Latin
     ``a``): toward Latin in ``normalize``, and toward each alphabet the text mixes
     in ``normalized_forms``, so each entry meets the word in its own alphabet. A
     word in one alphabet keeps its letters: the Russian ``рот`` is not ``pot``
     (and so ``ѕех``, all Cyrillic, is not ``sex`` either).
   - *Case*: casefold.
   - *Leetspeak* (``0→o 1→i 3→e 4→a 5→s 7→t 8→b @→a $→s !→i |→l``) is decoded
     only in a word whose letters are all ASCII, that has at least one, and that is
     not a quantity. Plain numbers (``16:9``, ``2 cats``, ``1080``) have no letter;
     words of other scripts (``我有3只猫``) are not ASCII; a quantity is two or more
     digits followed by letters (``720p``, ``1080p``, ``60fps``, ``90s``) or one
     digit and one letter (``5s``, ``4k``, ``3d``). So ``nud3``, ``p0rn``, ``a$$``,
     ``k!ll`` and even ``4ss`` or ``5ex`` are decoded, and ``5s 720p 16:9`` is left
     as it is. ``1`` and ``|`` are ambiguous: ``normalize`` reads them as ``i`` and
     ``l``, and ``normalized_forms`` adds the other reading (``s1ut`` → ``slut``)
     for matching.
5. **Repeats**: a run of four or more identical letters becomes three. Three is
   kept as the mark of a stretched letter: entries read a run of three in the text
   as one or two letters (``nuuude``, ``nuddde``, ``kiiill``). Doubles are spelling
   and stay significant (``good`` is not ``god``, ``weed`` is not ``wed``, ``shoot``
   is not ``shot``), so ``nuude`` does not match ``nude``.
6. NFC, to recompose the marks that were kept.

``normalize`` is idempotent: ``normalize(normalize(x)) == normalize(x)``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final


def _class_body(codepoints: Iterable[int]) -> str:
    """The inside of a regex character class matching these (sorted) code points."""
    body = []
    for _, run in itertools.groupby(enumerate(codepoints), lambda pair: pair[1] - pair[0]):
        first, *rest = (cp for _, cp in run)
        last = rest[-1] if rest else first
        body.append(f"\\U{first:08x}-\\U{last:08x}")
    return "".join(body)


def _combining_marks() -> str:
    # Beyond the BMP, marks belong to historic scripts or are the supplementary
    # variation selectors (removed as invisible); a BMP-only class compiles to a
    # fast bitmap.
    return _class_body(cp for cp in range(0x10000) if unicodedata.category(chr(cp))[0] == "M")


_MARKS: Final = _combining_marks()
_LATIN_GREEK_CYRILLIC: Final = (
    r"\u0000-\u052f\u1c80-\u1c8f\u1d00-\u1fff\u2c60-\u2c7f\ua640-\ua69f\ua720-\ua7ff\uab30-\uab6f"
)
# Letters of the scripts whose combining marks carry meaning (vowel signs, kana voicing).
_KEEPS_MARKS: Final = f"[^\\W\\d_{_LATIN_GREEK_CYRILLIC}]"
_KEEPS_MARKS_CHAR: Final = re.compile(_KEEPS_MARKS)
# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana,
# Han): a word boundary means nothing inside them, so entries in them match as
# substrings; a space is put where they meet other words, so that a Latin word
# glued to them ("一个nude女人") still stands apart.
_UNSPACED: Final = (
    r"\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_UNSPACED_CHAR: Final = re.compile(f"[{_UNSPACED}]")
_UNSPACED_RUN: Final = re.compile(f"[{_UNSPACED}]+")

# Regex fragments describing normalised text, for the rule compiler. Normalised
# text has no underscores, so Python's \w is exactly "letter or digit".
WORD_CHAR: Final = r"\w"
"""A character that continues a word."""
WORD_OR_MARK: Final = f"[\\w{_MARKS}]"
"""``WORD_CHAR`` for scripts that keep their marks (Python counts marks as non-word).
Slow to compile: only for entries in those scripts."""
LETTER: Final = r"[^\W\d_]"
"""A letter: what ``*`` and ``?`` stand for."""
LETTER_OR_MARK: Final = f"(?:[^\\W\\d_]|[{_MARKS}])"
"""``LETTER`` for scripts that keep their marks."""
GAP: Final = r"\W*"
"""Between the words of a phrase: any punctuation or spacing, or none (hashtags)."""
SPELL_GAP: Final = r"\W{1,3}"
"""Between the letters of a spelled-out word (``n.u.d.e``, ``n - u - d - e``)."""

# Also U+0345, the Greek iota subscript: the one mark that casefolds to a letter.
_INVISIBLE: Final = re.compile(
    r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u0345\u034f\u061c\u115f\u1160\u17b4\u17b5"
    r"\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    r"\uffa0\ufff0-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)
_ASCII_CONTROLS: Final = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]+")
# A run of marks, unless it follows a letter that keeps its marks. (The mark comes
# first in the pattern so that the engine can skip quickly to candidates.)
_STRAY_MARKS: Final = re.compile(f"[{_MARKS}](?<!{_KEEPS_MARKS}.)(?<![{_MARKS}].)[{_MARKS}]*")
# Latin letters with a stroke, and Latin letters that look like other ones (the
# dotless "ı" of Turkish, the IPA "ɡ" and "ɑ"): variants within one script, like accents.
_LATIN_VARIANTS: Final = str.maketrans(
    {
        stroked: plain
        for small, plain in zip("øłđħŧƀɨƶȥ", "oldhtbizz", strict=True)
        for stroked in (small, small.upper())
    }
    | dict(zip("ıȷɡɑɩ", "ijgai", strict=True))
)
_HAS_LATIN_VARIANT: Final = re.compile(f"[{''.join(map(chr, _LATIN_VARIANTS))}]")
# Punctuation and symbols between two characters of a word, without a space ("k.ill",
# "nu_de", "p🍑orn"): read away, as if the word were written whole. Not the leetspeak
# symbols, which are letters there ("k!ll").
_INSIDE_WORD_SEPARATORS: Final = re.compile(r"(?<=[^\W_]|[@$])(?:[^\w\s@$!|]|_)+(?=[^\W_]|[@$])")

# Letters that look alike across the Latin, Cyrillic and Greek alphabets, one shape
# per row: (Latin, Cyrillic, Greek). A word that mixes these scripts is read once
# toward each of them: every letter of the row becomes the *first* letter of the
# target script's cell (other letters of a cell look the same too). A word in one
# script keeps its letters, so Russian "рот" stays "рот" and is not "pot".
# Capitals are folded before casefolding, small letters after: the Greek capital
# eta "Η" looks like an "H", its small letter "η" like an "n".
_CAPITAL_ROWS: Final = (
    ("A", "А", "Α"),
    ("B", "В", "Β"),
    ("C", "С", "Ϲ"),
    ("E", "Е", "Ε"),
    ("H", "НҺ", "Η"),
    ("I", "І", "Ι"),
    ("J", "Ј", "Ϳ"),
    ("K", "К", "Κ"),
    ("M", "М", "Μ"),
    ("N", "", "Ν"),
    ("O", "О", "Ο"),
    ("P", "Р", "Ρ"),
    ("Q", "Ԛ", ""),
    ("S", "Ѕ", ""),
    ("T", "Т", "Τ"),
    ("W", "Ԝ", ""),
    ("X", "Х", "Χ"),
    ("Y", "УҮ", "Υ"),
    ("Z", "", "Ζ"),
    ("l", "Ӏ", ""),
    ("", "Г", "Γ"),
    ("", "Л", "Λ"),
    ("", "П", "Π"),
    ("", "Ф", "Φ"),
)
_SMALL_ROWS: Final = (
    ("a", "а", "α"),
    ("b", "ьв", "β"),
    ("c", "с", "ϲ"),
    ("d", "ԁ", ""),
    ("e", "е", "ε"),
    ("h", "һн", ""),
    ("i", "і", "ι"),
    ("j", "ј", "ϳ"),
    ("k", "к", "κ"),
    ("l", "ӏ", ""),
    ("m", "м", ""),
    ("n", "п", "ηπ"),
    ("o", "о", "ο"),
    ("p", "р", "ρ"),
    ("q", "ԛ", ""),
    ("r", "г", ""),
    ("s", "ѕ", ""),
    ("t", "т", "τ"),
    ("u", "и", "υμ"),
    ("v", "", "ν"),
    ("w", "шԝ", "ω"),
    ("x", "х", "χ"),
    ("y", "уү", "γ"),
    ("", "л", "λ"),
    ("", "ф", "φ"),
)


class Script(IntEnum):
    """The alphabets whose look-alike letters are folded into one another (the rows' columns)."""

    LATIN = 0
    CYRILLIC = 1
    GREEK = 2


def _toward(rows: tuple[tuple[str, str, str], ...], script: Script) -> dict[int, int]:
    """A translation table: each letter of another script to its look-alike in `script`."""
    table: dict[int, int] = {}
    for row in rows:
        if target := row[script][:1]:
            for column, letters in enumerate(row):
                if column != script:
                    table.update((ord(letter), ord(target)) for letter in letters)
    return table


_FOLD_TOWARD: Final = {script: (_toward(_CAPITAL_ROWS, script), _toward(_SMALL_ROWS, script)) for script in Script}
_SCRIPT_LETTERS: Final = {
    Script.LATIN: re.compile(
        r"[a-zA-Z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02af\u1d00-\u1d7f\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f]"
    ),
    Script.CYRILLIC: re.compile(r"[\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f]"),
    Script.GREEK: re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]"),
}
_NON_ASCII_LETTERS: Final = re.compile(r"[^\W\d_\x00-\x7f]+")
_HAS_ASCII_LETTER: Final = re.compile("[a-z]")

# Two readings of leetspeak; they differ only in the ambiguous "1" and "|".
_LEET_AS_I: Final = str.maketrans("0134578@$!|", "oieastbasil")
_LEET_AS_L: Final = str.maketrans("0134578@$!|", "oleastbasii")
_LEET_CHAR: Final = re.compile("[0-9@$!|]")
_RUNS: Final = re.compile(r"(.)\1{3,}")


@dataclass(frozen=True, slots=True)
class _Pipeline:
    """Steps 3-6 for one kind of input; entries add the wildcards ``*`` and ``?`` as letters."""

    word_symbols: str
    """Characters that belong to a word besides letters and digits."""
    spelled: re.Pattern[str]
    word: re.Pattern[str]
    leet_word: re.Pattern[str]
    quantity: re.Pattern[str]

    @classmethod
    def build(cls, wildcards: str) -> _Pipeline:
        wild = re.escape(wildcards)
        in_word = f"[\\w@${wild}]"
        # A lone letter: a word of its own (see `word`).
        lone = f"(?<!{in_word})(?<!{in_word}[!|])[^\\W_](?!{in_word})(?![!|]{in_word})"
        return cls(
            word_symbols="@$" + wildcards,
            spelled=re.compile(f"{lone}(?:[^\\w{wild}]{{1,3}}{lone})+"),
            # "!" and "|" are letters only between two word characters ("k!ll"); at a
            # word's edge they are punctuation ("nude!").
            word=re.compile(f"{in_word}+(?:[!|]{in_word}+)*"),
            leet_word=re.compile(f"(?=.*[a-z{wild}])[a-z0-9@$!|{wild}]+"),
            quantity=re.compile(f"[0-9]{{2,}}[a-z{wild}]+|[0-9][a-z{wild}]"),
        )

    def first_form(self, text: str) -> str:
        """The text as written (separators inside words kept), mixed words read as Latin."""
        return self._read(_clean(text, join_inside_words=False), _LEET_AS_I, Script.LATIN)

    def forms(self, text: str) -> tuple[str, ...]:
        """Every reading: ``first_form`` first, then with separators inside words read
        away, each toward every script the text mixes, each way of reading leetspeak."""
        readings: dict[str, None] = {}
        read: set[str] = set()
        for joined in (False, True):
            cleaned = _clean(text, join_inside_words=joined)
            if cleaned in read:
                continue  # no separator inside a word (most texts): the same readings again
            read.add(cleaned)
            for script in _scripts_to_fold_toward(cleaned):
                first = self._read(cleaned, _LEET_AS_I, script)
                readings[first] = None
                # Only when a "1" or "|" was read as a letter could it have been the other one.
                if _ambiguous_leet(first) < _ambiguous_leet(cleaned):
                    readings[self._read(cleaned, _LEET_AS_L, script)] = None
        return tuple(readings)

    def _read(self, text: str, leet: dict[int, int], toward: Script) -> str:
        text = self.spelled.sub(_spelled_reader(leet, toward), text)
        if not text.isascii():
            text = self._each_word(text, _NON_ASCII_LETTERS, lambda word: _fold_if_mixed(word, toward))
        # After look-alikes: they tell the Greek capital eta "Η" (an "h") from "η" (an "n").
        text = text.casefold()
        text = self._each_word(text, _LEET_CHAR, self._leet_reader(leet))
        text = _RUNS.sub(_cut_run, text)
        return text if text.isascii() else unicodedata.normalize("NFC", text)

    def _each_word(self, text: str, anchor: re.Pattern[str], read: Callable[[str], str]) -> str:
        """`text` with `read` applied to each word that has a character matching `anchor`.

        Finding the rare anchors first and then their words is several times faster
        than a pattern that looks at the start of every word.
        """
        pieces: list[str] = []
        done = 0
        for hit in anchor.finditer(text):
            if hit.start() < done:
                continue
            start = hit.start()
            while start and (text[start - 1].isalnum() or text[start - 1] in self.word_symbols):
                start -= 1
            # A word is read whole; a "!" or "|" right after one is not part of it.
            if start < done:
                continue
            if word := self.word.match(text, start):
                pieces += (text[done:start], read(word.group()))
                done = word.end()
        return "".join(pieces) + text[done:] if pieces else text

    def _leet_reader(self, leet: dict[int, int]) -> Callable[[str], str]:
        def read(word: str) -> str:
            if self.leet_word.fullmatch(word) and not self.quantity.fullmatch(word):
                return word.translate(leet)
            return word

        return read


def _clean(text: str, *, join_inside_words: bool) -> str:
    """Steps 1 and 2: compatibility forms, invisible characters, spacing and accents;
    with `join_inside_words`, separators inside words are read away too."""
    if text.isascii():
        text = _ASCII_CONTROLS.sub("", text)
        return _single_spaced(_INSIDE_WORD_SEPARATORS.sub("", text) if join_inside_words else text)
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    # Marks go before spacing is tidied: NFKC turns some accents into space + mark.
    text = _STRAY_MARKS.sub("", unicodedata.normalize("NFD", text))
    if join_inside_words:
        text = _INSIDE_WORD_SEPARATORS.sub("", text)
    text = _single_spaced(text)
    if _HAS_LATIN_VARIANT.search(text):
        text = text.translate(_LATIN_VARIANTS)
    return _UNSPACED_RUN.sub(_set_apart, text)


def _single_spaced(text: str) -> str:
    # Underscores separate words like spaces do ("n_u_d_e", "snake_case").
    return " ".join(text.replace("_", " ").split())


def _joins_word(char: str) -> bool:
    # Symbols that may turn into letters later (leetspeak, wildcards) count as letters.
    return char.isalnum() or char in "@$*?"


def _set_apart(match: re.Match[str]) -> str:
    """A run of a script without spaces, with a space where it touches another word."""
    text, start, end = match.string, match.start(), match.end()
    # A combining mark at the start belongs to the letter before it.
    before = " " if start and _joins_word(text[start - 1]) and _joins_word(text[start]) else ""
    after = " " if end < len(text) and _joins_word(text[end]) else ""
    return f"{before}{match.group()}{after}"


def _scripts_of(text: str) -> list[Script]:
    return [script for script, letters in _SCRIPT_LETTERS.items() if letters.search(text)]


def _scripts_to_fold_toward(text: str) -> list[Script]:
    """Latin (the first reading), and when the text has letters of several of the
    alphabets, each of them: a word that mixes them may be an evasion of any."""
    if text.isascii():
        return [Script.LATIN]
    scripts = _scripts_of(text)
    return (
        [Script.LATIN] + [script for script in scripts if script is not Script.LATIN]
        if len(scripts) > 1
        else [Script.LATIN]
    )


def _fold_if_mixed(word: str, toward: Script) -> str:
    """`word` with look-alike letters read as `toward`'s, if it mixes alphabets
    (``nudе`` with a Cyrillic ``е``, ``нaркотики`` with a Latin ``a``); a word in
    one alphabet is kept as written (the Russian ``рот`` is not ``pot``)."""
    if len(_scripts_of(word)) < 2:
        return word
    capitals, small = _FOLD_TOWARD[toward]
    return word.translate(capitals).casefold().translate(small)


def _ambiguous_leet(text: str) -> int:
    return text.count("1") + text.count("|")


def _spelled_reader(leet: dict[int, int], toward: Script) -> Callable[[re.Match[str]], str]:
    digits = {code: letter for code, letter in leet.items() if chr(code).isdigit()}

    def read(match: re.Match[str]) -> str:
        # A spelled-out word is one word: its letters mix alphabets or not together.
        # Separators have no letters or digits, so the whole run can be translated.
        run = _fold_if_mixed(match.group(), toward).casefold()
        if sum(ch.isalpha() for ch in run) < 2 or not _HAS_ASCII_LETTER.search(run):
            return run
        return run.translate(digits)

    return read


def _cut_run(match: re.Match[str]) -> str:
    char = match.group(1)
    return char * 3 if char.isalpha() else match.group()


_TEXT: Final = _Pipeline.build("")
_ENTRY: Final = _Pipeline.build("*?")


def is_unspaced(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces (Han, kana, Thai ...)."""
    return bool(_UNSPACED_CHAR.match(char))


def is_alphabetic(word: str) -> bool:
    """Whether `word` is written in Latin, Cyrillic or Greek letters (digits and
    wildcards aside): the alphabets whose words can be spelled out letter by letter."""
    return all(ch.isascii() or any(letters.match(ch) for letters in _SCRIPT_LETTERS.values()) for ch in word)


def keeps_marks(char: str) -> bool:
    """Whether `char` is a letter of a script whose combining marks survive normalisation."""
    return bool(_KEEPS_MARKS_CHAR.match(char))


def normalize(text: str) -> str:
    """The canonical form of `text` that filter entries are matched against.

    Lower case, no accents or invisible characters, look-alike letters and
    leetspeak read as Latin letters, stretched letters cut to three. Idempotent.
    Shown in the moderation log and as the matched fragment.
    """
    return _TEXT.first_form(text)


def normalized_forms(text: str) -> tuple[str, ...]:
    """Every reading of `text` to match against: ``normalize(text)`` first, then the
    one reading an ambiguous ``1`` or ``|`` the other way, when there is one."""
    return _TEXT.forms(text)


def normalize_entry(entry: str) -> str:
    """``normalize`` for a filter entry: the same steps, with ``*`` and ``?`` kept as
    letters of the word they stand in (so ``p0rn*`` reads ``porn*``)."""
    return _ENTRY.first_form(entry)
