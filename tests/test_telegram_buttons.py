"""Telegram: the buttons under a video — each action, remix's follow-up prompt, who may press, forum topics."""

from __future__ import annotations

from pathlib import Path

from bot.domain import JobKind, JobState
from bot.pricing import Pricing
from bot.sandbox import SandboxAccount, SandboxConfig, running_sandbox
from tests.fakes.telegram_api import FakeChat, FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    BOB,
    CAROL,
    FORUM,
    GROUP,
    RunningBot,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    running_bot,
    telegram_settings,
    user_ref,
    wait_text_reply,
    wait_videos,
)

# Two accounts: A makes the first video; then B has more room, so a job free to go
# anywhere would go to B.
A, B = "a@sandbox.local", "b@sandbox.local"
UPSCALES, EXTENDS = "/v2/pixverse/videos/upscale", "/v2/pixverse/videos/extend"


async def press(fake: FakeTelegram, chat, user, message, action: str) -> dict:
    """Press a button under `message` and wait for the answer to the callback query; return the answer."""
    query = await fake.user_presses_button(chat, user, message, f"px:{action}:{job_id_of(message)}")
    await fake.wait_for(lambda: query["id"] in fake.callback_answers, what=f"the answer to pressing {action}")
    return fake.callback_answers[query["id"]]


