"""Telegram: the admin commands — quotas, bans, mutes, filters and their modes, the log, stats, credits,
/bot on|off — and what being a group admin changes (the moderation exemption, mutes).

Group admins are whoever getChatAdministrators lists for the chat; the operator is
`telegram:9001` (BOT_ADMIN_IDS).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession

from adapters.telegram.admins import ChatAdmins
from storage import SqlGovernanceStore, open_database
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.fakes.telegram_fixtures import (
    ALICE,
    BOB,
    CAROL,
    GROUP,
    OPERATOR,
    OPERATOR_CHAT,
    RunningBot,
    fake_fixture,  # noqa: F401 (pytest fixtures, used by name)
    replies_to,
    running_bot,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)

ONLY_ADMINS = "Sorry, only admins can use this command."


@pytest.fixture
async def bot(tmp_path, sandbox, fake) -> AsyncIterator[RunningBot]:
    """Carol administers GROUP; members may make 3 videos a day."""
    fake.set_chat_member(GROUP, CAROL, "administrator")
    async with running_bot(telegram_settings(tmp_path, sandbox, fake, quota_per_user="3")) as running:
        yield running


async def say(fake: FakeTelegram, chat: FakeChat, user: FakeUser, text: str, expect: str, **kwargs) -> str:
    """Send `text` and return the bot's reply to it, which must contain `expect`."""
    sent = await fake.user_sends_text(chat, user, text, **kwargs)
    return (await wait_text_reply(fake, chat, sent, expect))["text"]


async def test_quota_and_setquota_for_a_user_and_for_the_group(fake, bot) -> None:
    assert "Your quota: 3 of 3 videos left" in await say(fake, GROUP, ALICE, "/quota", "quota")

    assert ONLY_ADMINS in await say(fake, GROUP, BOB, f"/setquota {ALICE.id} 10", "admins")
    # A chat admin is told what they can do instead: per-member quotas are the operator's.
    assert "group admins set the group's shared pool" in await say(
        fake, GROUP, CAROL, f"/setquota {ALICE.id} 10", "pool"
    )
    alice_says = await fake.user_sends_text(GROUP, ALICE, "hello")
    assert "Alice's quota is now 5 videos" in await say(
        fake, GROUP, OPERATOR, "/setquota 5", "quota", reply_to=alice_says
    )
    assert "Your quota: 5 of 5 videos left" in await say(fake, GROUP, ALICE, "/quota", "quota")
    assert f"telegram:{ALICE.id}'s quota is now 10 videos" in await say(
        fake, OPERATOR_CHAT, OPERATOR, f"/setquota {ALICE.id} 10", "quota"
    )
    assert "Your quota: 10 of 10 videos left" in await say(fake, GROUP, ALICE, "/quota", "quota")

    assert "shared pool is now 2 videos" in await say(fake, GROUP, CAROL, "/setquota group 2", "pool")
    assert "shared pool: 2 of 2 videos left" in await say(fake, GROUP, ALICE, "/quota", "quota")
    assert "pool usage was reset" in await say(fake, GROUP, CAROL, "/resetquota group", "reset")
    assert "name the user" in await say(fake, GROUP, CAROL, "/setquota @alice 5", "user")
    assert "Usage: /setquota" in await say(fake, GROUP, CAROL, "/setquota", "user")
    assert fake.spec_violations == []


async def test_a_banned_member_is_refused(fake, bot) -> None:
    bob_says = await fake.user_sends_text(GROUP, BOB, "I'll spam it")
    assert ONLY_ADMINS in await say(fake, GROUP, ALICE, "/ban", "admins", reply_to=bob_says)

    assert "Bob is banned from the bot in this group" in await say(
        fake, GROUP, CAROL, "/ban", "banned", reply_to=bob_says
    )

    assert "not allowed to use this bot here" in await say(fake, GROUP, BOB, "/create_single a fox", "allowed")
    assert "no longer banned" in await say(fake, GROUP, CAROL, f"/unban {BOB.id}", "banned")
    await say(fake, GROUP, BOB, "/create_single a fox", "Queued")
    assert fake.spec_violations == []


