"""The core's `Notifier` on Discord: progress, results, failures and operator alerts.

While the interaction's token lives (see `context.py`), progress edits the ephemeral
"thinking…" response, a failure turns that response into its reason (only the
requester sees it, like every other refusal), and the finished video is a public
followup that answers the command. Later — Discord honours a token for 15 minutes,
videos can take longer — the outcome is posted to the channel as a normal message
that mentions the requester. How often progress is edited is the core's business
(bot/progress.py); this notifier states the budget and edits when asked. Each job's
progress edits its own requester's response through that interaction's webhook,
which Discord rate-limits per interaction, not per channel: so each job has a budget
of its own (`budget_scope`), and a busy channel never delays a new member's answer.

A post to the channel carries a nonce made of the job's id (discord.py sends it with
`enforce_nonce`): Discord creates no second message for the same nonce within a few
minutes, so a process that died after the post and before the job was recorded
delivered has its successor's post answered with the first message, not a new one.
An interaction's followup goes through its webhook, which takes no nonce: there a
crash while Discord is answering the post can still post the video twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import discord

from adapters.discord.context import DEFAULT_UPLOAD_LIMIT, InteractionContext
from adapters.discord.responder import CONTENT_LIMIT, fit
from adapters.discord.views import cancel_view, result_view
from bot.domain import ChatRef, Job, JobState, utcnow
from bot.ports import ChatBudget, DeliveryFailed, Posted, Progress, VideoDelivery
from bot.texts import progress_text

log = logging.getLogger(__name__)

# A channel post starts with the requester's mention; the caption gets the rest of a message.
MENTION_ROOM = len("<@18446744073709551615>\n")
# Seconds between two progress edits of one interaction's response: Discord rate-limits
# its webhook per interaction token; progress needs far fewer edits than the bucket
# allows and leaves room for the outcome, which goes through the same webhook.
DEFAULT_EDIT_INTERVAL = 2.0
# What Discord answers when the interaction can no longer be answered through: its token
# expired (Unknown Webhook, Invalid Webhook Token) or the user dismissed its message.
_INTERACTION_GONE_CODES = frozenset({10015, 50027, 10008})
# Discord's longest message nonce (Create Message: a string of at most 25 characters).
NONCE_LIMIT = 25

PostVia = Callable[[discord.Webhook, InteractionContext], Awaitable[Posted]]
PostTo = Callable[[discord.abc.Messageable], Awaitable[Posted]]


class DiscordNotifier:
    caption_limit = CONTENT_LIMIT - MENTION_ROOM

    def __init__(
        self,
        client: discord.Client,
        *,
        operator_ids: Iterable[int] = (),
        edit_interval: float = DEFAULT_EDIT_INTERVAL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._client = client
        self._operator_ids = tuple(operator_ids)
        self._budget = ChatBudget(min_gap=edit_interval)
        self._clock = clock

    async def close(self) -> None:
        """Nothing of its own to stop: requests under way end with the client."""

    def upload_limit(self, job: Job) -> int:
        context = InteractionContext.from_context(job.requester.context)
        return context.upload_limit if context else DEFAULT_UPLOAD_LIMIT

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return self._budget

    def budget_scope(self, job: Job) -> str:
        # Once the token expired nothing is edited; the channel is the scope a post would spend.
        return f"interaction:{job.id}" if self._live_context(job) is not None else f"channel:{job.chat.chat_id}"

    async def progress(self, job: Job, progress: Progress) -> str | None:
        context = self._live_context(job)
        if context is None or context.original_message_id is None or self._client.is_closed():
            return None  # the channel is not told of progress: only the requester was watching
        try:
            await self._edit_original_if_there(context, progress_text(job, progress), view=cancel_view(job.id))
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            # Progress is a courtesy: the next update (or the outcome) will try again.
            log.warning("progress of job %s not shown: %s", job.id, exc)
        return str(context.original_message_id)

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        def parts() -> dict[str, Any]:
            # Built per attempt: a file is consumed by the request that sends it.
            parts: dict[str, Any] = {"view": result_view(job.id, delivery.buttons)}
            if delivery.file is not None:
                parts["file"] = discord.File(Path(delivery.file), filename=f"pixverse-{job.id}.{delivery.extension}")
            elif delivery.link:
                parts["embed"] = discord.Embed(
                    title="▶️ Open the video",
                    url=delivery.link,
                    description="It is too large to upload here, so it stays on PixVerse.",
                )
            return parts

        async def via_interaction(webhook: discord.Webhook, context: InteractionContext) -> Posted:
            # Settling the "thinking…" response first makes the followup a new, public message
            # (Discord turns the first followup after a deferral into an edit of that response).
            await self._edit_original_if_there(context, "✅ Done — your video is below.")
            message = await webhook.send(
                delivery.caption, wait=True, allowed_mentions=discord.AllowedMentions.none(), **parts()
            )
            return Posted(message_ids=(str(message.id),))

        async def to_channel(channel: discord.abc.Messageable) -> Posted:
            message = await channel.send(
                f"{_mention(job)}\n{delivery.caption}",
                allowed_mentions=_only(job),
                nonce=post_nonce("video", job),
                **parts(),
            )
            return Posted(message_ids=(str(message.id),))

        return await self._post(job, via_interaction, to_channel)

    async def failed(self, job: Job, reason: str) -> Posted:
        asked = _short(job.request.user_prompt or job.request.kind.value)
        # A made video reaches here only when its posting was given up on: it is not "no video".
        text = f"⚠️ “{asked}”: {reason}" if job.has_video else f"❌ No video for “{asked}”: {reason}"
        if job.outcome is JobState.CANCELLED:
            text = f"✖️ “{asked}”: {reason}"

        async def via_interaction(_webhook: discord.Webhook, context: InteractionContext) -> Posted:
            await self._edit_original(context, fit(text))  # an edit: made twice, it is still one message
            return Posted(message_ids=(str(context.original_message_id),) if context.original_message_id else ())

        async def to_channel(channel: discord.abc.Messageable) -> Posted:
            message = await channel.send(
                fit(f"{_mention(job)} {text}"), allowed_mentions=_only(job), nonce=post_nonce("failed", job)
            )
            return Posted(message_ids=(str(message.id),))

        return await self._post(job, via_interaction, to_channel)

    async def finish(self, job: Job, posted: Posted) -> None:
        """Nothing is left once the outcome is posted: the interaction's response was settled
        before the video's followup (it has to be, see `deliver`), and a channel post has no
        progress message (progress is only ever shown in the interaction's response)."""

    async def alert_operator(self, text: str) -> None:
        for operator_id in self._operator_ids:
            try:
                channel = await self._client.create_dm(discord.Object(operator_id))
                await channel.send(fit(f"⚠️ {text}"))
            except discord.HTTPException as exc:
                log.warning("could not alert operator discord:%s: %s", operator_id, exc)

    # ------------------------------------------------------------------ posting

    async def _post(self, job: Job, via_interaction: PostVia, to_channel: PostTo) -> Posted:
        """Answer through the interaction while its token lives, else in the channel; map errors for the core."""
        if self._client.is_closed():
            raise DeliveryFailed("the Discord connection is closed", retry=True)
        context = self._live_context(job)
        try:
            if context is not None:
                try:
                    return await via_interaction(self._webhook(context), context)
                except discord.HTTPException as exc:
                    if exc.code not in _INTERACTION_GONE_CODES:
                        raise
                    log.info(
                        "job %s: the interaction cannot be answered any more (%s); posting to the channel", job.id, exc
                    )
                    context = None
            return await to_channel(self._channel(job))
        except discord.Forbidden as exc:
            await self._report_forbidden(job, context)
            raise DeliveryFailed(
                f"no permission to post in channel {job.chat.chat_id}: {exc.text}", retry=False
            ) from exc
        except discord.HTTPException as exc:
            # 429 and 5xx pass; any other refusal would be refused again.
            transient = exc.status == 429 or exc.status >= 500
            raise DeliveryFailed(f"Discord refused the post: {exc}", retry=transient) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"Discord is unreachable: {exc!r}", retry=True) from exc

    async def _report_forbidden(self, job: Job, context: InteractionContext | None) -> None:
        note = (
            "⚠️ Your video is ready, but I am not allowed to post in that channel (I need View Channel, "
            "Send Messages, Attach Files and Embed Links). Ask a server admin to let me post there."
        )
        try:
            if context is not None:
                await self._edit_original(context, note)
            else:
                channel = await self._client.create_dm(discord.Object(int(job.user.user_id)))
                await channel.send(note)
        except discord.HTTPException as exc:
            log.warning("could not tell discord:%s that the channel is closed to the bot: %s", job.user.user_id, exc)

    def _live_context(self, job: Job) -> InteractionContext | None:
        context = InteractionContext.from_context(job.requester.context)
        return context if context is not None and context.is_live(self._clock()) else None

    def _webhook(self, context: InteractionContext) -> discord.Webhook:
        return discord.Webhook.partial(context.application_id, context.token, client=self._client)

    def _channel(self, job: Job) -> discord.PartialMessageable:
        chat = job.chat
        return self._client.get_partial_messageable(
            int(chat.thread_id or chat.chat_id), guild_id=int(chat.group_id) if chat.group_id else None
        )

    async def _edit_original(
        self, context: InteractionContext, text: str, *, view: discord.ui.View | None = None
    ) -> None:
        """Edit the progress message; without a `view` its ✖️ Cancel button goes (the outcome is there)."""
        if context.original_message_id is not None:
            await self._webhook(context).edit_message(context.original_message_id, content=text, view=view)

    async def _edit_original_if_there(
        self, context: InteractionContext, text: str, *, view: discord.ui.View | None = None
    ) -> None:
        try:
            await self._edit_original(context, text, view=view)
        except discord.NotFound:  # the user dismissed the ephemeral progress message: nothing to update
            pass


def post_nonce(what: str, job: Job) -> str:
    """The nonce of the channel post of `what` ("video", "failed") for `job`: the same on every
    try, so Discord answers a repeat within its nonce window with the first message.

    Job ids are 8 characters; a longer one (never made by this bot) is hashed to fit."""
    nonce = f"{what}-{job.id}"
    if len(nonce) > NONCE_LIMIT:
        nonce = f"{what}-{hashlib.sha256(job.id.encode()).hexdigest()}"[:NONCE_LIMIT]
    return nonce


def _mention(job: Job) -> str:
    return f"<@{job.user.user_id}>"


def _only(job: Job) -> discord.AllowedMentions:
    """Ping the requester and nobody else (prompts may contain @everyone)."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(job.user.user_id))])


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
