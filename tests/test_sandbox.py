"""The PixVerse sandbox, driven over real HTTP the way useapi.net's docs describe it.

These tests use a raw httpx client on purpose: they check the wire contract itself
(statuses, texts, shapes that parse into bot.upstream.models), not the bot's client.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import av
import httpx
import pytest
from aiohttp import web

from bot.bootstrap import serving_http
from bot.sandbox import Sandbox, SandboxConfig, serve
from bot.sandbox.errors import (
    ACCOUNT_BUSY,
    ACCOUNT_NEEDS_ATTENTION,
    ALL_ACCOUNTS_BUSY,
    CONCURRENCY_LIMIT,
    OUT_OF_CREDITS,
    PROMPT_MODERATED,
)
from bot.upstream.errors import (
    AccountNeedsAttention,
    AccountsAtCapacity,
    ConcurrencyLimit,
    InsufficientCredits,
    Moderated,
    NotFound,
    error_from_response,
)
from bot.upstream.models import (
    EffectPage,
    Features,
    SchedulerAvailability,
    SchedulerJob,
    UploadedFile,
    Video,
    VideoCreated,
    VideoPage,
    VoiceList,
)

ALICE = "alice@sandbox.local"
BOB = "bob@sandbox.local"
DEADLINE_SECONDS = 5.0
POLL_SECONDS = 0.02
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"sandbox image" * 10

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `check` until it returns something, failing after a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while (result := await check()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
    return result


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sandbox.config.token}"}
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/", headers=headers) as client:
        yield client


async def create(api: httpx.AsyncClient, path: str = "videos/create", **body: Any) -> str:
    # A None value leaves the default out of the body.
    payload = {"email": ALICE, "prompt": "a fox in the snow"} | body
    response = await api.post(path, json={name: value for name, value in payload.items() if value is not None})
    assert response.status_code == 200, response.text
    return VideoCreated.model_validate(response.json()).id


async def final_video(api: httpx.AsyncClient, video_id: str) -> Video:
    async def fetch() -> Video | None:
        response = await api.get(f"videos/{video_id}")
        return Video.model_validate(response.json()) if response.status_code == 200 else None

    return await eventually(fetch, f"{video_id} to be final")


async def listing(api: httpx.AsyncClient, email: str = ALICE, **params: Any) -> VideoPage:
    response = await api.get("videos/", params={"email": email} | params)
    assert response.status_code == 200, response.text
    return VideoPage.model_validate(response.json())


def decode(mp4: bytes) -> tuple[int, int, int, str]:
    """(frames, width, height, codec) of an MP4."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return len(frames), frames[0].width, frames[0].height, stream.codec_context.name


async def download(url: str) -> httpx.Response:
    # Media urls are public: no Authorization header.
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(url)
    assert response.status_code == 200, response.text
    return response


async def upload(api: httpx.AsyncClient, content: bytes, content_type: str) -> httpx.Response:
    return await api.post("files/", params={"email": ALICE}, content=content, headers={"Content-Type": content_type})


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    return body["error"]


