"""PixVerseClient: its own logic against httpx.MockTransport, then every call over real HTTP
against the project's sandbox (bot.sandbox)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.bootstrap import serving_http
from bot.sandbox import Sandbox
from bot.upstream import errors as ue
from bot.upstream import retry
from bot.upstream.client import PixVerseClient, build_request, parse_callback
from bot.upstream.models import (
    AccountConfigRequest,
    CreateVideoRequest,
    ExtendRequest,
    UpscaleRequest,
    Video,
    account_email_of,
)

TOKEN = "tok-SECRET-0123456789"
VIDEO_ID = "user:1-pixverse:alice@sandbox.local-video:7"
Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps:
    """A `sleep` that does not wait but remembers how long it was asked to (and may act)."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep:
            self.on_sleep()


class ScriptedUpstream:
    """A scripted upstream for MockTransport: answers in turn, records requests."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method in (None, r.method)]


def mock_client(upstream: ScriptedUpstream, sleeps: Sleeps | None = None) -> PixVerseClient:
    return PixVerseClient(
        "http://127.0.0.1:9", SecretStr(TOKEN), transport=httpx.MockTransport(upstream), sleep=sleeps or Sleeps()
    )


def error(status: int, text: str) -> httpx.Response:
    return httpx.Response(status, json={"error": text, "code": status})


def ok(body: object) -> httpx.Response:
    return httpx.Response(200, json=body)


def lost() -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError("Server disconnected without sending a response.")


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"prompt": "x" * 2049}, "prompt", "prompt: must be at most 2048 characters (got 2049)"),
        ({"seed": 0}, "seed", "seed: must be from 1 to 2147483647 (got 0)"),
        ({"duration": 11}, "duration", "duration: must be from 1 to 10 (got 11)"),
        ({"quality": "4k"}, "quality", "quality: must be one of '360p', '540p', '720p' or '1080p' (got '4k')"),
        ({"duration": 9, "quality": "1080p"}, "duration", "1080p allows at most 8 seconds"),
        ({"audio": True, "model": "v5"}, "audio", "audio is only available on models v5.5, v5.6, not v5"),
        ({"maxJobs": 9}, "maxJobs", "maxJobs: must be from 1 to 8 (got 9)"),
        ({"replyUrl": "u" * 1025}, "replyUrl", "replyUrl: must be at most 1024 characters (got 1025)"),
        ({"colour": "red"}, "colour", "colour: is not an option here"),
    ],
)
def test_build_request_names_the_field_and_what_it_allows(fields: dict, field: str, message: str) -> None:
    with pytest.raises(ue.RequestInvalid) as caught:
        build_request(CreateVideoRequest, **fields)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_build_request_returns_the_model() -> None:
    request = build_request(CreateVideoRequest, prompt="a fox", model="v5.5", seed=42)
    assert request.payload() == {"prompt": "a fox", "model": "v5.5", "seed": 42}


async def test_a_bad_request_never_reaches_the_network() -> None:
    upstream = ScriptedUpstream(AssertionError("a bad request reached the network"))
    tampered = CreateVideoRequest(prompt="a fox", seed=5)
    tampered.seed = 0  # pydantic does not validate assignments: the client must
    constructed = ExtendRequest.model_construct(video_id=VIDEO_ID, duration=11)
    calls = [
        lambda c: c.create_video(tampered),
        lambda c: c.extend_video(constructed),
        lambda c: c.upscale_video(UpscaleRequest.model_construct(video_id="")),
        lambda c: c.configure_account(AccountConfigRequest.model_construct(email="a@b.c", password="pw", maxJobs=0)),
        lambda c: c.get_video(""),
        lambda c: c.delete_scheduled(""),
        lambda c: c.list_videos(limit=0),
        lambda c: c.upload_file(b"", "image/png"),
        lambda c: c.upload_file(b"GIF89a", "image/bmp"),
    ]
    async with mock_client(upstream) as client:
        for call in calls:
            with pytest.raises(ue.RequestInvalid):
                await call(client)
    assert upstream.requests == []


# ------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("status", "text", "error_class"),
    [
        (400, "prompt is required", ue.BadRequest),
        (401, "Unauthorized", ue.Unauthorized),
        (404, "Configuration not found", ue.NotFound),
        (412, "All Credits have been used up.", ue.InsufficientCredits),
        (422, "Your prompt has triggered our AI moderator", ue.Moderated),
        (429, "All configured accounts are running at maximum capacity.", ue.AccountsAtCapacity),
        (429, "Reached the limit for concurrent generations.", ue.ConcurrencyLimit),
        (596, "Your PixVerse account has pending error.", ue.AccountNeedsAttention),
    ],
)
async def test_error_statuses_map_to_classes_and_are_not_retried(
    status: int, text: str, error_class: type[ue.UpstreamError]
) -> None:
    upstream, sleeps = ScriptedUpstream(error(status, text)), Sleeps()
    async with mock_client(upstream, sleeps) as client:
        with pytest.raises(error_class) as read_error:
            await client.account("alice@sandbox.local")
        with pytest.raises(error_class):
            await client.create_video(CreateVideoRequest(prompt="a fox", replyRef="job-1"))
    assert read_error.value.status == status and read_error.value.detail == text
    assert len(upstream.requests) == 2 and sleeps.delays == []


async def test_a_non_json_success_is_an_invalid_response() -> None:
    async with mock_client(ScriptedUpstream(httpx.Response(200, text="<html>gateway</html>"))) as client:
        with pytest.raises(ue.InvalidResponse):
            await client.features()


async def test_get_video_answers_none_while_processing() -> None:
    upstream = ScriptedUpstream(error(404, "The original video has been deleted"))
    async with mock_client(upstream) as client:
        assert await client.get_video(VIDEO_ID) is None
    assert upstream.paths() == [f"/v2/pixverse/videos/{VIDEO_ID}"]


# ------------------------------------------------------------------ retries


async def test_reads_retry_server_errors_with_capped_jittered_backoff() -> None:
    upstream = ScriptedUpstream(error(502, "bad gateway"), error(503, "busy"), ok({"credit_daily": 3}))
    sleeps = Sleeps()
    async with mock_client(upstream, sleeps) as client:
        features = await client.features(email="alice@sandbox.local")
    assert features.credits_left == 3
    assert len(upstream.requests) == 3
    assert len(sleeps.delays) == 2
    for number, delay in enumerate(sleeps.delays, start=1):
        assert 0 <= delay <= retry.BACKOFF_BASE_SECONDS * 2 ** (number - 1)


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (error(500, "boom"), ue.ServerError),
        (httpx.ReadTimeout("read timed out"), ue.Timeout),
        (lost(), ue.TransportError),
        (httpx.ConnectError("connection refused"), ue.RequestNotSent),
    ],
)
async def test_reads_give_up_after_max_attempts(
    failure: httpx.Response | Exception, error_class: type[ue.UpstreamError]
) -> None:
    upstream, sleeps = ScriptedUpstream(failure), Sleeps()
    async with mock_client(upstream, sleeps) as client:
        with pytest.raises(error_class):
            await client.scheduler()
    assert len(upstream.requests) == retry.MAX_ATTEMPTS
    assert len(sleeps.delays) == retry.MAX_ATTEMPTS - 1


async def test_deletes_are_retried_like_reads() -> None:
    upstream = ScriptedUpstream(httpx.ReadTimeout("slow"), httpx.Response(204))
    async with mock_client(upstream) as client:
        await client.delete_scheduled(VIDEO_ID)
    assert upstream.paths("DELETE") == [f"/v2/pixverse/scheduler/{VIDEO_ID}"] * 2


def test_backoff_doubles_up_to_the_cap() -> None:
    ceilings = [retry.backoff_seconds(n, rng=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert retry.backoff_seconds(3, rng=lambda: 0.0) == 0.0


async def test_a_write_that_could_not_connect_is_sent_again() -> None:
    upstream = ScriptedUpstream(httpx.ConnectError("refused"), ok({"video_id": VIDEO_ID}))
    async with mock_client(upstream) as client:
        created = await client.create_video(CreateVideoRequest(prompt="a fox"))
    assert created.id == VIDEO_ID
    assert upstream.paths("POST") == ["/v2/pixverse/videos/create"] * 2


async def test_a_write_that_never_connected_is_not_looked_up() -> None:
    upstream, sleeps = ScriptedUpstream(httpx.ConnectError("refused")), Sleeps()
    async with mock_client(upstream, sleeps) as client:
        with pytest.raises(ue.RequestNotSent):
            await client.create_video(CreateVideoRequest(prompt="a fox", replyRef="job-1"))
    assert upstream.paths("GET") == []


@pytest.mark.parametrize("failure", [error(500, "boom"), httpx.ReadTimeout("slow"), lost()])
async def test_a_lost_write_without_reply_ref_is_not_resent(failure: httpx.Response | Exception) -> None:
    upstream = ScriptedUpstream(failure)
    async with mock_client(upstream) as client:
        with pytest.raises(ue.OutcomeUnknown) as caught:
            await client.upscale_video(UpscaleRequest(video_id=VIDEO_ID))
    assert caught.value.reply_ref is None
    assert [r.method for r in upstream.requests] == ["POST"]


def scripted_lookup(scheduler: list[dict], videos: list[dict]) -> Handler:
    """An upstream whose writes are lost and whose reads answer from the given state."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/pixverse/")
        if request.method == "POST":
            raise httpx.ReadTimeout("the answer never came")
        if path == "scheduler/":
            return ok(scheduler)
        if path == "accounts":
            return ok({"alice@sandbox.local": {"email": "alice@sandbox.local", "maxJobs": 5}})
        if path == "videos/":
            offset = int(request.url.params["offset"])
            return ok({"data": videos[offset : offset + 40], "next_offset": offset + 40, "total": len(videos)})
        raise AssertionError(f"unexpected {request.method} {path}")

    return answer


