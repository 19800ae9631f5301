"""/id: the caller's and the chat's ids, written as BOT_ADMIN_IDS and DISCORD_GUILD_IDS take them.

Telegram through the real aiogram adapter against the fake Bot API, the console through its
real session; the Discord slash command is tested with the other Discord commands
(tests/test_discord_adapter.py).
"""

from __future__ import annotations

import io

from adapters.console.app import run_console
from bot.bootstrap import open_core
from bot.sandbox import SandboxConfig, running_sandbox
from tests.fakes.telegram_fixtures import (  # noqa: F401 (fixtures)
    ALICE,
    ALICE_CHAT,
    GROUP,
    OPERATOR,
    OPERATOR_CHAT,
    bot_fixture,
    fake_fixture,
    wait_text_reply,
)
from tests.harness import fast_settings


async def _ask_id(fake, chat, user) -> str:
    sent = await fake.user_sends_text(chat, user, "/id")
    return (await wait_text_reply(fake, chat, sent, "Your id"))["text"]


async def test_telegram_id_names_the_user_and_the_chat_as_the_settings_take_them(fake, bot) -> None:
    in_group = await _ask_id(fake, GROUP, ALICE)
    assert in_group.splitlines() == [
        f"Your id: telegram:{ALICE.id} (as BOT_ADMIN_IDS takes it: BOT_ADMIN_IDS=telegram:{ALICE.id})",
        f"This chat: {GROUP.id}",
        "You are not an operator: the bot's owner adds your id to BOT_ADMIN_IDS and restarts it.",
    ]
    in_private = await _ask_id(fake, OPERATOR_CHAT, OPERATOR)
    assert f"Your id: telegram:{OPERATOR.id}" in in_private and "You are an operator of this bot." in in_private
    # Listed in the command menu and in /help.
    [menu, *_] = fake.calls_to("setMyCommands")
    assert "id" in [command["command"] for command in menu.params["commands"]]
    sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/help")
    assert "/id — your id and this chat's" in (await wait_text_reply(fake, ALICE_CHAT, sent, "/id"))["text"]


async def test_console_id_names_the_console_user(tmp_path) -> None:
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sandbox:
        settings = fast_settings(tmp_path, sandbox, bot_admin_ids=["console:olga"])
        async with open_core(settings) as core:
            out = io.StringIO()
            assert await run_console(core, stdin=io.StringIO("/id\n/help\n"), out=out, user="olga") == 0
    text = out.getvalue()
    assert "Your id: console:olga (as BOT_ADMIN_IDS takes it: BOT_ADMIN_IDS=console:olga)\n" in text
    assert "You are an operator of this bot." in text
    assert "/id — your id and this chat's" in text