async def test_reroll_upscale_and_extend_each_make_a_new_video_under_the_pressed_one(fake, bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow --seed 42")
    [first] = await wait_videos(fake, ALICE_CHAT)

    for count, (action, answer) in enumerate(
        [("reroll", "Rerolling…"), ("upscale", "Upscaling…"), ("extend", "Extending…")], start=2
    ):
        assert (await press(fake, ALICE_CHAT, ALICE, first, action))["text"] == answer
        made = (await wait_videos(fake, ALICE_CHAT, count))[-1]
        assert made["reply_to_message"]["message_id"] == first["message_id"]
        job = await bot.job(job_id_of(made))
        assert (job.parent_id, job.action) == (job_id_of(first), action)

    reroll, upscale, extend = (await wait_videos(fake, ALICE_CHAT, 4))[1:]
    assert "seed 42" not in reroll["caption"]  # a reroll takes a new seed
    assert upscale["caption"].startswith("a fox in the snow\nupscale")
    assert [b.split(":")[1] for b in buttons(upscale)] == [
        "reroll",
        "extend",
        "modify",
    ]  # an upscale is not upscaled again
    assert extend["caption"].startswith("a fox in the snow\nextend")
    assert fake.spec_violations == []


async def test_remix_asks_for_the_new_prompt_and_the_answer_makes_the_video(fake, bot) -> None:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow --ar 9:16")
    [first] = await wait_videos(fake, ALICE_CHAT)
    job_id = job_id_of(first)

    answer = await press(fake, ALICE_CHAT, ALICE, first, "remix")

    assert answer["text"] == "Reply to my message with the new prompt."
    question = await wait_text_reply(fake, ALICE_CHAT, first, f"Remix of job {job_id}")
    [asked] = [c for c in fake.calls_to("sendMessage") if c.ok and c.result["message_id"] == question["message_id"]]
    assert asked.params["reply_markup"] == {
        "force_reply": True,
        "selective": True,
        "input_field_placeholder": "a fox running through snow --ar 9:16",
    }
    assert question["entities"][0]["type"] == "text_mention" and question["entities"][0]["user"]["id"] == ALICE.id

    await fake.user_sends_text(ALICE_CHAT, ALICE, "a wolf in the snow", reply_to=question)

    remix = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
    assert remix["caption"].startswith("a wolf in the snow\n") and "9:16" in remix["caption"]
    assert (await bot.job(job_id_of(remix))).parent_id == job_id
    assert fake.spec_violations == []


async def test_only_the_requester_or_a_chat_admin_may_press(fake, bot) -> None:
    fake.set_chat_member(GROUP, CAROL, "administrator")
    await fake.user_sends_text(GROUP, ALICE, "/create_single a fox in the snow")
    [video] = await wait_videos(fake, GROUP)

    refused = await press(fake, GROUP, BOB, video, "reroll")
    assert refused == {
        "callback_query_id": refused["callback_query_id"],
        "text": "⚠️ Only the person who asked for this video can use its buttons.",
        "show_alert": True,
    }
    refused_remix = await press(fake, GROUP, BOB, video, "remix")
    assert refused_remix["show_alert"] is True
    assert len(fake.bot_messages(GROUP)) == 2  # the status and the video: no question for Bob

    assert (await press(fake, GROUP, CAROL, video, "upscale"))["text"] == "Upscaling…"
    upscaled = (await wait_videos(fake, GROUP, 2))[-1]
    job = await bot.job(job_id_of(upscaled))
    assert job.user.user_id == str(CAROL.id) and job.requester.is_group_admin
    # The group's admins were asked once, at the first message, and remembered since.
    assert [c.params["chat_id"] for c in fake.calls_to("getChatAdministrators")] == [GROUP.id]
    assert fake.spec_violations == []


async def test_in_a_forum_topic_everything_stays_in_the_topic(fake, bot) -> None:
    topic = await fake.create_forum_topic(FORUM, ALICE, "Foxes")
    other_topic = await fake.create_forum_topic(FORUM, BOB, "Cats")
    await fake.user_sends_text(FORUM, ALICE, "/create_single a fox in the snow", thread_id=topic)
    [video] = await wait_videos(fake, FORUM, thread_id=topic)

    await press(fake, FORUM, ALICE, video, "remix")
    question = await wait_text_reply(fake, FORUM, video, "Remix of job")
    await fake.user_sends_text(FORUM, ALICE, "a wolf in the snow", thread_id=topic, reply_to=question)
    await wait_videos(fake, FORUM, 2, thread_id=topic)
    bad = await fake.user_sends_text(FORUM, ALICE, "/create_single x --quality 4k", thread_id=topic)
    await wait_text_reply(fake, FORUM, bad, "quality")

    sent = [c for c in fake.calls if c.method in {"sendMessage", "sendVideo"}]
    assert sent and {c.params.get("message_thread_id") for c in sent} == {topic}
    assert fake.bot_messages(FORUM, thread_id=other_topic) == []
    assert all(m.get("message_thread_id") == topic for m in fake.bot_messages(FORUM))
    assert fake.spec_violations == []


def two_accounts() -> SandboxConfig:
    return SandboxConfig(
        generation_seconds=0.3, accounts=[SandboxAccount(A, max_jobs=3), SandboxAccount(B, max_jobs=1)]
    )


async def a_video_made_on_a(fake: FakeTelegram, bot: RunningBot) -> dict:
    await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")
    [video] = await wait_videos(fake, ALICE_CHAT)
    assert (await bot.job(job_id_of(video))).account == A
    return video


async def pool_sees(bot: RunningBot, free: dict[str, int]) -> None:
    """Re-read capacity now (a pass does so too) and check the premise: this is what is free."""
    await bot.core.accounts.refresh(force=True)
    assert {slot.email: slot.available for slot in bot.core.accounts.accounts} == free


async def test_upscale_and_extend_run_on_the_account_that_made_the_video(tmp_path: Path, fake: FakeTelegram) -> None:
    async with running_sandbox(two_accounts()) as sandbox:
        async with running_bot(telegram_settings(tmp_path, sandbox, fake)) as bot:
            first = await a_video_made_on_a(fake, bot)
            sandbox.config.accounts[0].max_jobs, sandbox.config.accounts[1].max_jobs = 2, 5
            await pool_sees(bot, {A: 2, B: 5})

            await press(fake, ALICE_CHAT, ALICE, first, "extend")
            await press(fake, ALICE_CHAT, ALICE, first, "upscale")

            made = [await bot.job(job_id_of(v)) for v in (await wait_videos(fake, ALICE_CHAT, 3))[1:]]
    assert {job.request.kind for job in made} == {JobKind.EXTEND, JobKind.UPSCALE}
    assert [(job.account, sandbox.videos[job.video_id or ""].email) for job in made] == [(A, A), (A, A)]
    assert sandbox.count("POST", EXTENDS) == sandbox.count("POST", UPSCALES) == 1  # each sent once, to A
    assert fake.spec_violations == []


async def test_an_upscale_waits_for_its_own_full_account_without_holding_up_others(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    bob_chat = FakeChat.private(BOB)
    async with running_sandbox(two_accounts()) as sandbox:
        async with running_bot(telegram_settings(tmp_path, sandbox, fake)) as bot:
            first = await a_video_made_on_a(fake, bot)
            sandbox.config.accounts[0].max_jobs = 0  # A has no free slot; B has one
            await pool_sees(bot, {A: 0, B: 1})

            await press(fake, ALICE_CHAT, ALICE, first, "upscale")
            [upscale] = [
                j for j in await bot.core.service.recent_jobs(user_ref(ALICE)) if j.request.kind is JobKind.UPSCALE
            ]
            # Bob asks after Alice: his job goes to B while hers waits for A.
            await fake.user_sends_text(bob_chat, BOB, "/create_single a cat on a roof")
            [bobs] = await wait_videos(fake, bob_chat)
            assert (await bot.job(job_id_of(bobs))).account == B
            # Nothing was sent for the upscale while A was full: no 429, no slot taken on B.
            assert sandbox.count("POST", UPSCALES) == 0
            assert (await bot.job(upscale.id)).state is JobState.QUEUED

            sandbox.config.accounts[0].max_jobs = 1  # A frees up
            upscaled = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
            done = await bot.job(job_id_of(upscaled))
    assert done.id == upscale.id and done.account == A and sandbox.videos[done.video_id or ""].email == A
    assert sandbox.count("POST", UPSCALES) == 1
    assert fake.spec_violations == []


async def test_an_extend_shows_and_charges_what_is_sent_no_audio_and_the_model_that_extends(
    tmp_path: Path, sandbox, fake: FakeTelegram
) -> None:
    settings = telegram_settings(tmp_path, sandbox, fake, quota_unit="credits", quota_per_user="100000")
    async with running_bot(settings) as bot:
        await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow --model v5.6 --audio")
        [first] = await wait_videos(fake, ALICE_CHAT)
        assert "v5.6" in first["caption"] and "audio" in first["caption"]

        await press(fake, ALICE_CHAT, ALICE, first, "extend")
        extended = (await wait_videos(fake, ALICE_CHAT, 2))[-1]
        parent, extend = await bot.job(job_id_of(first)), await bot.delivered(job_id_of(extended))
        [mine, _] = await bot.core.quotas.status(user_ref(ALICE))
    # v2 extend has no audio field and runs v5.5 for a v5.6 video: the caption says so.
    settings_line = extended["caption"].split("\n")[1]
    assert settings_line.startswith("extend · v5.5 · ") and "audio" not in settings_line
    assert sandbox.videos[extend.video_id or ""].model == "v5.5"
    # Charged for what was sent: the extend costs the same as a v5.5 video without audio.
    pricing = Pricing.load()
    sent = parent.request.with_changes(kind=JobKind.EXTEND, model="v5.5", audio=False, seed=extend.request.seed)
    assert mine.used == pricing.credits(parent.request) + pricing.credits(sent)
    assert pricing.credits(sent) < pricing.credits(sent.with_changes(audio=True))  # audio would have cost more
    assert fake.spec_violations == []