async def test_a_filtered_prompt_is_refused_naming_the_entry(fake, bot) -> None:
    assert "Added “lava lamp”" in await say(fake, GROUP, CAROL, "/filter add lava lamp", "Added")
    assert "lava lamp" in await say(fake, GROUP, CAROL, "/filter list", "Entries")
    assert "Would be refused" in await say(fake, GROUP, CAROL, "/filter test a LAVA lamp glowing", "Would")

    reply = await say(fake, GROUP, ALICE, "/create_single a lava lamp glowing", "refused")
    assert "it contains the blocked term “lava lamp”" in reply
    assert "Removed" in await say(fake, GROUP, CAROL, "/filter remove lava lamp", "Removed")
    await say(fake, GROUP, ALICE, "/create_single a lava lamp glowing", "Queued")
    assert fake.spec_violations == []


async def test_strike_mode_mutes_after_the_limit_and_the_log_shows_it(fake, bot) -> None:
    await say(fake, GROUP, CAROL, "/filter add lava", "Added")
    reply = await say(fake, GROUP, CAROL, "/filtermode strike 2 24 30", "Updated")
    assert "Mode: strike (2 refusals in 24 h mute a user for 30 min)" in reply

    assert "Strike 1 of 2" in await say(fake, GROUP, ALICE, "/create_single lava flow", "refused")
    assert "muted from the bot here for 30 min" in await say(fake, GROUP, ALICE, "/create_single lava", "refused")
    assert "You are muted" in await say(fake, GROUP, ALICE, "/create_single a kitten", "muted")

    log = await say(fake, GROUP, CAROL, "/modlog", "lava")
    assert "Alice — strike by blocklist “lava”" in log and "Alice — muted by blocklist" in log
    assert ONLY_ADMINS in await say(fake, GROUP, BOB, "/modlog", "admins")
    assert "Admins are exempt" in await say(fake, GROUP, CAROL, "/filtermode", "Mode")
    assert fake.spec_violations == []


async def test_stats_and_credits(fake, bot) -> None:
    await fake.user_sends_text(GROUP, ALICE, "/create_single a fox")
    await wait_videos(fake, GROUP)

    stats = await say(fake, GROUP, CAROL, "/stats 7", "Last 7 days")
    assert "• Alice: 1 jobs" in stats
    assert "days: 'soon' is not a whole number" in await say(fake, GROUP, CAROL, "/stats soon", "days")
    assert ONLY_ADMINS in await say(fake, GROUP, CAROL, "/credits", "admins")
    credits = await say(fake, OPERATOR_CHAT, OPERATOR, "/credits", "PixVerse accounts")
    assert "alice@sandbox.local:" in credits and "slots free" in credits
    assert fake.spec_violations == []


async def test_bot_off_silences_the_group_until_bot_on(fake, bot) -> None:
    assert ONLY_ADMINS in await say(fake, GROUP, ALICE, "/bot off", "admins")
    assert "The bot is off in this group" in await say(fake, GROUP, CAROL, "/bot off", "off")

    ignored = await fake.user_sends_text(GROUP, ALICE, "/create_single a fox")
    assert await bot.handled.finished(fake.updates[-1])
    ignored_admin = await fake.user_sends_text(GROUP, CAROL, "/quota")
    assert await bot.handled.finished(fake.updates[-1])
    assert [
        m
        for m in fake.bot_messages(GROUP)
        if m["reply_to_message"]["message_id"] in {ignored["message_id"], ignored_admin["message_id"]}
    ] == []
    assert not await bot.core.service.recent_jobs(user_ref(ALICE))

    assert "The bot is on in this group" in await say(fake, GROUP, CAROL, "/bot on", "on")
    await say(fake, GROUP, ALICE, "/create_single a fox", "Queued")
    assert fake.spec_violations == []


async def test_a_group_admin_is_exempt_from_the_filters_by_default(fake, bot) -> None:
    await say(fake, GROUP, CAROL, "/filter add lava", "Added")
    await say(fake, GROUP, CAROL, "/filtermode strike 1", "Updated")

    # ADMINS_EXEMPT is on by default: the admin's prompt goes through, and no strike is counted.
    await say(fake, GROUP, CAROL, "/create_single lava flow at night", "Queued")
    assert "blocked term “lava”" in await say(fake, GROUP, ALICE, "/create_single lava flow at night", "refused")

    log = await say(fake, GROUP, CAROL, "/modlog", "lava")
    assert "Alice — muted by blocklist “lava”" in log and "Carol" not in log
    await say(fake, GROUP, CAROL, "/create_single a lava lamp", "Queued")  # still not muted
    assert fake.spec_violations == []


