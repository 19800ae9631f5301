"""User text is cleaned once, where it enters the core: no control or invisible characters get through."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import Animate, CreateSingle, parse_command
from bot.errors import InvalidInput
from bot.user_text import clean_user_text


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("a fox in the snow", "a fox in the snow"),
        ("  a\tfox\nin\r\nthe snow  ", "a fox in the snow"),
        ("a \x1b[1;31mred\x1b[0m fox", "a red fox"),
        ("a fox\x1b]0;window title\x07 runs", "a fox runs"),
        ("a\x00 fox\x07\x08\x7f\x9b2J", "a fox"),
        ("a f\u200bo\u2060x\ufeff \u00adruns", "a fox runs"),
        ("\u202eevil\u202c \u2066text\u2069", "evil text"),
        ("naïve café, 一只猫, Кот", "naïve café, 一只猫, Кот"),
        ("👨\u200d👩\u200d👧 family, ❤\ufe0f", "👨\u200d👩\u200d👧 family, ❤\ufe0f"),  # emoji keep their joiners
        # Nothing visible: empty.
        ("\u200b\u200c\u200d\u2060\ufeff", ""),
        ("\x1b[31m\x1b[0m\x07", ""),
        ("\u3164\u115f\u2800 \ufe0f", ""),
        (None, ""),
    ],
)
def test_clean_user_text(text: str | None, cleaned: str) -> None:
    assert clean_user_text(text) == cleaned


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\x1b[]0;m\x07\x9b\u200b\u202e\ufe0f")), max_size=60)
)
def test_cleaned_text_has_no_control_or_format_characters_and_cleaning_is_idempotent(text: str) -> None:
    cleaned = clean_user_text(text)
    assert not [ch for ch in cleaned if unicodedata.category(ch) == "Cc" or ch in "\u200b\u202e\u2060\ufeff"]
    assert cleaned == cleaned.strip()
    assert clean_user_text(cleaned) == cleaned


def test_every_text_field_of_a_command_is_cleaned() -> None:
    command = parse_command(
        CreateSingle, prompt="a\x1b[2J fox", negative_prompt="\u200bdark\x00ness", style="Anime\x07"
    )
    assert (command.prompt, command.negative_prompt, command.style) == ("a fox", "darkness", "Anime")
    with pytest.raises(InvalidInput, match="prompt: is empty; describe the video you want"):
        parse_command(CreateSingle, prompt="\u200b\x1b[0m")
    assert parse_command(Animate, prompt="\u2060\u200d").prompt is None