def listed_video(number: int, *, created: datetime, **fields: object) -> dict:
    return {
        "video_id": f"user:1-pixverse:alice@sandbox.local-video:{number}",
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "video_status_name": "GENERATING",
        "video_status_final": False,
        **fields,
    }


async def test_a_lost_create_is_found_in_the_scheduler_by_reply_ref() -> None:
    running = [{"videoId": VIDEO_ID, "replyRef": "job-1"}, {"videoId": "other", "replyRef": "job-0"}]
    upstream = ScriptedUpstream(scripted_lookup(running, []))
    async with mock_client(upstream) as client:
        created = await client.create_video(CreateVideoRequest(prompt="a fox", replyRef="job-1"))
    assert created.id == VIDEO_ID
    assert upstream.paths("POST") == ["/v2/pixverse/videos/create"]


async def test_a_lost_extend_is_found_in_the_listing_by_reply_ref() -> None:
    now = datetime.now(UTC)
    videos = [listed_video(n, created=now, replyRef=f"job-{n}") for n in range(60, 0, -1)]
    upstream = ScriptedUpstream(scripted_lookup([], videos))
    async with mock_client(upstream) as client:
        created = await client.extend_video(
            ExtendRequest(video_id=VIDEO_ID, replyRef="job-3", email="alice@sandbox.local")
        )
    assert created.id.endswith("-video:3")
    assert upstream.paths("POST") == ["/v2/pixverse/videos/extend"]
    assert "/v2/pixverse/accounts" not in upstream.paths()  # the request named its account


