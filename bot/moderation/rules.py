"""Prompt blocklists: entries written by the operator or a group's admins, precompiled.

An entry is one of:

- a **word** (``nude``) or a **phrase** (``kill yourself``), matched on word
  boundaries, so ``ass`` does not catch ``classic`` or ``assassin``. The words of a
  phrase may be separated by any spacing or punctuation, or by none
  (``#killyourself``);
- a **wildcard**: ``*`` is any run of letters inside the word (``porn*``), ``?``
  exactly one letter (``f?ggot``). At most two ``*`` per entry, and one that other
  letters follow stands for at most 30: a group admin's entry must not let a
  crafted prompt keep the bot busy;
- a **regular expression** ``re:<pattern>``, for the operator only (lists loaded
  with ``allow_regex=True``): group admins could otherwise freeze the bot with a
  pattern that backtracks forever.

Entries and prompts are compared in their normalised form (see ``normalize``); a
prompt is matched in each of its readings (``normalized_forms``).
Words and wildcards also match a stretched spelling (a run of three letters in the
normalised text stands for one or two: ``nuuude``, ``kiiill``) and a spelled-out one
(``n.u.d.e``, ``n u d e``). Regular expressions see the normalised text as it is:
lower case, accents stripped, leetspeak decoded.

All patterns are compiled once, when a list is built; matching a prompt is one
search of a combined pattern (plus one per regular expression).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Final

from bot.moderation.normalize import (
    GAP,
    LETTER,
    LETTER_OR_MARK,
    SPELL_GAP,
    WORD_CHAR,
    WORD_OR_MARK,
    is_alphabetic,
    is_unspaced,
    keeps_marks,
    normalize_entry,
    normalized_forms,
)

REGEX_PREFIX: Final = "re:"
MIN_ENTRY_CHARS: Final = 2
# Long enough for any phrase; short enough that a list of them stays cheap to match.
MAX_ENTRY_CHARS: Final = 100
# Each "*" that is not the last thing in an entry multiplies the work of a failed
# match by the length of a word: two keep it small even for a hostile prompt.
MAX_STARS: Final = 2
# A "*" that something follows stands for at most this many letters, which bounds
# that work whatever the prompt (no real word needs more).
MAX_STAR_LETTERS: Final = 30
_ALLOWED_HELP: Final = (
    "Use letters, digits and spaces (hyphens and apostrophes count as spaces), * for any letters and ? for one letter"
)
_SEPARATORS_IN_ENTRIES: Final = frozenset("-'’")
# Characters normalisation removes anyway (accents, zero-width characters pasted along).
_IGNORED_CATEGORIES: Final = frozenset({"Mn", "Mc", "Me", "Cf"})
_ENTRY_WORD: Final = re.compile(rf"(?:{WORD_OR_MARK}|[*?])+")
_STARS: Final = re.compile(r"\*+")
# A pattern that matches nothing visible here (``x*``, ``\b``) would block anything.
_EMPTY_MATCH_PROBE: Final = " a prompt, 1 "
# A run of one repeated character, or one wildcard.
_ELEMENT: Final = re.compile(r"([*?])|((.)\3*)")


class InvalidRule(ValueError):
    """A blocklist entry that cannot be used; ``str(error)`` says why, fit for the user."""

    def __init__(self, entry: str, problem: str, *, where: str = "") -> None:
        self.entry = entry
        self.problem = problem
        super().__init__(f'{where}"{entry}": {problem}')


class RuleKind(StrEnum):
    """What an entry is: it tells the user how it matched."""

    WORD = "word"
    PHRASE = "phrase"
    WILDCARD = "wildcard"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled entry."""

    entry: str
    """The entry as written (stripped), e.g. ``nud*``: what the user is told matched."""
    kind: RuleKind
    normalized: str
    """The entry in normalised form (for regular expressions: the pattern)."""
    source: str
    """Which list it came from, e.g. ``global`` or a group's name."""
    pattern: re.Pattern[str] = field(repr=False, compare=False)
    """Searches normalised text (words, phrases and wildcards: on word boundaries)."""
    lookbehind: str = field(default="", repr=False, compare=False)
    """The start of ``pattern``: the word boundary before the entry (none in scripts without spaces)."""
    body: str = field(default="", repr=False, compare=False)
    """The rest of ``pattern``, to combine with the bodies of rules of the same lookbehind."""


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Which entry a prompt matched, to tell the user (and the moderation log)."""

    rule: str
    """The entry as written."""
    kind: RuleKind
    matched: str
    """The matching fragment of the normalised prompt."""
    source: str

    @classmethod
    def of(cls, rule: Rule, match: re.Match[str]) -> RuleMatch:
        """The match of `rule` found by `match` in normalised text."""
        return cls(rule=rule.entry, kind=rule.kind, matched=match.group(), source=rule.source)


def parse_entry(text: str, allow_regex: bool = False, *, source: str = "") -> Rule:
    """Compile one entry; raise ``InvalidRule`` (with a message fit for the user) if unusable.

    ``allow_regex`` admits ``re:`` entries: only for the operator's lists.
    """
    entry = text.strip()
    if entry.startswith(REGEX_PREFIX):
        return _parse_regex(entry, allow_regex, source)
    if not entry:
        raise InvalidRule(entry, f"the entry is empty. {_ALLOWED_HELP}.")
    if len(entry) > MAX_ENTRY_CHARS:
        raise InvalidRule(entry, f"an entry can have at most {MAX_ENTRY_CHARS} characters.")
    if bad := sorted({ch for ch in entry if not _allowed_in_entry(ch)}):
        shown = " ".join(bad)
        raise InvalidRule(entry, f"an entry cannot contain {shown}. {_ALLOWED_HELP}{_regex_hint(allow_regex)}.")
    # "**" means no more than "*", and would only cost backtracking.
    words = [_STARS.sub("*", word) for word in _ENTRY_WORD.findall(normalize_entry(entry))]
    literal = [ch for ch in "".join(words) if ch not in "*?"]
    if len(literal) < MIN_ENTRY_CHARS:
        raise InvalidRule(entry, f"too short: an entry needs at least {MIN_ENTRY_CHARS} letters or digits.")
    if sum(word.count("*") for word in words) > MAX_STARS:
        raise InvalidRule(entry, f"an entry can have at most {MAX_STARS} *.")
    if "*" in entry or "?" in entry:
        kind = RuleKind.WILDCARD
    else:
        kind = RuleKind.PHRASE if len(words) > 1 else RuleKind.WORD
    compiler = _WordCompiler(marked=any(keeps_marks(ch) for ch in literal))
    body = GAP.join(compiler.word(word, last=index == len(words) - 1) for index, word in enumerate(words))
    lookbehind = compiler.boundary("(?<!{})", words[0][0])
    body = f"(?:{body}){compiler.boundary('(?!{})', words[-1][-1])}"
    return Rule(
        entry=entry,
        kind=kind,
        normalized=" ".join(words),
        source=source,
        pattern=re.compile(lookbehind + body),
        lookbehind=lookbehind,
        body=body,
    )


def _parse_regex(entry: str, allow_regex: bool, source: str) -> Rule:
    if not allow_regex:
        raise InvalidRule(entry, f"regular expressions (re:) are for the bot operator only. {_ALLOWED_HELP}.")
    source_text = entry.removeprefix(REGEX_PREFIX).strip()
    if not source_text:
        raise InvalidRule(entry, "write a regular expression after re:.")
    try:
        # The text it runs on is already casefolded; IGNORECASE spares the operator
        # from writing the pattern in lower case.
        pattern = re.compile(source_text, re.IGNORECASE)
    except re.error as error:
        raise InvalidRule(entry, f"not a valid regular expression: {error}.") from None
    if any(not found.group() for found in pattern.finditer(_EMPTY_MATCH_PROBE)):
        raise InvalidRule(entry, "this regular expression can match empty text, so it would block nearly every prompt.")
    return Rule(entry=entry, kind=RuleKind.REGEX, normalized=source_text, source=source, pattern=pattern)


def _allowed_in_entry(ch: str) -> bool:
    return (
        ch.isalnum()
        or ch.isspace()
        or ch in _SEPARATORS_IN_ENTRIES
        or ch in "*?"
        or unicodedata.category(ch) in _IGNORED_CATEGORIES
    )


def _regex_hint(allow_regex: bool) -> str:
    return ", or re:<pattern> for a regular expression" if allow_regex else ""


@dataclass(frozen=True, slots=True)
class _WordCompiler:
    """Turns the words of a normalised entry into patterns over normalised text."""

    marked: bool
    """The entry is in a script that keeps its combining marks (Devanagari, Arabic ...):
    its words and letters then include marks (slower to compile, so only then)."""

    @property
    def letter(self) -> str:
        return LETTER_OR_MARK if self.marked else LETTER

    def boundary(self, template: str, edge: str) -> str:
        """The lookaround (`template` with the class) that keeps `edge` at a word's edge."""
        if is_unspaced(edge):
            # No spaces between words there: an entry matches inside a run of text.
            return ""
        return template.format(WORD_OR_MARK if self.marked else WORD_CHAR)

    def word(self, word: str, *, last: bool) -> str:
        """One word of an entry: as written (letters may be stretched) or spelled out."""
        elements = [(m.group(1), m.group(2)) for m in _ELEMENT.finditer(word)]
        compact = "".join(
            self._wildcard(wildcard, final=last and index == len(elements) - 1) if wildcard else _stretchable(run)
            for index, (wildcard, run) in enumerate(elements)
        )
        # Spelling out is an evasion of words in alphabets (Latin, Cyrillic, Greek);
        # one letter has nothing to spell. A "*" before other letters is not spelled
        # out: across single letters and gaps it would backtrack far more than inside
        # one word.
        if len(word) < 2 or not is_alphabetic(word) or "*" in word.rstrip("*"):
            return compact
        return f"(?:{compact}|{self._spelled(word)})"

    def _wildcard(self, wildcard: str, *, final: bool) -> str:
        if wildcard == "?":
            return self.letter
        # At the very end only the word boundary follows a "*", so it need never give
        # letters back: possessive, it costs nothing to fail.
        return f"{self.letter}*+" if final else f"{self.letter}{{0,{MAX_STAR_LETTERS}}}"

    def _spelled(self, word: str) -> str:
        """The word with one to three separators between its letters (``n.u.d.e``);
        a "*" (only at its end) stands for more spelled letters."""
        letters = [self.letter if ch == "?" else re.escape(ch) for ch in word.rstrip("*")]
        more = f"(?:{SPELL_GAP}{self.letter})*+" if word.endswith("*") else ""
        return SPELL_GAP.join(letters) + more