async def test_a_muted_admin_still_runs_the_group_and_can_lift_their_own_mute(fake, bot) -> None:
    await say(fake, GROUP, CAROL, "/filter add lava", "Added")
    await say(fake, GROUP, CAROL, "/filtermode strike 1 24 60", "Updated")
    assert "Admins are checked too" in await say(fake, GROUP, CAROL, "/filtermode exempt off", "Updated")
    assert "you are muted from the bot here for 60 min" in await say(
        fake, GROUP, CAROL, "/create_single lava", "refused"
    )
    assert "You are muted" in await say(fake, GROUP, CAROL, "/create_single a kitten", "muted")

    # The mute is about prompts: the admin commands all still work.
    assert "Mode: strike (1 refusals in 24 h mute a user for 60 min)" in await say(
        fake, GROUP, CAROL, "/filtermode", "Mode"
    )
    assert "• lava" in await say(fake, GROUP, CAROL, "/filter list", "Entries")
    assert "Carol — muted by blocklist “lava”" in await say(fake, GROUP, CAROL, "/modlog", "lava")
    # Exempt again, the mute no longer holds the admin back; checked again, it does.
    await say(fake, GROUP, CAROL, "/filtermode exempt on", "Admins are exempt")
    await say(fake, GROUP, CAROL, "/create_single a kitten", "Queued")
    await say(fake, GROUP, CAROL, "/filtermode exempt off", "Admins are checked too")
    assert "You are muted" in await say(fake, GROUP, CAROL, "/create_single a puppy", "muted")

    assert "Carol is no longer muted here" in await say(fake, GROUP, CAROL, f"/unmute {CAROL.id}", "muted")
    await say(fake, GROUP, CAROL, "/create_single a puppy", "Queued")
    assert fake.spec_violations == []


async def test_unmute_by_reply_or_id_lets_the_member_prompt_again(fake, bot) -> None:
    await say(fake, GROUP, CAROL, "/filter add lava", "Added")
    await say(fake, GROUP, CAROL, "/filtermode strike 1", "Updated")
    alice_says = await fake.user_sends_text(GROUP, ALICE, "/create_single lava")
    await wait_text_reply(fake, GROUP, alice_says, "muted")

    assert ONLY_ADMINS in await say(fake, GROUP, BOB, "/unmute", "admins", reply_to=alice_says)
    assert "You are muted" in await say(fake, GROUP, ALICE, "/create_single a kitten", "muted")
    assert "Alice is no longer muted here; their strikes were cleared." in await say(
        fake, GROUP, CAROL, "/unmute", "muted", reply_to=alice_says
    )
    await say(fake, GROUP, ALICE, "/create_single a kitten", "Queued")

    # Muted again; lifted by id this time, and the answer still names her (Telegram knows the name).
    await say(fake, GROUP, ALICE, "/create_single lava", "muted")
    assert "Alice is no longer muted here" in await say(fake, GROUP, CAROL, f"/unmute {ALICE.id}", "muted")
    await say(fake, GROUP, ALICE, "/create_single a puppy", "Queued")
    assert "Alice was not muted here" in await say(fake, GROUP, CAROL, f"/unmute {ALICE.id}", "muted")
    assert ONLY_ADMINS in await say(fake, GROUP, BOB, f"/unmute {ALICE.id}", "admins")
    assert fake.spec_violations == []


async def test_admin_answers_name_members_named_by_id(fake, bot) -> None:
    await fake.user_sends_text(GROUP, BOB, "hi")  # Telegram knows Bob in this group
    assert "Bob is banned from the bot in this group" in await say(fake, GROUP, CAROL, f"/ban {BOB.id}", "banned")
    assert "Bob is no longer banned" in await say(fake, GROUP, CAROL, f"/unban {BOB.id}", "banned")

    # The operator in private: no chat to ask, so the name comes from Alice's last job.
    assert f"telegram:{ALICE.id}'s quota is now 5" in await say(
        fake, OPERATOR_CHAT, OPERATOR, f"/setquota {ALICE.id} 5", "quota"
    )
    await say(fake, GROUP, ALICE, "/create_single a fox", "Queued")
    assert "Alice's usage was reset" in await say(fake, OPERATOR_CHAT, OPERATOR, f"/resetquota {ALICE.id}", "reset")
    assert "Alice was not muted anywhere" in await say(fake, OPERATOR_CHAT, OPERATOR, f"/unmute {ALICE.id}", "muted")
    assert fake.spec_violations == []