async def test_a_lost_create_is_matched_on_prompt_and_seed_when_listings_omit_reply_ref() -> None:
    now = datetime.now(UTC)
    other_seed = listed_video(9, created=now, prompt="a fox", seed=111)
    ours = listed_video(8, created=now, prompt="a fox", seed=42)
    day_old_twin = listed_video(2, created=now - timedelta(days=1), prompt="a fox", seed=42)
    request = CreateVideoRequest(prompt="a fox", seed=42, replyRef="job-1")
    async with mock_client(ScriptedUpstream(scripted_lookup([], [other_seed, ours, day_old_twin]))) as client:
        assert (await client.create_video(request)).id == ours["video_id"]
        # Without a seed a match would be a guess: the outcome stays unknown.
        with pytest.raises(ue.OutcomeUnknown):
            await client.create_video(CreateVideoRequest(prompt="a fox", replyRef="job-2"))
    async with mock_client(ScriptedUpstream(scripted_lookup([], [other_seed, day_old_twin]))) as client:
        with pytest.raises(ue.OutcomeUnknown):  # made before the request was sent: not ours
            await client.create_video(request)


async def test_a_lost_write_not_found_raises_outcome_unknown_after_looking_again() -> None:
    now = datetime.now(UTC)
    old = [listed_video(1, created=now - timedelta(hours=1), replyRef="job-0")]
    upstream, sleeps = ScriptedUpstream(scripted_lookup([], old)), Sleeps()
    async with mock_client(upstream, sleeps) as client:
        with pytest.raises(ue.OutcomeUnknown) as caught:
            await client.create_video(CreateVideoRequest(prompt="a fox", replyRef="job-1"))
    assert caught.value.reply_ref == "job-1"
    assert isinstance(caught.value, ue.TransportError)
    assert upstream.paths("POST") == ["/v2/pixverse/videos/create"]
    assert upstream.paths("GET").count("/v2/pixverse/scheduler/") == len(retry.SUBMIT_LOOKUP_PAUSES_SECONDS)
    assert sleeps.delays == [p for p in retry.SUBMIT_LOOKUP_PAUSES_SECONDS if p]


