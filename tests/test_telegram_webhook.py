"""Telegram in webhook mode: updates pushed to /telegram/webhook on the bot's HTTP server, checked by secret."""

from __future__ import annotations

import copy

from bot.bootstrap import serving_http
from tests.fakes.telegram_fixtures import (
    ALICE,
    ALICE_CHAT,
    fake_fixture,  # noqa: F401 (pytest fixtures, used by name)
    free_port,
    job_id_of,
    running_bot,
    status_message,
    telegram_settings,
    user_ref,
    wait_videos,
)


async def test_webhook_mode_takes_updates_with_the_right_secret_only(tmp_path, sandbox, fake) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    settings = telegram_settings(tmp_path, sandbox, fake, bot_public_url=public_url)
    async with running_bot(settings) as bot, serving_http(bot.core.http_app, "127.0.0.1", port):
        assert fake.webhook is not None and fake.webhook.url == f"{public_url}/telegram/webhook"
        [set_webhook] = fake.calls_to("setWebhook")
        assert set(set_webhook.params["allowed_updates"]) == {"message", "callback_query"}
        secret = fake.webhook.secret_token
        assert secret and len(secret) >= 32

        sent = await fake.user_sends_text(ALICE_CHAT, ALICE, "/create_single a fox in the snow")  # pushed
        [video] = await wait_videos(fake, ALICE_CHAT)
        await bot.delivered(job_id_of(video))
        await fake.wait_for(lambda: status_message(fake, ALICE_CHAT, sent)["text"] == "✅ Done")

        forged = copy.deepcopy(fake.updates[-1])
        forged["update_id"] += 100
        forged["message"]["text"] = "/create_single a forged request"
        calls_before = len(fake.calls)
        assert await fake.post_update_to(fake.webhook.url, forged, secret_token="wrong") == 401
        assert await fake.post_update_to(fake.webhook.url, forged) == 401
        assert forged["update_id"] not in bot.handled.seen
        assert len(fake.calls) == calls_before
        assert len(await bot.core.service.recent_jobs(user_ref(ALICE))) == 1

    assert fake.calls_to("getUpdates") == []
    assert fake.spec_violations == []