async def test_a_burst_of_group_messages_asks_telegram_for_the_admins_once(fake, bot) -> None:
    sent = [
        await fake.user_sends_text(GROUP, user, text)
        for user in (ALICE, BOB, CAROL)
        for text in ("/quota", "/jobs", "/filtermode")
    ]
    for message in sent:
        await fake.wait_for(lambda message=message: replies_to(fake, GROUP, message), what="every reply")
    assert "Mode: reject" in replies_to(fake, GROUP, sent[-1])[0]["text"]  # Carol is an admin
    assert ONLY_ADMINS in replies_to(fake, GROUP, sent[2])[0]["text"]  # Alice is not

    assert [call.params["chat_id"] for call in fake.calls_to("getChatAdministrators")] == [GROUP.id]
    assert fake.calls_to("getChatMember") == []
    assert fake.spec_violations == []


async def test_the_admin_list_is_asked_again_once_stale_and_few_chats_are_kept(fake) -> None:
    other = FakeChat(id=-1001000000009, type="supergroup", title="Elsewhere")
    fake.set_chat_member(GROUP, CAROL, "administrator")
    fake.set_chat_member(other, BOB, "creator")
    now = [0.0]
    async with Bot(fake.token, session=AiohttpSession(api=fake.api_server())) as telegram:
        admins = ChatAdmins(telegram, ttl=60, max_chats=1, clock=lambda: now[0])
        assert await admins.of_chat(GROUP.id) == {CAROL.id}
        fake.set_chat_member(GROUP, ALICE, "administrator")
        now[0] = 59.0
        assert await admins.of_chat(GROUP.id) == {CAROL.id}  # remembered: a promotion counts a little later
        now[0] = 60.0
        assert await admins.of_chat(GROUP.id) == {CAROL.id, ALICE.id}
        assert await admins.of_chat(other.id) == {BOB.id}  # only one chat is kept: GROUP goes
        assert await admins.of_chat(GROUP.id) == {CAROL.id, ALICE.id}
    asked = [call.params["chat_id"] for call in fake.calls_to("getChatAdministrators")]
    assert asked == [GROUP.id, GROUP.id, other.id, GROUP.id]


async def answer(fake: FakeTelegram, chat: FakeChat, user: FakeUser, text: str) -> str:
    """Send `text` and return the bot's (first) reply to it, whatever it says."""
    return await say(fake, chat, user, text, "")


async def test_filtermode_refuses_numbers_out_of_range_and_the_group_keeps_working(fake, bot) -> None:
    await say(fake, GROUP, CAROL, "/filter add lava", "Added")
    await say(fake, GROUP, CAROL, "/filtermode strike 2 24 30", "Updated")
    refused = {
        "/filtermode strike 3 inf": "window hours: 'inf' is not a number between 0.1 and 720",
        "/filtermode strike 3 nan": "window hours: 'nan' is not a number between 0.1 and 720",
        "/filtermode strike 3 24 -5": "mute minutes: '-5' is not a number between 1 and 525600",
        "/filtermode strike 3 24 1e9": "mute minutes: '1e9' is not a number between 1 and 525600",
        "/filtermode strike 0": "strike limit: '0' is not a whole number between 1 and 100",
        "/filtermode strike 2.5": "strike limit: '2.5' is not a whole number between 1 and 100",
        "/filtermode strike infinity": "strike limit: 'infinity' is not a whole number between 1 and 100",
    }
    for command, message in refused.items():
        assert await answer(fake, GROUP, CAROL, command) == f"⚠️ {message}", command

    # Nothing of it was saved: the group works as before.
    assert "Mode: strike (2 refusals in 24 h mute a user for 30 min)" in await say(
        fake, GROUP, CAROL, "/filtermode", "Mode"
    )
    assert "Strike 1 of 2 in 24 h" in await say(fake, GROUP, ALICE, "/create_single lava flow", "refused")
    await say(fake, GROUP, ALICE, "/create_single a kitten", "Queued")
    assert fake.spec_violations == []


async def test_setquota_refuses_numbers_out_of_range(fake, bot) -> None:
    for typed in ("1e9", "-1", "inf", "2000000", "²"):
        assert await answer(fake, GROUP, CAROL, f"/setquota group {typed}") == (
            f"⚠️ quota: {typed!r} is not a whole number between 0 and 1000000, or 'unlimited'"
        )
    assert "quota: '99999999999' is not a whole number" in await answer(
        fake, OPERATOR_CHAT, OPERATOR, f"/setquota {ALICE.id} 99999999999"
    )
    assert "Your quota: 3 of 3 videos left" in await say(fake, GROUP, ALICE, "/quota", "quota")
    assert "shared pool is now 1000000 videos" in await say(fake, GROUP, CAROL, "/setquota group 1000000", "pool")
    assert fake.spec_violations == []