def _stretchable(run: str) -> str:
    """A run of one character; a letter also matches the text's mark of stretching (three)."""
    char = re.escape(run[0])
    if not run[0].isalpha():
        return char * len(run)
    # Normalised text cuts runs to three; a run of three stands for one or two.
    return {1: f"{char}(?:{char}{char})?", 2: f"{char}{char}{char}?"}.get(len(run), char * 3)


class Blocklist:
    """An immutable, precompiled set of rules; ``match`` tells whether a prompt is blocked."""

    __slots__ = ("rules", "_bounded_rules", "_combined", "_regex_rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        unique: dict[tuple[RuleKind, str], Rule] = {}
        for rule in rules:
            # The first of equal entries wins: in a merged list, the global one.
            unique.setdefault((rule.kind, rule.normalized), rule)
        self.rules: tuple[Rule, ...] = tuple(unique.values())
        self._regex_rules = tuple(rule for rule in self.rules if rule.kind is RuleKind.REGEX)
        by_lookbehind: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.kind is not RuleKind.REGEX:
                by_lookbehind.setdefault(rule.lookbehind, []).append(rule)
        # Rules sharing a lookbehind share it in the combined pattern, so that each
        # alternative starts with a literal letter, which the regex engine checks fast.
        self._bounded_rules = tuple(rule for group in by_lookbehind.values() for rule in group)
        alternatives = (
            f"{lookbehind}(?:{'|'.join(rule.body for rule in group)})" for lookbehind, group in by_lookbehind.items()
        )
        self._combined = re.compile("|".join(alternatives)) if by_lookbehind else None

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, allow_regex: bool, source: str) -> Blocklist:
        """Parse one entry per line; blank lines and lines starting with ``#`` are skipped.

        Raises ``InvalidRule`` for the first bad entry, naming its line (``source, line N: ...``).
        """
        rules: list[Rule] = []
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                rules.append(parse_entry(text, allow_regex, source=source))
            except InvalidRule as error:
                raise InvalidRule(error.entry, error.problem, where=f"{source}, line {number}: ") from None
        return cls(rules)

    @classmethod
    def merged(cls, *lists: Blocklist) -> Blocklist:
        """One list with the rules of all `lists` (e.g. the global one and a group's)."""
        return cls(rule for blocklist in lists for rule in blocklist.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, text: str) -> RuleMatch | None:
        """The first rule that `text` matches, or None if the prompt may pass."""
        forms = normalized_forms(text)
        if self._combined is not None:
            for form in forms:
                if found := self._combined.search(form):
                    return self._which_rule(form, found.start())
        for rule in self._regex_rules:
            for form in forms:
                if found := rule.pattern.search(form):
                    return RuleMatch.of(rule, found)
        return None

    def match_all(self, text: str) -> list[RuleMatch]:
        """Every rule that `text` matches, in list order (e.g. for an admin testing a prompt)."""
        forms = normalized_forms(text)
        matches = []
        for rule in self.rules:
            found = next((m for form in forms if (m := rule.pattern.search(form))), None)
            if found:
                matches.append(RuleMatch.of(rule, found))
        return matches

    def _which_rule(self, form: str, start: int) -> RuleMatch:
        # The combined pattern tries the rules in this order, so the first rule that
        # matches where it matched is the one; this runs only for a blocked prompt.
        for rule in self._bounded_rules:
            if found := rule.pattern.match(form, start):
                return RuleMatch.of(rule, found)
        raise AssertionError("the combined pattern matched where no rule does")


def load_default_blocklist() -> Blocklist:
    """The operator's global list shipped with the bot (``bot/data/blocklist.txt``)."""
    text = (resources.files("bot") / "data" / "blocklist.txt").read_text(encoding="utf-8")
    return Blocklist.from_lines(text.splitlines(), allow_regex=True, source="global")
