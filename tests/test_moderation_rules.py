"""Prompt blocklists: evasions are caught, innocent prompts pass, bad entries are refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.moderation import (
    Blocklist,
    InvalidRule,
    RuleKind,
    RuleMatch,
    load_default_blocklist,
    normalize,
    parse_entry,
)
from bot.moderation.normalize import normalized_forms

ENTRIES = [
    "# a comment, then a blank line",
    "",
    "nude",
    "gore",
    "ass",
    "slut",
    "xxx",
    "kill yourself",
    "n*ked",
    "porn*",
    "f?ggot",
    r"re:\bbeat(?:s|ing)? (?:him|her|them) to death\b",
]


@pytest.fixture(scope="module")
def small() -> Blocklist:
    return Blocklist.from_lines(ENTRIES, allow_regex=True, source="test")


@pytest.fixture(scope="module")
def shipped() -> Blocklist:
    return load_default_blocklist()


EVASIONS = [
    # (prompt, the entry it must be refused by)
    ("nude", "nude"),
    ("A NUDE woman on a beach", "nude"),
    ("nüde", "nude"),
    ("nùdé", "nude"),
    ("nu\u200bde", "nude"),  # zero-width space
    ("n\u200du\u200dd\u200de", "nude"),  # zero-width joiners
    ("nu\u00adde", "nude"),  # soft hyphen
    ("nu\u202ede", "nude"),  # bidi override
    ("nud\u0435", "nude"),  # Cyrillic е
    ("\u039dUDE", "nude"),  # Greek capital nu
    ("g\u03bfre", "gore"),  # Greek ο
    ("\u0455lut", "slut"),  # Cyrillic ѕ
    ("nud3", "nude"),
    ("g0r3", "gore"),
    ("a$$", "ass"),
    ("s1ut", "slut"),  # "1" read as "l"
    ("n.u.d.e", "nude"),
    ("n u d e", "nude"),
    ("n-u-d-e", "nude"),
    ("n_u_d_e", "nude"),
    ("n . u . d . e", "nude"),
    ("a n-u-d-e woman", "nude"),  # a one-letter word just before
    ("N.U.D.3", "nude"),
    ("nuuude", "nude"),
    ("nuddde", "nude"),
    ("nuuuuuuuuude", "nude"),
    ("asssss", "ass"),
    ("xxxxxx", "xxx"),
    ("ｎｕｄｅ", "nude"),  # fullwidth
    ("𝐧𝐮𝐝𝐞", "nude"),  # mathematical bold
    ("ⓝⓤⓓⓔ", "nude"),  # circled
    ("n̷u̷d̷e̷", "nude"),  # strike-through combining marks
    ("Ｎü\u200bd3", "nude"),  # mixed
    ("一个nude女人", "nude"),  # glued to a script without spaces
    ("kill   yourself", "kill yourself"),
    ("KILL... YOURSELF!!", "kill yourself"),
    ("kill-yourself", "kill yourself"),
    ("#killyourself", "kill yourself"),
    ("k1ll yourself", "kill yourself"),
    ("k!ll y0urself", "kill yourself"),
    ("kiiill yourself", "kill yourself"),
    ("k i l l yourself", "kill yourself"),
    ("naked", "n*ked"),
    ("n@ked", "n*ked"),
    ("NAK3D", "n*ked"),
    ("pornography", "porn*"),
    ("P0RN0", "porn*"),
    ("p o r n o", "porn*"),
    ("faggot", "f?ggot"),
    ("f4ggot", "f?ggot"),
    ("Beating him to death", r"re:\bbeat(?:s|ing)? (?:him|her|them) to death\b"),
]


@pytest.mark.parametrize(("prompt", "entry"), EVASIONS)
def test_evasions_are_caught(small: Blocklist, prompt: str, entry: str) -> None:
    found = small.match(prompt)
    assert found is not None, f"{prompt!r} passed (normalised: {normalized_forms(prompt)})"
    assert found.rule == entry


PASSING_THE_SMALL_LIST = [
    "classic",
    "a classic car at sunset",
    "an assassin in the rain",
    "a bass guitar on a glass table",
    "as big as a house",
    "nudge the cat",
    "gored by a bull",
    "a gorge in the mountains",
    # Doubles are spelling: "nuude" would be a stretch to read as "nude".
    "nuude",
    "skill yourself up",
    "kill your self-doubt",
    "a snake eating its own tail",
]


@pytest.mark.parametrize("prompt", PASSING_THE_SMALL_LIST)
def test_word_boundaries_spare_innocent_words(small: Blocklist, prompt: str) -> None:
    assert small.match(prompt) is None


def test_a_match_tells_which_entry_and_what_it_saw(small: Blocklist) -> None:
    assert small.match("a n.u.d.3 woman") == RuleMatch(
        rule="nude", kind=RuleKind.WORD, matched="n.u.d.e", source="test"
    )
    assert small.match("PORNOGRAPHY") == RuleMatch(
        rule="porn*", kind=RuleKind.WILDCARD, matched="pornography", source="test"
    )
    phrase = small.match("Kill...yourself")
    assert phrase is not None and phrase.kind is RuleKind.PHRASE and phrase.matched == "kill...yourself"
    regex = small.match("beats them to death")
    assert regex is not None and regex.kind is RuleKind.REGEX and regex.matched == "beats them to death"


def test_match_all_reports_every_entry(small: Blocklist) -> None:
    found = small.match_all("nude porn, naked gore")
    assert [hit.rule for hit in found] == ["nude", "gore", "n*ked", "porn*"]
    assert small.match_all("a quiet lake") == []


def test_wildcards() -> None:
    blocklist = Blocklist.from_lines(["nud*", "*phobe", "b?t", "sh*t bag"], allow_regex=False, source="group")
    for prompt, entry in [
        ("nudes", "nud*"),
        ("nud", "nud*"),
        ("nudge", "nud*"),  # the trade-off of a wildcard: why the shipped list has no "nud*"
        ("technophobe", "*phobe"),
        ("bat", "b?t"),
        ("bot", "b?t"),
        ("sheeeet bag", "sh*t bag"),
    ]:
        found = blocklist.match(prompt)
        assert found is not None and found.rule == entry, prompt
    for prompt in ["bt", "boat", "nu de", "phobes", "shut up"]:
        assert blocklist.match(prompt) is None, prompt


def test_doubled_letters_are_significant() -> None:
    blocklist = Blocklist.from_lines(["god", "weed"], allow_regex=False, source="group")
    assert blocklist.match("a good dog") is None
    assert blocklist.match("a wed couple") is None
    assert blocklist.match("goood") is not None  # three or more is a stretch
    assert blocklist.match("weeeed") is not None


def test_scripts_without_spaces_match_inside_text() -> None:
    blocklist = Blocklist.from_lines(["裸体", "कल"], allow_regex=False, source="group")
    assert blocklist.match("一个裸体女人") is not None
    assert blocklist.match("आज कल") is not None
    # Devanagari vowel signs are combining marks: "कला" (art) is another word.
    assert blocklist.match("कला") is None


def test_merged_lists_keep_their_sources_and_the_first_of_duplicates(small: Blocklist) -> None:
    group = Blocklist.from_lines(["NUDE", "banana"], allow_regex=False, source="group")
    merged = Blocklist.merged(small, group)
    assert len(merged) == len(small) + 1
    nude = merged.match("nude")
    banana = merged.match("bananas are fine, a banana is not")
    assert nude is not None and nude.source == "test"
    assert banana is not None and (banana.rule, banana.source) == ("banana", "group")
    assert Blocklist.merged().match("nude") is None


@pytest.mark.parametrize(
    ("entry", "kind", "normalized"),
    [
        ("Nude", RuleKind.WORD, "nude"),
        ("  kill-yourself ", RuleKind.PHRASE, "kill yourself"),
        ("n*ked", RuleKind.WILDCARD, "n*ked"),
        ("p0rn**", RuleKind.WILDCARD, "porn*"),
        ("nu\u200bdé", RuleKind.WORD, "nude"),
        (r"re:\bsex\b", RuleKind.REGEX, r"\bsex\b"),
    ],
)
def test_entries_are_parsed(entry: str, kind: RuleKind, normalized: str) -> None:
    rule = parse_entry(entry, allow_regex=True, source="operator")
    assert (rule.entry, rule.kind, rule.normalized, rule.source) == (entry.strip(), kind, normalized, "operator")


@pytest.mark.parametrize(
    ("entry", "allow_regex", "message"),
    [
        (r"re:\bsex\b", False, "regular expressions (re:) are for the bot operator only"),
        ("re:(unclosed", True, "not a valid regular expression: missing )"),
        ("re:", True, "write a regular expression after re:"),
        ("re:x*", True, "can match empty text"),
        (r"re:\b", True, "can match empty text"),
        ("a", False, "too short: an entry needs at least 2 letters or digits"),
        ("*a?", False, "too short"),
        ("   ", False, "the entry is empty"),
        ("nude!", False, "cannot contain !"),
        ("n.u.d.e", False, "cannot contain ."),
        ("x" * 101, False, "at most 100 characters"),
        ("a*b*c*", False, "at most 2 *"),
    ],
)
def test_invalid_entries_are_refused_with_a_clear_message(entry: str, allow_regex: bool, message: str) -> None:
    with pytest.raises(InvalidRule) as caught:
        parse_entry(entry, allow_regex)
    text = str(caught.value)
    assert message in text
    assert f'"{entry.strip()}"' in text  # names the entry
    assert caught.value.entry == entry.strip()


def test_the_refusal_says_what_is_allowed() -> None:
    with pytest.raises(
        InvalidRule, match=r"Use letters, digits and spaces .* \* for any letters and \? for one letter"
    ):
        parse_entry("nude!", allow_regex=False)
    with pytest.raises(InvalidRule, match=r"or re:<pattern> for a regular expression"):
        parse_entry("nude!", allow_regex=True)


def test_a_bad_line_is_named_with_its_list_and_line_number() -> None:
    with pytest.raises(InvalidRule, match=r'^group, line 3: "re:x": regular expressions'):
        Blocklist.from_lines(["nude", "# comment", "re:x"], allow_regex=False, source="group")


INNOCENT_PROMPTS = [
    # Words that contain a blocked one (the Scunthorpe problem).
    "Scunthorpe United fans celebrating a goal",
    "a cocktail party on a rooftop",
    "an assassin in a dark alley",
    "a cottage in Essex",
    "a therapist's office with plants",
    "fresh grapefruit on a table",
    "a data analysis dashboard",
    "rolling hills of Sussex and Middlesex",
    "a skyscraper at night",
    "a big red button",
    "a classic car at sunset",
    "the town of Penistone in the rain",
    "a rapeseed field in bloom",
    "a heroine saving the city",
    "methane bubbles rising in a lake",
    "cumulus clouds over a cucumber farm",
    "a document on a desk",
    "a sextant on an old ship",
    "a nudibranch crawling on coral",
    "a pedometer on a runner's wrist",
    "an analyst reading the news",
    "a canal boat in Amsterdam",
    "a spice market in Marrakesh",
    "a hotel lobby",
    # Everyday scenes that sound violent or adult to a naive filter.
    "shoot a basketball into the hoop",
    "a photo shoot in a studio",
    "a shooting star over the desert",
    "a bloody mary cocktail with celery",
    "chicken breasts on the grill",
    "a blue tit on a branch",
    "a rooster crowing at dawn",
    "a killer whale jumping out of the ocean",
    "a knife cutting vegetables",
    "the execution of a perfect plan",
    "a horse snorting in the cold",
    "summa cum laude graduation ceremony",
    "pulling weeds in the garden",
    "a glass of coke with ice",
    "a medieval battle reenactment with knights",
    "a boxing match in slow motion",
    "Moby Dick, the white whale",
    "kids playing on the beach at sunset",
    "a little girl flying a kite",
    # Numbers, units and options.
    "a fox in the snow --ar 9:16 5s 720p 16:9",
    "1080p 60fps 4k 3d render, 2 cats, 10s",
    "v5.5 model, seed 12345, 1st place trophy, 90s style",
    "a 1970s disco with 3 dancers",
    "🐱🌸 a cat in spring 🌸",
    "🔥🔥🔥 epic dragon 🐉",
    # Other languages.
    "Ein Hund spielt im Schnee mit seinem Ball",
    "Une femme lit un livre dans un café à Paris",
    "Un niño juega al fútbol en la playa",
    "Кот сидит на подоконнике и смотрит на дождь",
    "Рыжая лиса бежит по заснеженному лесу на рассвете",
    "桜の木の下で猫が眠っている",
    "一只熊猫在竹林里吃竹子",
    "Ένα σκυλί τρέχει στην παραλία",
    "Un gatto dorme sul divano",
    "Um cachorro correndo na praia",
    "Kedi bahçede uyuyor",
    "바다 위로 해가 지는 풍경",
    "قطة تنام على الأريكة",
    "बगीचे में खेलता हुआ बच्चा",
    "Łódź nocą, widok z lotu ptaka",
]


@pytest.mark.parametrize("prompt", INNOCENT_PROMPTS)
def test_innocent_prompts_pass_the_shipped_list(shipped: Blocklist, prompt: str) -> None:
    assert shipped.match(prompt) is None, shipped.match_all(prompt)


@pytest.mark.parametrize(
    ("prompt", "entry"),
    [
        ("a n4ked woman", "naked"),
        ("p0rnhub style video", "porn*"),
        ("h e n t a i girl", "hentai"),
        ("a sexy teenager", "sexy teen*"),
        ("a sexy little girl posing", None),  # the operator's regular expression
        ("a schoolgirl in lingerie", None),
        ("graphic d-e-c-a-p-i-t-a-t-i-o-n", "decapitat*"),
        ("how to make a bomb at home", "how to make a bomb"),
        ("k y s", "kys"),
        ("smoking  w33d", "smoking weed"),
    ],
)
def test_the_shipped_list_catches_what_pixverse_refuses(shipped: Blocklist, prompt: str, entry: str | None) -> None:
    found = shipped.match(prompt)
    assert found is not None and found.source == "global"
    assert entry is None or found.rule == entry


def test_the_shipped_list_loads_with_its_regular_expressions(shipped: Blocklist) -> None:
    assert 80 <= len(shipped) <= 250
    assert {rule.kind for rule in shipped.rules} == set(RuleKind)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("  Hello,\tWORLD \n", "hello, world"),
        ("5s 720p 16:9 1080p 60fps 4k 3d 2 cats 90s", "5s 720p 16:9 1080p 60fps 4k 3d 2 cats 90s"),
        ("nud3 p0rn a$$ k!ll 4ss 5ex", "nude porn ass kill ass sex"),
        ("nude! wow!!", "nude! wow!!"),
        ("我有3只猫", "我有 3 只猫"),
        ("Кот и пёс", "кот и пес"),  # Russian words stay Russian; ё loses its accent
        ("ΗΑΤΕ", "ηατε"),  # so do Greek ones
        ("HΑΤΕ nudе", "hate nude"),  # words that mix alphabets are read as Latin first
        ("Наркотики", "наркотики"),
        ("sooooo coool", "sooo coool"),
        ("Łódź straße", "lodz strasse"),
        ("n.u.d.3", "n.u.d.e"),
        ("snake_case", "snake case"),
    ],
)
def test_normalize(text: str, normalized: str) -> None:
    assert normalize(text) == normalized


def test_an_ambiguous_one_is_read_both_ways() -> None:
    assert normalized_forms("s1ut") == ("siut", "slut")
    assert normalized_forms("k1ll") == ("kill", "klll")
    assert normalized_forms("16 9 1080p") == ("16 9 1080p",)


def test_every_reading_is_matched() -> None:
    # As written, then with the separators inside words read away; a word that mixes
    # alphabets is read toward each of them.
    assert normalized_forms("k.ill") == ("k.ill", "kill")
    assert normalized_forms("\u0441e\u043a\u0441") == ("cekc", "секс")  # a Latin "e" in "секс"
    assert normalized_forms("нaрко πoρ") == (
        "hapko nop",
        "нарко пор",
        "нαρκο πορ",
    )
    assert normalized_forms("рот и нос") == ("рот и нос",)


def test_words_in_one_alphabet_are_matched_as_written() -> None:
    english = Blocklist.from_lines(["pot", "hot", "cop", "kit", "hoc"], allow_regex=False, source="group")
    for prompt in ["открытый рот", "нос корабля", "сор на полу", "нот", "кіт спить", "ноты"]:
        assert english.match(prompt) is None, prompt
    # A word that mixes alphabets is still read toward Latin.
    for prompt, entry in [("pоt", "pot"), ("нot", "hot"), ("cор", "cop"), ("kіt", "kit")]:
        found = english.match(prompt)
        assert found is not None and found.rule == entry, prompt
    russian = Blocklist.from_lines(["рот"], allow_regex=False, source="group")
    assert russian.match("открытый рот") is not None
    assert russian.match("открытый pот") is not None  # a Latin "p": read toward Cyrillic
    assert russian.match("a pot of tea") is None


def test_separators_inside_a_word_are_read_away(small: Blocklist) -> None:
    for prompt, entry in [
        ("k.ill yourself", "kill yourself"),
        ("nu.de", "nude"),
        ("g_o_r-e", "gore"),
        ("p🍑orn", "porn*"),
    ]:
        found = small.match(prompt)
        assert found is not None and found.rule == entry, prompt
    # A space ends a word: two words are not glued into an entry.
    for prompt in ["a glass. so", "nu de", "go re", "classic", "a bass. guitar"]:
        assert small.match(prompt) is None, prompt


# Characters the normaliser treats specially, mixed into arbitrary text.
TRICKY = st.sampled_from("nude aеοΗ 1|!@$_.-*?ü\u200b\u0301 3ßİ桜क\u093f")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.one_of(st.characters(), TRICKY), max_size=80))
def test_match_never_raises_and_normalize_is_idempotent(shipped: Blocklist, text: str) -> None:
    shipped.match(text)
    normalized = normalize(text)
    assert normalize(normalized) == normalized


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=TRICKY, max_size=30))
def test_entries_either_parse_or_are_refused(text: str) -> None:
    try:
        rule = parse_entry(text)
    except InvalidRule as error:
        assert str(error)
    else:
        Blocklist([rule]).match(text)
