"""Telegram objects → the core's types: who asked where, which user a command names, which picture.

Nothing here calls the core; `requester_for` and `named_user` only translate.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.enums import ChatType, MessageEntityType
from aiogram.types import CallbackQuery, InaccessibleMessage, Message, User
from aiogram.utils.text_decorations import add_surrogates, remove_surrogates

from adapters.telegram.texts import HOW_TO_NAME_A_USER
from bot.blobs import ALLOWED_IMAGE_TYPES
from bot.domain import ChatRef, Platform, Requester, UserRef
from bot.errors import InvalidInput


def user_ref(user: User) -> UserRef:
    return UserRef(Platform.TELEGRAM, str(user.id), user.full_name)


def chat_ref(message: Message | InaccessibleMessage) -> ChatRef:
    """The chat, and the forum topic when the message is in one (replies must go back there)."""
    topic = message.message_thread_id if isinstance(message, Message) and message.is_topic_message else None
    return ChatRef(
        Platform.TELEGRAM,
        str(message.chat.id),
        thread_id=str(topic) if topic is not None else None,
        is_private=message.chat.type == ChatType.PRIVATE,
    )


def requester_for(event: Message | CallbackQuery) -> Requester | None:
    """Who asked and where to answer: a command answers its message, a button the message it sits under."""
    if isinstance(event, CallbackQuery):
        if event.message is None:  # a button of an inline-mode message: not ours
            return None
        user, message = event.from_user, event.message
    else:
        if event.from_user is None:
            return None
        user, message = event.from_user, event
    return Requester(user=user_ref(user), chat=chat_ref(message), reply_to=str(message.message_id))


def named_user(message: Message, args: str) -> tuple[UserRef, str]:
    """The user an admin command names, and the rest of its arguments.

    Telegram offers bots no lookup of @usernames, so a user is named by a text mention
    (picked from the mention list), a reply to their message, or a numeric id — in that
    order, so `/setquota 20` answering someone's message sets *their* quota to 20.
    """
    text = message.text or ""
    for entity in message.entities or ():
        if entity.type == MessageEntityType.TEXT_MENTION and entity.user is not None:
            rest = remove_surrogates(add_surrogates(text)[(entity.offset + entity.length) * 2 :])
            return user_ref(entity.user), rest.strip()
    replied = message.reply_to_message
    # In a forum every message "replies" to its topic's opening message: that names nobody.
    if (
        replied is not None
        and replied.from_user is not None
        and not replied.from_user.is_bot
        and replied.forum_topic_created is None
    ):
        return user_ref(replied.from_user), args.strip()
    first, _, rest = args.strip().partition(" ")
    if first.isdigit():
        return UserRef(Platform.TELEGRAM, first), rest.strip()
    raise InvalidInput("user", HOW_TO_NAME_A_USER)


ANIMATION_AS_VIDEO = "is an animation Telegram delivers as an MP4 video, and /animate starts from a still picture"


@dataclass(frozen=True, slots=True)
class ImageFile:
    """A file a user sent (a picture, or a video for /modify and /extend): its Telegram id and
    the size Telegram reported (if any)."""

    file_id: str
    size: int | None


def image_of(message: Message) -> ImageFile | None:
    """The picture on the message itself, else on the message it replies to.

    A GIF arrives as an `animation` (with `document` set to the same file). Telegram
    usually turns GIFs into MP4 clips: such a clip is refused by name, since /animate
    starts from a still picture; one still a GIF is taken like any image file.
    """
    for candidate in (message, message.reply_to_message):
        if candidate is None:
            continue
        if candidate.photo:
            largest = candidate.photo[-1]  # sizes come smallest first; the first is a thumbnail
            return ImageFile(largest.file_id, largest.file_size)
        animation = candidate.animation
        if animation is not None and not (animation.mime_type or "").startswith("image/"):
            raise InvalidInput("image", f"{ANIMATION_AS_VIDEO}; send a {ALLOWED_IMAGE_TYPES} picture")
        if candidate.document is not None:
            return ImageFile(candidate.document.file_id, candidate.document.file_size)
    return None


def video_of(message: Message, *, or_replied: bool = True) -> ImageFile | None:
    """The video on the message itself, else (`or_replied`) on the message it replies to: a
    video, a video sent as a file, or a GIF Telegram turned into an MP4. Its content is the
    core's to check."""
    for candidate in (message, message.reply_to_message if or_replied else None):
        if candidate is None:
            continue
        if candidate.video is not None:
            return ImageFile(candidate.video.file_id, candidate.video.file_size)
        if candidate.animation is not None:
            return ImageFile(candidate.animation.file_id, candidate.animation.file_size)
        if candidate.document is not None:  # sent "as a file": whatever it is, the core says
            return ImageFile(candidate.document.file_id, candidate.document.file_size)
    return None


def command_name(message: Message) -> str | None:
    """`create_single` for "/create_single@PixBot a fox"; None when the message is no command."""
    text = message.text or message.caption or ""
    words = text[1:].split(maxsplit=1) if text.startswith("/") else []
    return words[0].partition("@")[0].lower() if words else None
