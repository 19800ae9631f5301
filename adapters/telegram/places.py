"""Where an answer goes: back to the requester's chat and forum topic, as a reply to what they sent."""

from __future__ import annotations

from typing import Any

from aiogram.types import ReplyParameters

from bot.domain import Requester


def reply_kwargs(requester: Requester) -> dict[str, Any]:
    """`chat_id`, `message_thread_id` and `reply_parameters` for a send method answering `requester`."""
    chat, reply_to = requester.chat, requester.reply_to
    # The message may have been deleted meanwhile: post anyway rather than fail.
    reply = ReplyParameters(message_id=int(reply_to), allow_sending_without_reply=True) if reply_to else None
    return {
        "chat_id": int(chat.chat_id),
        "message_thread_id": int(chat.thread_id) if chat.thread_id else None,
        "reply_parameters": reply,
    }