@dataclass
class Receiver:
    """A replyUrl endpoint that keeps every callback body."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def refs(self) -> list[str | None]:
        return [Video.from_callback(body).replyRef for body in self.bodies]

    async def final_for(self, reply_ref: str) -> Video:
        async def find() -> Video | None:
            videos = [Video.from_callback(body) for body in self.bodies]
            return next((v for v in videos if v.replyRef == reply_ref and v.is_finished), None)

        return await eventually(find, f"the final callback for {reply_ref}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    bodies: list[dict[str, Any]] = []

    async def keep(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", keep)
    async with serving_http(app, "127.0.0.1", 0) as base_url:
        yield Receiver(f"{base_url}/hook", bodies)


# ------------------------------------------------------------------ auth and faults


async def test_requests_without_the_right_token_are_unauthorized(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/v2/pixverse/") as client:
        missing = await client.get("accounts")
        wrong = await client.post("videos/create", json={"prompt": "x"}, headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized", "code": 401}
    assert sandbox.videos == {}


async def test_injected_server_errors_come_before_anything_is_done(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.error_rate_5xx = 1.0
    responses = [await api.post("videos/create", json={"email": ALICE, "prompt": "x"}) for _ in range(5)]
    assert {r.status_code for r in responses} <= {500, 502, 503}
    assert all(r.json()["code"] == r.status_code for r in responses)
    assert sandbox.videos == {}

    sandbox.config.error_rate_5xx = 0.0
    assert (await api.get("accounts")).status_code == 200


async def test_response_delay_slows_every_answer(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.response_delay = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await api.get("accounts")).status_code == 200
    assert loop.time() - started >= 0.2


async def test_a_dropped_write_response_still_creates_the_video(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.drop_write_responses = 1
    with pytest.raises(httpx.TransportError):
        await api.post("videos/create", json={"email": ALICE, "prompt": "lost answer", "replyRef": "job-41"})

    page = await listing(api)
    assert [(v.prompt, v.replyRef) for v in page.data] == [("lost answer", "job-41")]
    assert sandbox.config.drop_write_responses == 0
    # Only the next N writes lose their answer.
    assert await create(api, replyRef="job-42")


async def test_new_videos_can_be_listed_late(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.generation_seconds = 5.0  # still running once it is listed
    sandbox.config.new_video_listing_delay = 0.5
    video_id = await create(api, replyRef="job-43")

    # Accepted and counted against the account, but no listing shows it yet.
    assert (await listing(api)).data == []
    assert (await api.get("scheduler")).json() == []
    available = SchedulerAvailability.model_validate((await api.get("scheduler/available")).json())
    assert available.executing == []
    assert [(a.email, a.executing) for a in available.available if a.email == ALICE] == [(ALICE, 1)]

    async def listed() -> VideoPage | None:
        page = await listing(api)
        return page if page.data else None

    page = await eventually(listed, "the new video to be listed")
    assert [(v.video_id, v.replyRef) for v in page.data] == [(video_id, "job-43")]
    scheduled = [SchedulerJob.model_validate(job) for job in (await api.get("scheduler")).json()]
    assert [(j.video_id, j.replyRef) for j in scheduled] == [(video_id, "job-43")]


# ------------------------------------------------------------------ the life of a video


async def test_a_video_is_404_while_generating_then_completed_with_a_url(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    video_id = await create(api, aspect_ratio="9:16", seed=7)
    assert f"-pixverse:{ALICE}-video:" in video_id

    early = await api.get(f"videos/{video_id}")
    assert "still processing" in error_of(early, 404)

    video = await final_video(api, video_id)
    assert video.succeeded and video.video_status_name == "COMPLETED" and video.video_status == 1
    assert (video.video_id, video.prompt, video.seed, video.aspect_ratio) == (video_id, "a fox in the snow", 7, "9:16")
    assert (video.model, video.quality, video.duration, video.off_peak) == ("v5.6", "540p", 5, 0)
    assert (video.output_width, video.output_height) == (90, 160)
    assert video.created_at and video.created_at.endswith("Z")
    assert video.url and video.url.startswith(f"{sandbox.base_url}/media/videos/")
    assert sandbox.count("GET", "/v2/pixverse/videos/") >= 2


async def test_the_listing_includes_generating_videos_newest_first(api: httpx.AsyncClient) -> None:
    first = await create(api, prompt="first")
    second = await create(api, prompt="second")
    await create(api, email=BOB)

    page = await listing(api)
    assert [v.video_id for v in page.data] == [second, first]
    assert {v.video_status_name for v in page.data} == {"GENERATING"}
    assert not any(v.is_finished for v in page.data)
    assert page.total == 2

    second_page = await listing(api, limit=1, offset=1)
    assert [v.video_id for v in second_page.data] == [first]
    assert (second_page.next_offset, second_page.total) == (2, 2)

    assert "email" in error_of(await api.get("videos/"), 400)


@pytest.mark.parametrize(("aspect_ratio", "size"), [("16:9", (160, 90)), ("9:16", (90, 160)), ("1:1", (90, 90))])
async def test_the_video_is_a_playable_h264_mp4(
    api: httpx.AsyncClient, aspect_ratio: str, size: tuple[int, int]
) -> None:
    video = await final_video(api, await create(api, aspect_ratio=aspect_ratio))
    assert video.url and video.first_frame

    response = await download(video.url)
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    frames, width, height, codec = decode(response.content)
    assert frames > 0 and (width, height) == size and codec == "h264"

    thumbnail = await download(video.first_frame)
    assert thumbnail.headers["content-type"] == "image/jpeg" and thumbnail.content.startswith(b"\xff\xd8")


async def test_videos_look_like_their_request(api: httpx.AsyncClient) -> None:
    ids = [
        await create(api, prompt="a red balloon", seed=11),
        await create(api, prompt="a blue whale", seed=11),
        await create(api, prompt="a red balloon", seed=11),
    ]
    files = [(await download((await final_video(api, i)).url or "")).content for i in ids]
    assert files[0] != files[1]
    assert files[0] == files[2]


async def test_video_padding_makes_large_but_playable_files(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.video_pad_bytes = 150_000
    video = await final_video(api, await create(api))
    content = (await download(video.url or "")).content
    assert len(content) == 150_000
    assert decode(content)[0] > 0


async def test_complete_now_finishes_a_video_early(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.generation_seconds = 60
    video_id = await create(api)
    sandbox.complete_now(video_id)
    assert (await final_video(api, video_id)).succeeded


async def test_a_deleted_video_is_gone(api: httpx.AsyncClient) -> None:
    video = await final_video(api, await create(api))
    deleted = await api.delete(f"videos/{video.video_id}")
    assert deleted.status_code == 200
    assert error_of(await api.get(f"videos/{video.video_id}"), 404)
    assert (await listing(api)).data == []
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(video.url or "")).status_code == 404


# ------------------------------------------------------------------ outcomes decided by the prompt


async def test_the_moderation_word_is_refused_at_create(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    response = await api.post("videos/create", json={"email": ALICE, "prompt": "something FORBIDDEN"})
    assert error_of(response, 422) == PROMPT_MODERATED
    assert isinstance(error_from_response(422, response.json()), Moderated)
    assert (await listing(api)).data == []
    assert sandbox.config.accounts[0].credits == 100_000


@pytest.mark.parametrize(
    ("prompt", "status", "name"),
    [("a spicy taco", 7, "MODERATED"), ("the car will explode", 8, "FAILED"), ("an enigma", 42, "UNLISTED")],
)
async def test_late_moderation_and_failure_end_final_without_a_url(
    sandbox: Sandbox, api: httpx.AsyncClient, prompt: str, status: int, name: str
) -> None:
    video_id = await create(api, prompt=prompt)
    assert sandbox.config.accounts[0].credits == 100_000 - 30

    video = await final_video(api, video_id)
    assert (video.video_status, video.video_status_name, video.video_status_final) == (status, name, True)
    assert not video.url and not video.succeeded
    # Only the FAILED fault says what went wrong, in the video model's `error` field.
    assert bool(video.error) is (name == "FAILED")
    # Credits of a generation that delivered nothing are given back.
    assert sandbox.config.accounts[0].credits == 100_000


# ------------------------------------------------------------------ accounts, capacity and credits


async def test_full_accounts_answer_429_busy_with_both_texts(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    for account in sandbox.config.accounts:
        account.max_jobs = 1
    on_alice = await create(api)

    named = await api.post("videos/create", json={"email": ALICE, "prompt": "x"})
    assert error_of(named, 429) == ACCOUNT_BUSY
    assert isinstance(error_from_response(429, named.json()), AccountsAtCapacity)

    on_bob = await create(api, email=None)
    assert f"-pixverse:{BOB}-" in on_bob
    anyone = await api.post("videos/create", json={"prompt": "x"})
    assert error_of(anyone, 429) == ALL_ACCOUNTS_BUSY
    assert isinstance(error_from_response(429, anyone.json()), AccountsAtCapacity)

    capacity = SchedulerAvailability.model_validate((await api.get("scheduler/available")).json())
    assert {job.video_id for job in capacity.executing} == {on_alice, on_bob}
    assert {(a.email, a.executing, a.available) for a in capacity.available} == {(ALICE, 1, 0), (BOB, 1, 0)}

    await final_video(api, on_alice)
    assert await create(api)


async def test_pixverse_concurrency_limit_outlasts_the_scheduler(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.accounts[0].concurrency_limit = 1
    running = await create(api, replyUrl="http://127.0.0.1:9/hook", replyRef="job-1")

    scheduled = [SchedulerJob.model_validate(job) for job in (await api.get("scheduler")).json()]
    assert [(j.video_id, j.replyRef, j.replyUrl) for j in scheduled] == [(running, "job-1", "http://127.0.0.1:9/hook")]
    assert scheduled[0].elapsed == "00:00"

    refused = await api.post("videos/create", json={"email": ALICE, "prompt": "x"})
    assert error_of(refused, 429) == CONCURRENCY_LIMIT
    assert isinstance(error_from_response(429, refused.json()), ConcurrencyLimit)

    # No longer tracked by useapi.net, but PixVerse is still generating it.
    assert (await api.delete(f"scheduler/{running}")).status_code == 204
    assert (await api.get("scheduler")).json() == []
    assert "Unable to locate running video_id" in error_of(await api.delete(f"scheduler/{running}"), 404)
    assert error_of(await api.post("videos/create", json={"email": ALICE, "prompt": "x"}), 429) == CONCURRENCY_LIMIT

    await final_video(api, running)
    assert await create(api)


async def test_out_of_credits_answers_412(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    sandbox.config.accounts[0].credits = 30  # exactly one 5 s 540p video
    assert await create(api, duration=5, quality="540p")
    features = Features.model_validate((await api.get("features", params={"email": ALICE})).json())
    assert features.credits_left == 0

    refused = await api.post("videos/create", json={"email": ALICE, "prompt": "x"})
    assert error_of(refused, 412) == OUT_OF_CREDITS
    assert isinstance(error_from_response(412, refused.json()), InsufficientCredits)


async def test_an_account_needing_attention_answers_596_until_reconfigured(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    sandbox.config.accounts[0].needs_attention = True
    refused = await api.post("videos/create", json={"email": ALICE, "prompt": "x"})
    assert error_of(refused, 596) == ACCOUNT_NEEDS_ATTENTION
    assert isinstance(error_from_response(596, refused.json()), AccountNeedsAttention)

    fixed = await api.post(f"accounts/{ALICE}", json={"email": ALICE, "password": "new-secret", "maxJobs": 3})
    assert fixed.status_code == 201
    assert fixed.json()["password"] == "…secured…"
    assert await create(api)


async def test_accounts_can_be_listed_added_and_removed(sandbox: Sandbox, api: httpx.AsyncClient) -> None:
    accounts = (await api.get("accounts")).json()
    assert set(accounts) == {ALICE, BOB}
    assert {a["password"] for a in accounts.values()} == {"…secured…"}

    carol = "carol@sandbox.local"
    assert error_of(await api.get(f"accounts/{carol}"), 404)
    too_many = await api.post(f"accounts/{carol}", json={"email": carol, "password": "p", "maxJobs": 9})
    assert "maxJobs" in error_of(too_many, 400)
    added = await api.post(f"accounts/{carol}", json={"email": carol, "password": "p", "maxJobs": 2})
    assert added.status_code == 201 and added.json()["maxJobs"] == 2
    assert (await api.get(f"accounts/{carol}")).json()["email"] == carol
    assert f"-pixverse:{carol}-" in await create(api, email=carol)

    assert (await api.delete(f"accounts/{carol}")).status_code == 204
    assert error_of(await api.get(f"accounts/{carol}"), 404)


async def test_catalog_and_features_parse_into_the_models(api: httpx.AsyncClient) -> None:
    query = {"email": ALICE}
    features = Features.model_validate((await api.get("features", params=query)).json())
    assert features.credit_monthly == 100_000 and features.credits_left == 100_000
    effects = EffectPage.model_validate((await api.get("videos/effects", params=query)).json())
    assert effects.items and all(e.template_id for e in effects.items)
    voices = VoiceList.model_validate((await api.get("videos/voices/", params=query)).json())
    assert voices.tts_list and all(v.speaker_id for v in voices.tts_list)


# ------------------------------------------------------------------ uploads, upscale, extend


async def test_an_uploaded_image_round_trips_and_feeds_create(api: httpx.AsyncClient) -> None:
    response = await upload(api, PNG_BYTES, "image/png")
    assert response.status_code == 200, response.text
    uploaded = UploadedFile.model_validate(response.json())
    assert uploaded.result and uploaded.result[0].size == len(PNG_BYTES) and uploaded.result[0].err_msg == ""
    path = uploaded.reference_path
    assert path.startswith("upload/") and path.endswith(".png")

    served = await download(uploaded.result[0].url or "")
    assert served.content == PNG_BYTES and served.headers["content-type"] == "image/png"

    assert await create(api, first_frame_path=path)
    unknown = await api.post("videos/create", json={"email": ALICE, "first_frame_path": "upload/nope.png"})
    assert "first_frame_path" in error_of(unknown, 400)


async def test_uploads_need_a_documented_content_type(api: httpx.AsyncClient) -> None:
    refused = await upload(api, b"hi", "text/plain")
    assert "Content-Type" in error_of(refused, 400)

    video = await upload(api, b"\0\0\0\x18ftypmp42", "video/mp4")
    uploaded = UploadedFile.model_validate(video.json())
    assert uploaded.result is None and uploaded.path and uploaded.url


async def test_upscale_and_extend_make_new_bigger_and_longer_videos(api: httpx.AsyncClient) -> None:
    source_id = await create(api)
    early = await api.post("videos/upscale", json={"video_id": source_id})
    assert "video_id" in error_of(early, 400)
    source = await final_video(api, source_id)
    source_frames, width, height, _ = decode((await download(source.url or "")).content)

    upscaled = await final_video(api, await create(api, "videos/upscale", email=None, prompt=None, video_id=source_id))
    assert upscaled.video_id != source_id and upscaled.model_extra
    assert (upscaled.model_extra["upscaled"], upscaled.model_extra["original_video_id"]) == (1, source_id)
    frames, up_width, up_height, _ = decode((await download(upscaled.url or "")).content)
    assert (frames, up_width, up_height) == (source_frames, 2 * width, 2 * height)

    extended = await final_video(api, await create(api, "videos/extend", video_id=source_id, prompt="and then"))
    assert extended.model_extra and extended.model_extra["extended"] == 1
    assert extended.video_duration == 10
    assert decode((await download(extended.url or "")).content)[0] > source_frames

    missing = await api.post("videos/upscale", json={"video_id": f"user:1000-pixverse:{ALICE}-video:999"})
    assert error_of(missing, 404)


async def test_a_video_is_extended_and_upscaled_only_on_the_account_that_made_it(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    source_id = await create(api, email=ALICE)
    await final_video(api, source_id)

    elsewhere = await api.post("videos/extend", json={"email": BOB, "video_id": source_id, "prompt": "and then"})
    assert error_of(elsewhere, 404) == f"Video {source_id} was not found on account {BOB}"
    assert isinstance(error_from_response(404, elsewhere.json()), NotFound)
    assert [v.email for v in sandbox.videos.values()] == [ALICE]  # nothing ran, nothing was charged

    extended = await create(api, "videos/extend", email=ALICE.upper(), video_id=source_id, prompt="and then")
    # Upscale takes no email (seeds/v2/post-pixverse-videos-upscale.md): it runs where the video is.
    no_email = await api.post("videos/upscale", json={"email": BOB, "video_id": source_id})
    assert "email" in error_of(no_email, 400)
    upscaled = await create(api, "videos/upscale", email=None, prompt=None, video_id=source_id)
    assert [sandbox.videos[v].email for v in (extended, upscaled)] == [ALICE, ALICE]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # Documented, not simulated: without their own routes they met GET videos/{video_id} (405).
        ("POST", "videos/restyle"),
        # Not endpoints at all, whether or not another method has the path.
        ("POST", "videos/user:1000-pixverse:alice@sandbox.local-video:1"),
        ("PUT", "videos/create"),
        ("GET", "nothing/here"),
    ],
)
async def test_endpoints_the_sandbox_does_not_serve_answer_404_with_an_error(
    sandbox: Sandbox, api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await api.request(method, path, json={"email": ALICE, "prompt": "a fox"})
    message = error_of(response, 404)
    assert path in message and ("does not simulate" in message or "not an endpoint" in message)
    assert isinstance(error_from_response(404, response.json()), NotFound)
    assert sandbox.videos == {}


# ------------------------------------------------------------------ callbacks and off-peak


async def test_reply_url_gets_progress_then_the_final_video_with_reply_ref(
    sandbox: Sandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.config.progress_callbacks = 2
    video_id = await create(api, replyUrl=receiver.url, replyRef="chat-7/job-3")

    final = await receiver.final_for("chat-7/job-3")
    assert final.video_id == video_id and final.succeeded
    statuses = [Video.from_callback(body).video_status_name for body in receiver.bodies]
    assert statuses == ["GENERATING", "GENERATING", "COMPLETED"]
    assert receiver.refs() == ["chat-7/job-3"] * 3


async def test_an_off_peak_video_waits_queued_final_then_generates_with_the_documented_codes(
    api: httpx.AsyncClient,
) -> None:
    off_peak = await create(api, off_peak_mode=True)
    # Waiting for its hours is still processing: GET videos/{id} answers 404 although the status is final.
    assert (await api.get(f"videos/{off_peak}")).status_code == 404
    seen: list[tuple[int | None, str | None, bool | None]] = []

    async def finished() -> Video | None:
        video = next(v for v in (await listing(api)).data if v.video_id == off_peak)
        status = (video.video_status, video.video_status_name, video.video_status_final)
        if not seen or seen[-1] != status:
            seen.append(status)
        return video if video.is_finished else None

    assert (await eventually(finished, "the off-peak video to finish")).succeeded
    # 5 QUEUED final while it waits for its hours, then GENERATING (9, then 10), then 1.
    assert seen[0] == (5, "QUEUED", True) and seen[-1] == (1, "COMPLETED", True), seen
    middle = seen[1:-1]
    assert middle and set(middle) <= {(9, "GENERATING", False), (10, "GENERATING", False)}, seen
    assert middle == sorted(middle), seen


async def test_off_peak_jobs_skip_the_scheduler_and_never_call_back(
    sandbox: Sandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.config.accounts[0].max_jobs = 1
    normal = await create(api, replyUrl=receiver.url, replyRef="normal")
    # Accepted although the account is full: off-peak jobs do not count.
    off_peak = await create(api, off_peak_mode=True, replyUrl=receiver.url, replyRef="off-peak")

    assert [job["videoId"] for job in (await api.get("scheduler")).json()] == [normal]
    await receiver.final_for("normal")

    video = await final_video(api, off_peak)
    assert video.succeeded and video.off_peak == 1
    # A later job's final callback proves delivery still works; none came for off-peak.
    await create(api, replyUrl=receiver.url, replyRef="sentinel")
    await receiver.final_for("sentinel")
    assert "off-peak" not in receiver.refs()


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("videos/create", {"prompt": "x" * 2049}, "prompt"),
        ("videos/create", {"seed": 0}, "seed"),
        ("videos/create", {"seed": 2_147_483_648}, "seed"),
        ("videos/create", {"duration": 11}, "duration"),
        ("videos/create", {"duration": 9, "quality": "1080p"}, "duration"),
        ("videos/create", {"quality": "480p"}, "quality"),
        ("videos/create", {"aspect_ratio": "2:1"}, "aspect_ratio"),
        ("videos/create", {"model": "v9"}, "model"),
        ("videos/create", {"model": "v5", "audio": True}, "audio"),
        ("videos/create", {"replyUrl": "h" * 1025}, "replyUrl"),
        ("videos/create", {"replyRef": "r" * 1025}, "replyRef"),
        ("videos/create", {"maxJobs": 9}, "maxJobs"),
        ("videos/create", {"email": "nobody@sandbox.local"}, "email"),
        ("videos/upscale", {}, "video_id"),
        ("videos/extend", {"video_path": "upload/x.mp4", "model": "v5.6"}, "model"),
        ("videos/extend", {"video_path": "upload/x.mp4"}, "video_path"),
        ("videos/extend", {}, "video_id"),
    ],
)
async def test_bad_requests_answer_400_naming_the_field(
    sandbox: Sandbox, api: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    payload = body if path == "videos/upscale" else {"email": ALICE} | body
    response = await api.post(path, json=payload)
    assert field in error_of(response, 400)
    assert sandbox.videos == {}


async def test_form_bodies_are_accepted_like_json(api: httpx.AsyncClient) -> None:
    form = {"email": ALICE, "prompt": "form", "duration": "6", "audio": "true"}
    response = await api.post("videos/create", data=form)
    assert response.status_code == 200, response.text
    video = await final_video(api, VideoCreated.model_validate(response.json()).id)
    assert (video.prompt, video.duration) == ("form", 6)


# ------------------------------------------------------------------ the CLI entry point


async def test_serve_logs_its_url_and_token_and_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.sandbox")
    server = asyncio.create_task(serve(SandboxConfig(token="cli-token"), "127.0.0.1", 0))

    async def announced() -> str | None:
        found = re.search(r"listening on (\S+)/v2/pixverse/", caplog.text)
        return found.group(1) if found else None

    try:
        base_url = await eventually(announced, "the sandbox to announce its address")
        assert "cli-token" in caplog.text
        async with httpx.AsyncClient(headers={"Authorization": "Bearer cli-token"}) as client:
            assert (await client.get(f"{base_url}/v2/pixverse/accounts")).status_code == 200
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