# ------------------------------------------------------------------ downloads and callbacks


def media(body: bytes, *, declare_length: bool = True) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers  # the token is not the CDN's business
        if declare_length:
            return httpx.Response(200, content=body, headers={"Content-Type": "video/mp4"})

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size shows only while streaming
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        return httpx.Response(200, content=chunks(), headers={"Content-Type": "video/mp4"})

    return answer


@pytest.mark.parametrize("declare_length", [True, False])
async def test_download_enforces_max_bytes_and_leaves_no_file(tmp_path: Path, declare_length: bool) -> None:
    body = bytes(range(256)) * 40  # 10 240 bytes
    fits, too_large = tmp_path / "fits.mp4", tmp_path / "too-large.mp4"
    async with mock_client(ScriptedUpstream(media(body, declare_length=declare_length))) as client:
        assert await client.download("http://127.0.0.1:9/media/v.mp4?sig=1", fits, max_bytes=len(body)) == len(body)
        with pytest.raises(ue.TooLarge) as caught:
            await client.download("http://127.0.0.1:9/media/v.mp4", too_large, max_bytes=len(body) - 1)
    assert fits.read_bytes() == body
    assert not too_large.exists()
    assert caught.value.max_bytes == len(body) - 1
    assert caught.value.size == len(body) if declare_length else caught.value.size > len(body) - 1
    assert ("declared" in caught.value.detail) is declare_length


async def test_download_retries_a_broken_stream_from_the_start(tmp_path: Path) -> None:
    body = b"\x00" * 5000
    upstream = ScriptedUpstream(httpx.ReadError("reset"), media(body))
    async with mock_client(upstream) as client:
        assert await client.download("http://127.0.0.1:9/media/v.mp4", tmp_path / "v.mp4", max_bytes=10_000) == 5000


def test_parse_callback_accepts_reply_ref_top_level_or_nested() -> None:
    video = {"video_id": VIDEO_ID, "video_status_name": "COMPLETED", "video_status_final": True, "url": "u"}
    top = parse_callback({**video, "replyRef": "job-1"})
    nested = parse_callback({"response": {**video, "replyRef": "job-2"}})
    assert (top.replyRef, top.succeeded) == ("job-1", True)
    assert (nested.replyRef, nested.video_id, nested.succeeded) == ("job-2", VIDEO_ID, True)
    with pytest.raises(ue.InvalidResponse):
        parse_callback([video])  # type: ignore[arg-type]


# ------------------------------------------------------------------ the token stays secret


def assert_no_token(*texts: object) -> None:
    for text in texts:
        assert TOKEN not in str(text)