async def test_stats_and_modlog_refuse_numbers_out_of_range(fake, bot) -> None:
    for typed in ("0", "3651", "-7", "nan"):
        assert await answer(fake, GROUP, CAROL, f"/stats {typed}") == (
            f"⚠️ days: {typed!r} is not a whole number between 1 and 3650"
        )
    for typed in ("0", "51", "99999999999999999999"):
        assert await answer(fake, GROUP, CAROL, f"/modlog {typed}") == (
            f"⚠️ limit: {typed!r} is not a whole number between 1 and 50"
        )
    assert "You asked for 3650 days" in await say(fake, GROUP, CAROL, "/stats 3650", "days")
    assert "The moderation log is empty" in await say(fake, GROUP, CAROL, "/modlog 50", "log")
    assert fake.spec_violations == []


async def test_settings_saved_with_impossible_numbers_fall_back_to_the_defaults(
    tmp_path, sandbox, fake, caplog
) -> None:
    """A group that saved `strike 3 inf` before numbers were checked still gets its prompts answered."""
    settings = telegram_settings(tmp_path, sandbox, fake)
    db = await open_database(settings.bot_database)
    try:
        governance = SqlGovernanceStore(db)
        await governance.save_group_settings(
            f"telegram:{GROUP.id}",
            {"filter_mode": "strike", "strike_limit": 3, "strike_window_hours": math.inf, "mute_minutes": math.nan},
        )
        await governance.add_filter(f"telegram:{GROUP.id}", "lava", "telegram:1")
    finally:
        await db.close()

    async with running_bot(settings):
        reply = await answer(fake, GROUP, ALICE, "/create_single lava flow")
        assert "Strike 1 of 3 in 24 h" in reply
        await say(fake, GROUP, ALICE, "/create_single a kitten", "Queued")
    assert "ignoring its saved strike_window_hours=inf" in caplog.text
    assert "ignoring its saved mute_minutes=nan" in caplog.text
    assert fake.spec_violations == []


async def test_when_telegram_does_not_say_who_the_admins_are_members_still_create_and_admins_hear_why(
    fake, bot
) -> None:
    """getChatAdministrators failing (a 429, Telegram's 5xx) must not break the group: a
    member's own commands run (as a non-admin), an admin command says what happened and
    works once Telegram answers again (an operator's at once); no apology for a bug that
    is not one."""
    fake.fail_next("getChatAdministrators", 500, times=3)
    assert "Queued" in await say(fake, GROUP, ALICE, "/create_single a fox", "")
    refused = await say(fake, GROUP, CAROL, "/filtermode", "")
    assert "try again" in refused and "administers this group" in refused
    assert "Mode: reject" in await say(fake, GROUP, OPERATOR, "/filtermode", "")
    assert "Mode: reject" in await say(fake, GROUP, CAROL, "/filtermode", "Mode")
    assert not any("went wrong" in m.get("text", "") for m in fake.bot_messages(GROUP))


async def test_a_known_admin_list_outlives_a_failed_refresh(fake) -> None:
    """Past its two minutes the list is asked again; when that fails, the list Telegram
    gave last still decides (better than taking every admin for a member), and a 429
    is respected: the chat is not asked again before its retry_after."""
    fake.set_chat_member(GROUP, CAROL, "administrator")
    now = [0.0]
    async with Bot(fake.token, session=AiohttpSession(api=fake.api_server())) as telegram:
        admins = ChatAdmins(telegram, ttl=60, clock=lambda: now[0])
        assert await admins.of_chat(GROUP.id) == {CAROL.id}
        now[0] = 61.0
        fake.fail_next("getChatAdministrators", 429, retry_after=30)
        assert await admins.of_chat(GROUP.id) == {CAROL.id}
        now[0] = 80.0
        assert await admins.of_chat(GROUP.id) == {CAROL.id}  # within retry_after: not asked
        assert len(fake.calls_to("getChatAdministrators")) == 2
        now[0] = 92.0
        fake.set_chat_member(GROUP, ALICE, "administrator")
        assert await admins.of_chat(GROUP.id) == {CAROL.id, ALICE.id}
