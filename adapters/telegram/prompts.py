"""Questions the bot asks with ForceReply, and recognising the answers to them.

Each question carries what the answer needs in its own text (the job to remix, modify
or lip-sync, the options given with an empty /create_single), so an answer that arrives after a
restart still finds it: the question is the record, read back from
`reply_to_message.text`. Nothing is kept in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import ForceReply, Message, User
from aiogram.utils.formatting import Text, TextMention

from bot.domain import ResultAction
from bot.text_options import LIPSYNC_SPEECH_MAX_CHARS
from bot.upstream.models import MAX_LIPSYNC_AUDIO_SECONDS
from bot.user_text import clean_user_text

# What a button that takes text asks (bot.domain.TEXT_ACTIONS): its opening, what to reply
# with, and that in short (the answer to the press; Telegram shows at most 200 characters).
_ASKS: dict[ResultAction, tuple[str, str, str]] = {
    ResultAction.REMIX: ("🔀 Remix", "the new prompt", "the new prompt"),
    ResultAction.MODIFY: ("✏️ Modify", "the change to make", "the change to make"),
    ResultAction.LIPSYNC: (
        "🗣 Lip-sync",
        f"the words to say (up to {LIPSYNC_SPEECH_MAX_CHARS} characters; add --voice NAME, /voices lists them),"
        f" or with a voice note or audio file (up to {MAX_LIPSYNC_AUDIO_SECONDS} seconds)",
        "the words to say, or a voice note",
    ),
}
_BY_OPENING = {opening: action for action, (opening, _, _) in _ASKS.items()}
_TEXT_QUESTION = re.compile(
    rf"^(?P<opening>{'|'.join(re.escape(o) for o in _BY_OPENING)}) of job (?P<job_id>[A-Za-z0-9]+):"
)
_PROMPT = "✏️ What should the video show? Reply to this message with the prompt."
_OPTIONS = re.compile(r"^Options so far: (?P<options>.+)$", re.MULTILINE)

PROMPT_PLACEHOLDER = "a fox running through snow --ar 9:16"

QuestionReader = Callable[[str], dict[str, str] | None]


def force_reply() -> ForceReply:
    # selective: in a group only the person asked gets the reply field opened.
    return ForceReply(selective=True, input_field_placeholder=PROMPT_PLACEHOLDER)


def prompt_question(options: str) -> str:
    """Asked when /create_single came without a prompt; keeps the options it did have
    (cleaned as the core cleans all user text: they are shown back)."""
    options = clean_user_text(options)
    return f"{_PROMPT}\nOptions so far: {options}" if options else _PROMPT


def read_prompt_question(text: str) -> dict[str, str] | None:
    """`{"options": …}` when `text` is a prompt question, else None."""
    if not text.startswith(_PROMPT):
        return None
    found = _OPTIONS.search(text)
    return {"options": found["options"] if found else ""}


def asked_for(action: ResultAction) -> str:
    """The short answer to the press: what to reply with."""
    return f"Reply to my message with {_ASKS[action][2]}."


def text_question(action: ResultAction, job_id: str, user: User) -> dict[str, Any]:
    """Asked after 🔀, ✏️ or 🗣: message kwargs naming the presser, so `selective` opens their
    reply field.

    (A ForceReply answering the bot's own video would otherwise target nobody.)
    """
    opening, wanted, _ = _ASKS[action]
    return Text(
        f"{opening} of job {job_id}: ",
        TextMention(user.full_name, user=user),
        f", reply to this message with {wanted}.",
    ).as_kwargs()


def text_question_of(*actions: ResultAction) -> QuestionReader:
    """A reader of the questions `text_question` asks for these buttons: `{"job_id": …,
    "action": …}` when the text is one, else None."""

    def read(text: str) -> dict[str, str] | None:
        found = _TEXT_QUESTION.match(text)
        if found is None or _BY_OPENING[found["opening"]] not in actions:
            return None
        return {"job_id": found["job_id"], "action": _BY_OPENING[found["opening"]].value}

    return read


class AnswerTo(Filter):
    """A text reply to one of the bot's own questions; the handler receives what the question carried."""

    def __init__(self, read: QuestionReader, *, sound: bool = False) -> None:
        self._read = read
        self._sound = sound  # a voice note or audio file answers too

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, str]:
        asked = message.reply_to_message
        answered = message.text is not None or (self._sound and (message.voice or message.audio) is not None)
        if not answered or asked is None or asked.text is None:
            return False
        if asked.from_user is None or asked.from_user.id != bot.id:
            return False
        return self._read(asked.text) or False