async def test_the_token_never_leaks_into_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    def echo_credentials(request: httpx.Request) -> httpx.Response:
        return error(401, f"bad credentials: {request.headers['Authorization']}")

    caplog.set_level(logging.DEBUG)
    upstream = ScriptedUpstream(echo_credentials, error(503, json.dumps({"auth": f"Bearer {TOKEN}"})))
    async with mock_client(upstream) as client:
        with pytest.raises(ue.Unauthorized) as unauthorized:
            await client.voices()
        with pytest.raises(ue.OutcomeUnknown) as unknown:
            await client.create_video(CreateVideoRequest(prompt="a fox"))
        assert_no_token(repr(client), str(client))
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent…
    for caught in (unauthorized.value, unknown.value):
        assert_no_token(str(caught), repr(caught), caught.detail, caught.args)
    assert "[redacted]" in unauthorized.value.detail
    assert_no_token(*(record.getMessage() for record in caplog.records))
    assert any("GET videos/voices/ -> 401" in record.getMessage() for record in caplog.records)


# ================================================================== over HTTP, against the sandbox

ALICE, BOB = "alice@sandbox.local", "bob@sandbox.local"
# A 1×1 PNG: the smallest real image to upload.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.05


def connect(sandbox: Sandbox, *, token: str | None = None, sleeps: Sleeps | None = None) -> PixVerseClient:
    return PixVerseClient(
        sandbox.base_url, SecretStr(token or sandbox.config.token), timeout=5.0, sleep=sleeps or Sleeps()
    )


@pytest.fixture
async def pixverse(sandbox: Sandbox) -> AsyncIterator[PixVerseClient]:
    async with connect(sandbox) as client:
        yield client


