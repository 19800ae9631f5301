"""The fake Telegram Bot API, proven with the real aiogram Bot, Dispatcher and webhook handler.

If these pass, adapter tests built on `FakeTelegram` exercise the same requests,
answers and errors the bot meets on the real Telegram.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from tests.fakes.telegram_api import (
    MESSAGE_NOT_MODIFIED,
    MESSAGE_TO_EDIT_NOT_FOUND,
    FakeChat,
    FakeTelegram,
    FakeUser,
    WebhookConfig,
)
from tests.fakes.telegram_spec import check_object, check_request

ALICE = FakeUser(id=1001, first_name="Alice", username="alice")
ALICE_CHAT = FakeChat.private(ALICE)
BOB = FakeUser(id=1002, first_name="Bob")
FORUM = FakeChat(id=-1001234567890, type="supergroup", title="Pix lab", is_forum=True)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20


def png(width: int, height: int) -> bytes:
    """Return bytes with a PNG signature and IHDR (all the fake reads), then filler."""
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height)
    return header + bytes(range(256)) * 8


def keyboard(*callback_data: str) -> InlineKeyboardMarkup:
    """Return a one-row inline keyboard with a button per callback_data."""
    buttons = [InlineKeyboardButton(text=data.title(), callback_data=data) for data in callback_data]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


def echo_router() -> Router:
    """A tiny bot: replies to /start, measures photos, answers a button, echoes text."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.reply("Hi! Send me a photo.")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo  # the filter guarantees it
        data = await download(bot, message.photo[-1].file_id)
        digest = hashlib.sha256(data).hexdigest()
        await message.answer(f"{len(data)} bytes, sha256 {digest}", reply_markup=keyboard("again"))

    @router.callback_query(F.data == "again")
    async def again(query: CallbackQuery) -> None:
        await query.answer("On it")
        if isinstance(query.message, Message):
            await query.message.edit_text("Again!")

    @router.message(F.text.as_("text"))
    async def echo(message: Message, text: str) -> None:
        await message.answer(text)

    return router


async def download(bot: Bot, file_id: str) -> bytes:
    """Return a file's bytes the way a bot fetches them (getFile, then the file URL)."""
    buffer = io.BytesIO()
    await bot.download(file_id, destination=buffer)
    return buffer.getvalue()


