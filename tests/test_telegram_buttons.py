"""Telegram: the buttons under a video — each action, remix's follow-up prompt, who may press, forum topics."""

from __future__ import annotations

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_fixtures import (  # noqa: F401 (pytest fixtures, used by name)
    ALICE,
    ALICE_CHAT,
    BOB,
    CAROL,
    FORUM,
    GROUP,
    bot_fixture,
    buttons,
    fake_fixture,
    job_id_of,
    wait_text_reply,
    wait_videos,
)


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
    assert [b.split(":")[1] for b in buttons(upscale)] == ["reroll", "extend"]  # an upscale is not upscaled again
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