async def finished(client: PixVerseClient, video_id: str) -> Video:
    """The video once final (GET videos/{id} answers 404 → None until then)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while (video := await client.get_video(video_id)) is None:
        assert loop.time() < deadline, f"{video_id} never became final"
        await asyncio.sleep(POLL_SECONDS)
    return video


async def create(client: PixVerseClient, **fields: object) -> str:
    request = build_request(CreateVideoRequest, **({"email": ALICE, "prompt": "a fox in the snow"} | fields))
    return (await client.create_video(request)).id


def slow_generations(sandbox: Sandbox) -> None:
    # Long enough that a video is certainly still generating while a test looks at it;
    # tests that need it finished call `sandbox.complete_now`.
    sandbox.config.generation_seconds = 30.0


async def test_reads_of_accounts_catalog_and_capacity(pixverse: PixVerseClient) -> None:
    assert set(await pixverse.accounts()) == {ALICE, BOB}
    assert (await pixverse.account(ALICE)).maxJobs == 5
    assert (await pixverse.features(email=ALICE)).credits_left == 100_000
    effects = await pixverse.effects(email=ALICE)
    assert effects.items and all(effect.template_id for effect in effects.items)
    assert [voice.display_name for voice in (await pixverse.voices(email=ALICE)).tts_list][:2] == ["Emily", "James"]
    availability = await pixverse.scheduler_available()
    assert {a.email: a.available for a in availability.available} == {ALICE: 5, BOB: 5}
    assert availability.executing == [] and await pixverse.scheduler() == []


async def test_upload_create_follow_find_and_download_a_video(
    sandbox: Sandbox, pixverse: PixVerseClient, tmp_path: Path
) -> None:
    slow_generations(sandbox)
    uploaded = await pixverse.upload_file(PNG, "image/png", email=ALICE)
    assert uploaded.reference_path.startswith("upload/")
    video_id = await create(pixverse, first_frame_path=uploaded.reference_path, seed=42, replyRef="job-1")
    assert account_email_of(video_id) == ALICE

    assert await pixverse.get_video(video_id) is None  # generating: the upstream's 404 is "not ready"
    [running] = await pixverse.scheduler()
    assert (running.video_id, running.replyRef) == (video_id, "job-1")
    [listed] = (await pixverse.list_videos(email=ALICE)).data
    assert (listed.video_id, listed.is_finished) == (video_id, False)
    assert await pixverse.find_submitted("job-1", email=ALICE) == video_id
    assert await pixverse.find_submitted("job-2") is None

    sandbox.complete_now(video_id)
    video = await finished(pixverse, video_id)
    assert video.succeeded and (video.replyRef, video.seed) == ("job-1", 42)
    destination = tmp_path / "fox.mp4"
    size = await pixverse.download(video.url or "", destination, max_bytes=50_000_000)
    assert size == destination.stat().st_size > 0
    with av.open(str(destination)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


async def test_upscale_extend_and_delete(pixverse: PixVerseClient) -> None:
    source = await finished(pixverse, await create(pixverse, duration=5))
    assert source.video_id
    upscaled = await pixverse.upscale_video(UpscaleRequest(video_id=source.video_id, replyRef="job-up"))
    extended = await pixverse.extend_video(
        ExtendRequest(video_id=source.video_id, prompt="the fox runs", duration=3, replyRef="job-ext")
    )
    bigger, longer = await finished(pixverse, upscaled.id), await finished(pixverse, extended.id)
    assert (bigger.output_width or 0) > (source.output_width or 0) and bigger.replyRef == "job-up"
    assert longer.video_duration == 8 and longer.replyRef == "job-ext"

    await pixverse.delete_video(upscaled.id)
    assert await pixverse.get_video(upscaled.id) is None
    assert upscaled.id not in {video.video_id for video in (await pixverse.list_videos(email=ALICE)).data}


async def test_delete_scheduled_stops_tracking_a_running_job(sandbox: Sandbox, pixverse: PixVerseClient) -> None:
    slow_generations(sandbox)
    video_id = await create(pixverse)
    await pixverse.delete_scheduled(video_id)
    assert await pixverse.scheduler() == []
    with pytest.raises(ue.NotFound):
        await pixverse.delete_scheduled(video_id)


async def test_configure_and_delete_an_account(pixverse: PixVerseClient) -> None:
    carol = "carol@sandbox.local"
    configured = await pixverse.configure_account(AccountConfigRequest(email=carol, password="pw", maxJobs=2))
    assert (configured.email, configured.maxJobs) == (carol, 2)
    assert (await pixverse.account(carol)).maxJobs == 2 and carol in await pixverse.accounts()
    await pixverse.delete_account(carol)
    with pytest.raises(ue.NotFound):
        await pixverse.account(carol)
    assert carol not in await pixverse.accounts()


# ------------------------------------------------------------------ every documented error, over HTTP


async def test_a_wrong_token_is_unauthorized_and_writes_are_not_resent(sandbox: Sandbox) -> None:
    async with connect(sandbox, token="wrong-token") as stranger:
        with pytest.raises(ue.Unauthorized):
            await stranger.features(email=ALICE)
        with pytest.raises(ue.Unauthorized):
            await create(stranger, replyRef="job-1")
    assert sandbox.count("GET", "/v2/pixverse/features") == 1
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1


async def test_the_servers_own_400_names_the_field(pixverse: PixVerseClient) -> None:
    # Locally valid, refused by the server: the image was never uploaded, the account is unknown.
    with pytest.raises(ue.BadRequest) as never_uploaded:
        await create(pixverse, first_frame_path="upload/never-uploaded.png")
    assert "first_frame_path" in str(never_uploaded.value)
    with pytest.raises(ue.BadRequest) as unknown_account:
        await pixverse.list_videos(email="nobody@sandbox.local")
    assert "email" in unknown_account.value.detail


async def test_not_found(pixverse: PixVerseClient) -> None:
    missing = "user:1-pixverse:alice@sandbox.local-video:999"
    assert await pixverse.get_video(missing) is None
    for call in (pixverse.delete_video(missing), pixverse.delete_scheduled(missing), pixverse.account("x@y.z")):
        with pytest.raises(ue.NotFound):
            await call


async def test_out_of_credits_and_moderation(sandbox: Sandbox, pixverse: PixVerseClient) -> None:
    with pytest.raises(ue.Moderated):
        await create(pixverse, prompt="a forbidden fox")
    alice = sandbox.config.account(ALICE)
    assert alice is not None
    alice.credits = 0
    with pytest.raises(ue.InsufficientCredits):
        await create(pixverse)
    assert (await pixverse.list_videos(email=ALICE)).total == 0


async def test_both_kinds_of_busy_are_429_and_never_retried(sandbox: Sandbox, pixverse: PixVerseClient) -> None:
    slow_generations(sandbox)
    for account in sandbox.config.accounts:
        account.max_jobs = 1
    await create(pixverse, email=ALICE)
    with pytest.raises(ue.AccountsAtCapacity) as alice_busy:
        await create(pixverse, email=ALICE)
    await create(pixverse, email=BOB)
    with pytest.raises(ue.AccountsAtCapacity) as all_busy:
        await create(pixverse, email=None)
    assert "busy" in alice_busy.value.detail and "All configured accounts" in all_busy.value.detail

    bob = sandbox.config.account(BOB)
    assert bob is not None
    bob.max_jobs, bob.concurrency_limit = 5, 1
    with pytest.raises(ue.ConcurrencyLimit):
        await create(pixverse, email=BOB)
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 5


async def test_an_account_needing_attention_is_596_until_reconfigured(
    sandbox: Sandbox, pixverse: PixVerseClient
) -> None:
    alice = sandbox.config.account(ALICE)
    assert alice is not None
    alice.needs_attention = True
    with pytest.raises(ue.AccountNeedsAttention):
        await create(pixverse, replyRef="job-1")
    assert sandbox.count("GET", "/v2/pixverse/scheduler") == 0  # a definite answer: nothing to look up
    await pixverse.configure_account(AccountConfigRequest(email=ALICE, password="pw", maxJobs=5))
    assert await create(pixverse)


async def test_reads_ride_out_server_errors(sandbox: Sandbox) -> None:
    def heal() -> None:
        sandbox.config.error_rate_5xx = 0.0

    sandbox.config.error_rate_5xx = 1.0
    async with connect(sandbox) as failing:
        with pytest.raises(ue.ServerError):
            await failing.features(email=ALICE)
    assert sandbox.count("GET", "/v2/pixverse/features") == retry.MAX_ATTEMPTS

    async with connect(sandbox, sleeps=Sleeps(on_sleep=heal)) as healing:
        assert (await healing.features(email=ALICE)).credits_left == 100_000
    assert sandbox.count("GET", "/v2/pixverse/features") == retry.MAX_ATTEMPTS + 2


async def test_a_write_answered_5xx_is_looked_up_not_resent(sandbox: Sandbox) -> None:
    def heal() -> None:
        sandbox.config.error_rate_5xx = 0.0

    sandbox.config.error_rate_5xx = 1.0
    async with connect(sandbox, sleeps=Sleeps(on_sleep=heal)) as client:
        with pytest.raises(ue.OutcomeUnknown) as caught:
            await create(client, replyRef="job-1")
        assert caught.value.status in {500, 502, 503} and caught.value.reply_ref == "job-1"
        assert (await client.list_videos(email=ALICE)).total == 0  # the 5xx came before anything was done
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1


# ------------------------------------------------------------------ lost answers: one request, one video


async def total_videos(client: PixVerseClient) -> int:
    return sum([(await client.list_videos(email=email)).total or 0 for email in (ALICE, BOB)])


async def test_a_create_whose_answer_is_lost_is_found_and_runs_once(sandbox: Sandbox, pixverse: PixVerseClient) -> None:
    sandbox.config.drop_write_responses = 1
    video_id = await create(pixverse, replyRef="job-1", seed=7)
    assert sandbox.config.drop_write_responses == 0  # the answer really was dropped
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1
    [only] = (await pixverse.list_videos(email=ALICE)).data
    assert (only.video_id, only.replyRef) == (video_id, "job-1")
    assert await total_videos(pixverse) == 1


async def test_a_lost_off_peak_create_on_any_account_is_found_in_the_listings(
    sandbox: Sandbox, pixverse: PixVerseClient
) -> None:
    # Off-peak jobs are not in GET scheduler and the request names no account:
    # only the listings of every account can tell.
    sandbox.config.drop_write_responses = 1
    video_id = await create(pixverse, email=None, off_peak_mode=True, replyRef="job-1")
    assert sandbox.count("GET", "/v2/pixverse/videos") >= 1
    assert sandbox.count("POST", "/v2/pixverse/videos/create") == 1
    assert await total_videos(pixverse) == 1
    assert (await pixverse.list_videos(email=account_email_of(video_id))).data[0].video_id == video_id


async def test_lost_upscale_and_extend_answers_are_found_and_run_once(
    sandbox: Sandbox, pixverse: PixVerseClient
) -> None:
    source = await finished(pixverse, await create(pixverse))
    assert source.video_id
    sandbox.config.drop_write_responses = 2
    upscaled = await pixverse.upscale_video(UpscaleRequest(video_id=source.video_id, replyRef="job-up"))
    extended = await pixverse.extend_video(ExtendRequest(video_id=source.video_id, replyRef="job-ext"))
    assert sandbox.config.drop_write_responses == 0
    assert sandbox.count("POST", "/v2/pixverse/videos/upscale") == 1
    assert sandbox.count("POST", "/v2/pixverse/videos/extend") == 1
    listed = {video.replyRef: video.video_id for video in (await pixverse.list_videos(email=ALICE)).data}
    assert listed == {"job-up": upscaled.id, "job-ext": extended.id, None: source.video_id}


# ------------------------------------------------------------------ downloads, callbacks, secrets


async def test_download_refuses_a_video_over_max_bytes(
    sandbox: Sandbox, pixverse: PixVerseClient, tmp_path: Path
) -> None:
    sandbox.config.video_pad_bytes = 300_000
    video = await finished(pixverse, await create(pixverse))
    destination = tmp_path / "big.mp4"
    with pytest.raises(ue.TooLarge) as caught:
        await pixverse.download(video.url or "", destination, max_bytes=100_000)
    assert not destination.exists() and (caught.value.size or 0) >= 300_000
    assert await pixverse.download(video.url or "", destination, max_bytes=1_000_000) >= 300_000


@pytest.fixture
async def callbacks() -> AsyncIterator[tuple[str, asyncio.Queue[dict]]]:
    """A replyUrl endpoint on loopback: (its url, the bodies it received)."""
    received: asyncio.Queue[dict] = asyncio.Queue()

    async def keep(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", keep)
    async with serving_http(app, "127.0.0.1", 0) as base_url:
        yield f"{base_url}/hook", received


async def test_callbacks_parse_with_reply_ref_top_level_or_nested(
    pixverse: PixVerseClient, callbacks: tuple[str, asyncio.Queue[dict]]
) -> None:
    url, received = callbacks
    video_id = await create(pixverse, replyUrl=url, replyRef="job-1")
    while not (video := parse_callback(body := await asyncio.wait_for(received.get(), DEADLINE_SECONDS))).is_finished:
        assert (video.video_id, video.replyRef) == (video_id, "job-1")
    assert video.succeeded and (video.video_id, video.replyRef) == (video_id, "job-1")
    # useapi.net may also wrap the video (and its replyRef) under `response`.
    nested = parse_callback({"response": body})
    assert (nested.video_id, nested.replyRef, nested.succeeded) == (video_id, "job-1", True)


async def test_tokens_never_appear_in_logs_errors_or_repr(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-that-must-stay-secret"
    failures: list[ue.UpstreamError] = []
    async with connect(sandbox) as client, connect(sandbox, token=wrong) as stranger:
        assert await finished(client, await create(client, replyRef="job-1"))
        sandbox.config.error_rate_5xx = 1.0
        for call in (stranger.features(email=ALICE), client.scheduler(), create(client, replyRef="job-2")):
            with pytest.raises(ue.UpstreamError) as caught:
                await call
            failures.append(caught.value)
        shown = [repr(client), str(client), repr(stranger)]
    shown += [text for error in failures for text in (str(error), repr(error), error.detail)]
    shown += [record.getMessage() for record in caplog.records]
    assert any("GET scheduler/ -> 50" in text for text in shown)  # the logs are there…
    for secret in (sandbox.config.token, wrong):
        assert not [text for text in shown if secret in text]  # …without a token