def make_bot(fake: FakeTelegram) -> Bot:
    """Return a real aiogram Bot whose requests go to the fake."""
    return Bot(fake.token, session=AiohttpSession(api=fake.api_server()))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A bot for direct calls, without a dispatcher."""
    async with make_bot(fake) as direct:
        yield direct


@pytest.fixture
async def polling(fake: FakeTelegram) -> AsyncIterator[None]:
    """Run the echo bot by long polling for the duration of the test."""
    dispatcher = Dispatcher()
    dispatcher.include_router(echo_router())
    task = asyncio.create_task(dispatcher.start_polling(make_bot(fake), handle_signals=False))
    await fake.wait_for(lambda: fake.waiting_polls, what="the bot to start polling")
    yield
    await dispatcher.stop_polling()  # also closes the bot's session
    await task


@pytest.mark.usefixtures("polling")
async def test_start_command_is_answered_as_a_reply(fake: FakeTelegram) -> None:
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")

    [call] = await fake.wait_for_method("sendMessage")
    assert call.params["reply_parameters"]["message_id"] == sent["message_id"]
    [reply] = fake.bot_messages(ALICE_CHAT)
    assert reply["text"] == "Hi! Send me a photo."
    assert reply["reply_to_message"]["message_id"] == sent["message_id"]
    assert reply["from"]["username"] == "PixTestBot"
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert fake.spec_violations == []


@pytest.mark.usefixtures("polling")
async def test_photo_download_gets_the_bytes_the_user_sent(fake: FakeTelegram) -> None:
    image = png(640, 480)
    sent = await fake.user_sends_photo(ALICE_CHAT, ALICE, image, caption="/animate a fox")

    [call] = await fake.wait_for_method("sendMessage")
    assert call.params["text"] == f"{len(image)} bytes, sha256 {hashlib.sha256(image).hexdigest()}"
    thumbnail, full = sent["photo"]
    assert (full["width"], full["height"], full["file_size"]) == (640, 480, len(image))
    assert thumbnail["width"] == 90
    [get_file] = fake.calls_to("getFile")
    assert get_file.result["file_id"] == full["file_id"]
    assert fake.downloads == [get_file.result["file_path"]]
    assert sent["caption_entities"] == [{"type": "bot_command", "offset": 0, "length": 8}]
    assert fake.spec_violations == []


@pytest.mark.usefixtures("polling")
async def test_button_press_is_answered_and_the_message_edited(fake: FakeTelegram) -> None:
    await fake.user_sends_photo(ALICE_CHAT, ALICE, png(64, 64))
    await fake.wait_for_method("sendMessage")
    [with_button] = fake.bot_messages(ALICE_CHAT)

    query = await fake.user_presses_button(ALICE_CHAT, ALICE, with_button, "again")

    await fake.wait_for_method("editMessageText")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers)
    assert fake.callback_answers[query["id"]]["text"] == "On it"
    [edited] = fake.bot_messages(ALICE_CHAT)
    # edit_text without reply_markup removes the keyboard, as on Telegram.
    assert edited["text"] == "Again!" and "reply_markup" not in edited
    with pytest.raises(AssertionError, match="no button"):
        await fake.user_presses_button(ALICE_CHAT, ALICE, edited, "again")
    assert fake.spec_violations == []


@pytest.mark.usefixtures("polling")
async def test_forum_topic_thread_is_kept(fake: FakeTelegram) -> None:
    thread = await fake.create_forum_topic(FORUM, ALICE, "Foxes")
    sent = await fake.user_sends_text(FORUM, ALICE, "hello foxes", thread_id=thread)

    [call] = await fake.wait_for_method("sendMessage")
    assert call.params["message_thread_id"] == thread
    [reply] = fake.bot_messages(FORUM, thread_id=thread)
    assert reply["text"] == "hello foxes" and reply["is_topic_message"] is True
    assert sent["reply_to_message"]["forum_topic_created"]["name"] == "Foxes"
    assert fake.spec_violations == []


async def test_video_upload_is_captured_with_its_size(fake: FakeTelegram, bot: Bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")

    message = await bot.send_video(
        ALICE_CHAT.id, BufferedInputFile(MP4, "fox.mp4"), caption="A fox", width=720, height=1280
    )

    [call] = fake.calls_to("sendVideo")
    assert call.params["video"] == {
        "filename": "fox.mp4",
        "size": len(MP4),
        "content_type": "application/octet-stream",
    }
    assert call.files["video"].data == MP4
    assert message.video is not None and message.video.file_size == len(MP4)
    assert message.video.mime_type == "video/mp4" and message.caption == "A fox"
    assert fake.file(message.video.file_id).data == MP4
    again = await bot.send_video(ALICE_CHAT.id, message.video.file_id)
    assert again.video is not None and again.video.file_id == message.video.file_id

    fake.upload_limit = len(MP4) - 1
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_video(ALICE_CHAT.id, BufferedInputFile(MP4, "fox.mp4"))
    assert fake.spec_violations == []


async def test_injected_faults_surface_as_aiogram_errors(fake: FakeTelegram, bot: Bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")
    fake.fail_next("sendMessage", 429, retry_after=7)

    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(ALICE_CHAT.id, "first try")
    assert flood.value.retry_after == 7
    await bot.send_message(ALICE_CHAT.id, "second try")
    assert [m["text"] for m in fake.bot_messages(ALICE_CHAT)] == ["second try"]

    fake.fail_next("editMessageText", 400, description=MESSAGE_NOT_MODIFIED)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("x", chat_id=ALICE_CHAT.id, message_id=2)

    fake.user_blocks_bot(ALICE)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ALICE_CHAT.id, "anyone there?")
    assert fake.spec_violations == []


async def test_edits_and_markup_behave_like_telegram(fake: FakeTelegram, bot: Bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")
    sent = await bot.send_message(ALICE_CHAT.id, "<b>Fox</b> &amp; co", parse_mode="HTML")
    assert sent.text == "Fox & co"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [("bold", 0, 3)]

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<b>Fox</b> &amp; co",
            chat_id=ALICE_CHAT.id,
            message_id=sent.message_id,
            parse_mode="HTML",
        )
    with pytest.raises(TelegramBadRequest) as missing:
        await bot.edit_message_text("gone", chat_id=ALICE_CHAT.id, message_id=999)
    assert missing.value.message == MESSAGE_TO_EDIT_NOT_FOUND
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "cat" at byte offset 2'):
        await bot.send_message(ALICE_CHAT.id, "a <cat> in HTML", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(BOB.id, "we never met")

    await bot.delete_message(ALICE_CHAT.id, sent.message_id)
    assert fake.bot_messages(ALICE_CHAT) == []
    assert fake.spec_violations == []


async def test_spec_checker_flags_bad_requests(fake: FakeTelegram, bot: Bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")

    await bot.send_message(ALICE_CHAT.id, "pick one", reply_markup=keyboard("é" * 32 + "x"))
    assert fake.spec_violations == [
        "sendMessage.reply_markup.inline_keyboard[0][0].callback_data: 65 bytes, allowed 1-64"
    ]

    fake.spec_violations.clear()
    # aiogram's models refuse to build a request without a required field: go around them.
    url = f"{fake.base_url}/bot{fake.token}/sendMessage"
    async with aiohttp.ClientSession() as http, http.post(url, data={"chat_id": "1001"}) as answer:
        assert answer.status == 400
        assert (await answer.json())["description"] == "Bad Request: text is empty"
    assert fake.spec_violations == ["sendMessage: missing required field 'text'"]


@pytest.mark.parametrize(
    ("method", "params", "problems"),
    [
        (
            "sendMessage",
            {
                "chat_id": "@pixlab",
                "text": "x" * 4096,
                "reply_parameters": {"message_id": 3},
                "link_preview_options": {"is_disabled": True},
                "reply_markup": {"force_reply": True},
            },
            [],
        ),
        (
            "SETMYCOMMANDS",
            {
                "commands": [{"command": "create_single", "description": "Make a video"}],
                "scope": {"type": "chat", "chat_id": -100},
            },
            [],
        ),
        (
            "sendMediaGroup",
            {
                "chat_id": 1,
                "media": [
                    {
                        "type": "photo",
                        "media": {"filename": "a.png", "size": 3, "content_type": "image/png"},
                    },
                    {"type": "video", "media": "BAAC00000001"},
                ],
            },
            [],
        ),
        ("sendMessage", {"chat_id": 1}, ["sendMessage: missing required field 'text'"]),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x" * 4097},
            ["sendMessage.text: 4097 characters, allowed 1-4096"],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "hi", "colour": "red"},
            ["sendMessage: unknown field 'colour'"],
        ),
        (
            "sendMessage",
            {"chat_id": True, "text": "hi"},
            ["sendMessage.chat_id: expected Integer or String, got Boolean"],
        ),
        (
            "sendVideo",
            {"chat_id": 1, "video": "attach://clip"},
            ["sendVideo.video: 'attach://clip' names no uploaded file part"],
        ),
        (
            "sendPhoto",
            {"chat_id": 1, "photo": "AgAC1", "caption": "c" * 1025},
            ["sendPhoto.caption: 1025 characters, allowed 0-1024"],
        ),
        (
            "setMyCommands",
            {"commands": [{"command": "Create", "description": ""}]},
            [
                "setMyCommands.commands[0].command: 'Create' breaks the rule "
                "'Can contain only lowercase English letters, digits and underscores'",
                "setMyCommands.commands[0].description: 0 characters, allowed 1-256",
            ],
        ),
        (
            "setMyCommands",
            {"commands": [], "scope": {"type": "chat"}},
            ["setMyCommands.scope: missing required field 'chat_id'"],
        ),
        ("sendPigeon", {}, ["sendPigeon: unknown method"]),
    ],
)
def test_check_request(method: str, params: dict[str, object], problems: list[str]) -> None:
    assert check_request(method, params) == problems


async def test_wire_formats_and_errors(fake: FakeTelegram) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/start")
    api = f"{fake.base_url}/bot{fake.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/SENDMESSAGE", json={"chat_id": 1001, "text": "json"}) as answer:
            assert (await answer.json())["result"]["text"] == "json"
        async with http.post(f"{api}/sendmessage", data={"chat_id": "1001", "text": "form"}) as answer:
            assert (await answer.json())["result"]["text"] == "form"
        async with http.post(f"{api}/sendPigeon") as answer:
            assert answer.status == 404
            assert await answer.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        async with http.post(f"{fake.base_url}/bot1:wrong/getMe") as answer:
            assert answer.status == 401
            assert await answer.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
    assert [call.method for call in fake.calls] == ["sendMessage", "sendMessage", "sendPigeon"]
    assert fake.spec_violations == ["sendPigeon: unknown method"]

    async with Bot("42:wrong-token", session=AiohttpSession(api=fake.api_server())) as stranger:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()


async def test_bot_info_methods(fake: FakeTelegram, bot: Bot) -> None:
    await fake.user_sends_text(FORUM, ALICE, "hi all")
    fake.set_chat_member(FORUM, ALICE, "creator")
    fake.set_chat_member(FORUM, BOB, "administrator")

    me = await bot.get_me()
    assert (me.id, me.username) == (fake.bot_id, "PixTestBot")
    assert isinstance(await bot.get_chat_member(FORUM.id, ALICE.id), ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(FORUM.id, BOB.id), ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(FORUM.id, fake.bot_id), ChatMemberMember)
    admins = await bot.get_chat_administrators(FORUM.id)
    assert {m.user.id: type(m) for m in admins} == {ALICE.id: ChatMemberOwner, BOB.id: ChatMemberAdministrator}
    chat = await bot.get_chat(FORUM.id)
    assert (chat.title, chat.is_forum) == ("Pix lab", True)

    commands = [BotCommand(command="create_single", description="Make a video")]
    scope = BotCommandScopeChat(chat_id=FORUM.id)
    assert await bot.set_my_commands(commands, scope=scope)
    answered = await bot.get_my_commands(scope=scope)
    assert [(c.command, c.description) for c in answered] == [("create_single", "Make a video")]
    assert await bot.get_my_commands() == []
    await bot.send_chat_action(FORUM.id, "upload_video")
    assert fake.spec_violations == []


async def test_get_updates_long_polls_and_confirms_by_offset(fake: FakeTelegram, bot: Bot) -> None:
    waiting = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.waiting_polls == 1)
    await fake.user_sends_text(ALICE_CHAT, ALICE, "wake up")

    [update] = await asyncio.wait_for(waiting, timeout=2)
    assert update.message is not None and update.message.text == "wake up"
    assert await bot.get_updates(offset=update.update_id + 1) == []

    # A second poller cuts the first off with 409, as on Telegram.
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.waiting_polls == 1)
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError):
        await first
    assert fake.spec_violations == []


async def test_webhook_mode_checks_the_secret(fake: FakeTelegram) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(echo_router())
    bot = make_bot(fake)
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token="s3cret").register(app, path="/hook")
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = "http://{}:{}/hook".format(*runner.addresses[0][:2])
        await bot.set_webhook(url, secret_token="s3cret")
        assert fake.webhook == WebhookConfig(url, "s3cret", 40)

        await fake.user_sends_text(ALICE_CHAT, ALICE, "via webhook")  # pushed to the hook

        await fake.wait_for_method("sendMessage")
        assert fake.bot_messages(ALICE_CHAT)[0]["text"] == "via webhook"
        assert await fake.post_update_to(url, fake.updates[-1], secret_token="wrong") == 401
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        assert (await bot.get_webhook_info()).url == url
    finally:
        await runner.cleanup()  # the handler's shutdown hook closes the bot's session
    assert fake.spec_violations == []


async def test_local_mode_serves_files_from_disk() -> None:
    async with FakeTelegram(local_mode=True) as fake, make_bot(fake) as bot:
        image = png(32, 32)
        sent = await fake.user_sends_document(ALICE_CHAT, ALICE, image, file_name="fox.png")
        assert bot.session.api.is_local
        assert await download(bot, sent["document"]["file_id"]) == image
        assert fake.downloads == []  # read from disk, not over HTTP
        assert sent["document"]["mime_type"] == "image/png"


async def test_updates_made_by_the_fake_follow_the_spec(fake: FakeTelegram, bot: Bot) -> None:
    thread = await fake.create_forum_topic(FORUM, ALICE, "Foxes")
    await fake.user_sends_text(FORUM, BOB, "/start@PixTestBot now", thread_id=thread)
    await fake.user_sends_photo(ALICE_CHAT, ALICE, png(1280, 720), caption="a fox")
    await fake.user_sends_document(ALICE_CHAT, ALICE, png(16, 16), caption="as file")
    sent = await bot.send_message(ALICE_CHAT.id, "choose", reply_markup=keyboard("reroll"))
    await fake.user_presses_button(ALICE_CHAT, ALICE, sent.message_id, "reroll")

    assert len(fake.updates) == 5
    assert [problem for update in fake.updates for problem in check_object("Update", update)] == []
    assert fake.updates[1]["message"]["entities"][0]["length"] == len("/start@PixTestBot")
