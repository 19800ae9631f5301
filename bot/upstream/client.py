"""`PixVerseClient`: the useapi.net PixVerse API v2 over HTTP, typed and safe to retry.

Every call takes and returns the models of `bot.upstream.models` and fails only with
the errors of `bot.upstream.errors`. Requests are validated before anything is sent.
Reads are retried on server and network failures (policy: `bot.upstream.retry`);
writes that start a paid generation are never sent twice — when their answer is
lost, the client looks the request up by its `replyRef` instead.

The API token is a `SecretStr`: it is put on each API request's header and nowhere
else (not in logs, error messages, reprs, nor on downloads from the media CDN).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import annotated_types
import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from bot.catalogue import Catalogue, shipped_catalogue
from bot.upstream import retry
from bot.upstream.errors import (
    InvalidResponse,
    NotFound,
    OutcomeUnknown,
    RequestInvalid,
    RequestNotSent,
    ServerError,
    Timeout,
    TooLarge,
    TransportError,
    UpstreamError,
    error_from_response,
)
from bot.upstream.models import (
    UPLOAD_CONTENT_TYPES,
    Account,
    AccountConfigRequest,
    CreateFramesRequest,
    CreateFusionRequest,
    CreateTransitionRequest,
    CreateVideoRequest,
    EffectPage,
    ExtendRequest,
    Features,
    LipSyncRequest,
    ModifyRequest,
    SchedulerAvailability,
    SchedulerJob,
    UploadedFile,
    UpscaleRequest,
    Video,
    VideoCreated,
    VideoPage,
    VoiceList,
    account_email_of,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/v2/pixverse/"
USER_AGENT = "pixverse-bot"
# Big enough to keep the syscall count low, small enough that memory stays flat.
DOWNLOAD_CHUNK_BYTES = 64 * 1024
_REDACTED = "[redacted]"

T = TypeVar("T")
RequestT = TypeVar("RequestT", bound=BaseModel)
Sleep = Callable[[float], Awaitable[object]]
# The requests that start a paid generation: sent at most once.
PaidRequest = (
    CreateVideoRequest
    | CreateFramesRequest
    | CreateTransitionRequest
    | CreateFusionRequest
    | UpscaleRequest
    | ExtendRequest
    | LipSyncRequest
    | ModifyRequest
)


# ------------------------------------------------------------------ validation


def build_request(request_type: type[RequestT], /, *, catalogue: Catalogue | None = None, **fields: Any) -> RequestT:
    """Build a `request_type` request from `fields`; a broken limit raises `RequestInvalid`.

    The error names the field and what it allows (range, choices, length), so
    `str(error)` can be shown to the user as is. Models are checked against `catalogue`
    (the shipped one when None).
    """
    try:
        return request_type.model_validate(fields, context={"catalogue": catalogue or shipped_catalogue()})
    except ValidationError as exc:
        # `from None`: pydantic's own text repeats every input (a password, for one).
        raise _request_invalid(request_type, exc) from None


def _revalidated(request: RequestT, catalogue: Catalogue | None = None) -> RequestT:
    # Pydantic does not validate assignments or `model_construct`, so a model may have
    # been made invalid after it was built: check it once more before it goes out.
    return build_request(type(request), catalogue=catalogue, **request.model_dump(exclude_unset=True))


def _request_invalid(model: type[BaseModel], exc: ValidationError) -> RequestInvalid:
    error = exc.errors(include_url=False)[0]
    if not error["loc"]:
        # A rule across fields (a model validator): its message already names them.
        message = error["msg"].removeprefix("Value error, ")
        first_word = message.split(" ", 1)[0]
        return RequestInvalid(first_word if first_word in model.model_fields else "request", message)
    field = str(error["loc"][0])
    return RequestInvalid(field, _problem(model, field, error))


def _problem(model: type[BaseModel], field: str, error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"is not an option here (options: {', '.join(model.model_fields)})"
    if kind == "enum":
        return f"must be one of {ctx['expected']} (got {value!r})"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"must be {_allowed_range(model, field)} (got {value})"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters (got {len(value)})"
    if kind == "string_too_short":
        return "must not be empty" if ctx["min_length"] == 1 else f"needs at least {ctx['min_length']} characters"
    message = error["msg"]  # e.g. "Input should be a valid integer"
    return message[:1].lower() + message[1:]


def _allowed_range(model: type[BaseModel], field: str) -> str:
    rules = model.model_fields[field].metadata
    low = next((rule.ge for rule in rules if isinstance(rule, annotated_types.Ge)), None)
    high = next((rule.le for rule in rules if isinstance(rule, annotated_types.Le)), None)
    if low is not None and high is not None:
        return f"from {low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _path_segment(value: str, field: str) -> str:
    # An empty id would turn `videos/{id}` into the listing `videos/`: refuse it.
    if not value:
        raise RequestInvalid(field, "must not be empty")
    # Ids look like `user:1-pixverse:a@b.c-video:2`; `:` and `@` are legal in a path
    # segment, anything else (a `/` above all) is escaped.
    return quote(value, safe=":@")


def _query(**params: object) -> dict[str, str]:
    return {name: str(value) for name, value in params.items() if value is not None}


# ------------------------------------------------------------------ responses


@cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def _parse(shape: type[T], body: object) -> T:
    key: object = shape  # a class is hashable; say so to the cache's signature
    adapter: TypeAdapter[T] = _adapter(key)
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        raise _invalid_response(getattr(shape, "__name__", str(shape)), exc) from None


def _invalid_response(what: str, exc: ValidationError) -> InvalidResponse:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return InvalidResponse(f"{what}: {where}: {first['msg']} ({exc.error_count()} problem(s))")


def _json_of(response: httpx.Response) -> object:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise InvalidResponse(f"status {response.status_code} with a body that is not JSON") from None


def parse_callback(body: object) -> Video:
    """The video a `replyUrl` callback POST describes (`replyRef` top-level or under `response`).

    Raises `InvalidResponse` when the body is not a video object.
    """
    if not isinstance(body, dict):
        raise InvalidResponse(f"callback body is a {type(body).__name__}, not an object")
    try:
        return Video.from_callback(body)
    except ValidationError as exc:
        raise _invalid_response("callback", exc) from None


def _created_at(video: Video) -> datetime | None:
    try:
        return _as_utc(datetime.fromisoformat(video.created_at or ""))
    except ValueError:
        return None


def _as_utc(moment: datetime) -> datetime:
    # A naive time is taken to be UTC, as the upstream writes its times.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _matches(video: Video, reply_ref: str, cutoff: datetime | None, prompt: str | None, seed: int | None) -> bool:
    if video.replyRef:
        return video.replyRef == reply_ref
    # The listing left replyRef out: recognise the request by its own prompt and seed,
    # and only among videos made since it was sent. Without all three the match could
    # be someone else's video, which is worse than not finding ours.
    if prompt is None or seed is None or cutoff is None:
        return False
    created = _created_at(video)
    return (
        video.seed == seed
        and (video.prompt or "").strip() == prompt.strip()
        and created is not None
        and created >= cutoff
    )


def _lookup_hints(request: PaidRequest) -> tuple[str | None, str | None, int | None]:
    """Where a generation runs (account email) and its prompt and seed, for `find_submitted`."""
    if isinstance(request, UpscaleRequest):
        # An upscale runs on the account that owns the source video and has no prompt or seed.
        return account_email_of(request.video_id), None, None
    if isinstance(request, LipSyncRequest):
        # So does a lip-sync; its prompt is the speech, not a video prompt the listing shows.
        return account_email_of(request.video_id or ""), None, None
    if isinstance(request, CreateTransitionRequest):
        # Its prompts are per transition: the listing's one prompt cannot be matched safely.
        return request.email, None, request.seed
    return request.email, request.prompt, request.seed


def _loggable_url(url: str) -> str:
    # Media URLs may carry signed query strings (or user:password@): log where, not secrets.
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


# ------------------------------------------------------------------ the client


class PixVerseClient:
    """Async client of the useapi.net PixVerse API v2 (`{base_url}/v2/pixverse/…`).

    Use it as `async with PixVerseClient(...) as client:` (or call `aclose()`): it owns
    one `httpx.AsyncClient`. `transport` replaces the network (tests); `sleep` is what
    the client waits with between retries (tests pass one that does not wait).
    """

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._api_root = base_url.rstrip("/") + API_PREFIX
        self._catalogue = catalogue  # the models requests are checked against (None: the shipped ones)
        self._token = token
        self._sleep = sleep
        # No default Authorization header: downloads go to the media CDN, which must
        # never see the token. Redirects are followed only for downloads.
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_root={self._api_root!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ---------------------------------------------------------------- files

    async def upload_file(self, data: bytes, content_type: str, *, email: str | None = None) -> UploadedFile:
        """POST files: upload an image, video or audio file (raw bytes) to `email`'s account.

        Images answer `result[0]` (use `reference_path` as `first_frame_path`); video and
        audio answer `path`. Not retried after it was sent: the caller may upload again.
        """
        if not data:
            raise RequestInvalid("file", "is empty")
        if content_type.lower() not in UPLOAD_CONTENT_TYPES:
            allowed = ", ".join(sorted(UPLOAD_CONTENT_TYPES))
            raise RequestInvalid("content_type", f"must be one of {allowed} (got {content_type!r})")
        body = await self._call(
            "POST", "files/", params=_query(email=email), content=data, headers={"Content-Type": content_type}
        )
        return _parse(UploadedFile, body)

    # ---------------------------------------------------------------- generations

    async def create_video(self, request: CreateVideoRequest) -> VideoCreated:
        """POST videos/create. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/create", request)

    async def create_frames(self, request: CreateFramesRequest) -> VideoCreated:
        """POST videos/create-frames. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/create-frames", request)

    async def create_transition(self, request: CreateTransitionRequest) -> VideoCreated:
        """POST videos/create-transition. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/create-transition", request)

    async def create_fusion(self, request: CreateFusionRequest) -> VideoCreated:
        """POST videos/create-fusion. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/create-fusion", request)

    async def upscale_video(self, request: UpscaleRequest) -> VideoCreated:
        """POST videos/upscale. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/upscale", request)

    async def extend_video(self, request: ExtendRequest) -> VideoCreated:
        """POST videos/extend. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/extend", request)

    async def lipsync_video(self, request: LipSyncRequest) -> VideoCreated:
        """POST videos/lipsync. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/lipsync", request)

    async def modify_video(self, request: ModifyRequest) -> VideoCreated:
        """POST videos/modify. Sent at most once; see `OutcomeUnknown` for a lost answer."""
        return await self._generate("videos/modify", request)

    async def _generate(self, path: str, request: PaidRequest) -> VideoCreated:
        """Send a paid generation once; when its answer is lost, find it instead of resending.

        A timeout, a dropped connection or a 5xx after the request went out leaves its
        fate unknown: the upstream may have started (and charged for) the video. Sending
        it again could pay twice, so the client looks for it by `replyRef` and returns
        the video it finds. When it finds none (or the request has no `replyRef`) it
        raises `OutcomeUnknown`: only the caller knows whether waiting, looking again
        later or giving up is right for its job.
        """
        request = _revalidated(request, self._catalogue)
        sent_at = datetime.now(UTC)
        try:
            body = await self._call("POST", path, payload=request.payload())
        except RequestNotSent:
            raise  # nothing reached the upstream: the outcome is known, nothing ran
        except (TransportError, ServerError) as lost:
            video_id = await self._look_for_lost(request, request.replyRef, sent_at) if request.replyRef else None
            if video_id is None:
                raise OutcomeUnknown(lost.detail, status=lost.status, reply_ref=request.replyRef) from lost
            logger.warning("%s: the answer was lost (%r); found the video %s by replyRef", path, lost, video_id)
            return VideoCreated(video_id=video_id)
        created = _parse(VideoCreated, body)
        if not created.id:
            raise InvalidResponse(f"{path} answered without a video_id or image_id")
        return created

    async def _look_for_lost(self, request: PaidRequest, reply_ref: str, sent_at: datetime) -> str | None:
        email, prompt, seed = _lookup_hints(request)
        for pause in retry.SUBMIT_LOOKUP_PAUSES_SECONDS:
            if pause:
                await self._sleep(pause)
            try:
                found = await self.find_submitted(reply_ref, email=email, since=sent_at, prompt=prompt, seed=seed)
            except UpstreamError as exc:
                logger.warning("looking up a lost submission failed: %r", exc)
                continue
            if found:
                return found
        return None

    async def find_submitted(
        self,
        reply_ref: str,
        *,
        email: str | None = None,
        since: datetime | None = None,
        prompt: str | None = None,
        seed: int | None = None,
    ) -> str | None:
        """The video id of an earlier create/upscale/extend sent with `reply_ref`, or None.

        Looks in GET scheduler (running jobs carry their replyRef), then in the newest
        pages of GET videos of `email`'s account (of every account when None), stopping
        at videos older than `since`. Listings that omit replyRef are matched on
        `prompt` + `seed` + created at or after `since` (less a clock-skew allowance) —
        only when all three are given, so a stranger's video is never taken for ours.
        """
        for job in await self.scheduler():
            if job.replyRef == reply_ref and job.video_id:
                return job.video_id
        cutoff = _as_utc(since) - retry.CLOCK_SKEW_ALLOWANCE if since else None
        emails = [email] if email else list(await self.accounts())
        for account in emails:
            found = await self._find_in_videos(account, reply_ref, cutoff, prompt, seed)
            if found:
                return found
        return None

    async def _find_in_videos(
        self, email: str, reply_ref: str, cutoff: datetime | None, prompt: str | None, seed: int | None
    ) -> str | None:
        offset = 0
        for _ in range(retry.LOOKUP_MAX_PAGES):
            page = await self.list_videos(email=email, limit=retry.LOOKUP_PAGE_SIZE, offset=offset)
            for video in page.data:
                if _matches(video, reply_ref, cutoff, prompt, seed):
                    return video.video_id or video.image_id
            times = [_created_at(video) for video in page.data]
            all_older = cutoff is not None and all(t is not None and t < cutoff for t in times)
            next_offset = page.next_offset or 0
            # Newest first: once a whole page predates the request, older pages cannot hold it.
            if all_older or not page.data or next_offset <= offset:
                return None
            offset = next_offset
        return None

    # ---------------------------------------------------------------- videos

    async def list_videos(self, *, email: str | None = None, limit: int = 40, offset: int = 0) -> VideoPage:
        """GET videos: the account's recent videos, in-progress ones included (newest first)."""
        if limit < 1:
            raise RequestInvalid("limit", f"must be at least 1 (got {limit})")
        if offset < 0:
            raise RequestInvalid("offset", f"must be at least 0 (got {offset})")
        body = await self._call("GET", "videos/", params=_query(email=email, limit=limit, offset=offset))
        return _parse(VideoPage, body)

    async def get_video(self, video_id: str) -> Video | None:
        """GET videos/{video_id}, or None: the upstream answers 404 while a video is still
        processing (and when it is gone), which is a result to wait on, not a failure."""
        try:
            body = await self._call("GET", f"videos/{_path_segment(video_id, 'video_id')}")
        except NotFound:
            return None
        return _parse(Video, body)

    async def delete_video(self, video_id: str) -> None:
        """DEL videos/{video_id}."""
        await self._call("DELETE", f"videos/{_path_segment(video_id, 'video_id')}")

    async def effects(self, *, email: str | None = None) -> EffectPage:
        """GET videos/effects: the effect templates (`template_id` for create)."""
        return _parse(EffectPage, await self._call("GET", "videos/effects", params=_query(email=email)))

    async def voices(self, *, email: str | None = None) -> VoiceList:
        """GET videos/voices: the lip-sync voices (`lip_sync_tts_speaker_id`)."""
        return _parse(VoiceList, await self._call("GET", "videos/voices/", params=_query(email=email)))

    # ---------------------------------------------------------------- scheduler

    async def scheduler(self) -> list[SchedulerJob]:
        """GET scheduler: the jobs useapi.net is running for us (with their replyRef)."""
        return _parse(list[SchedulerJob], await self._call("GET", "scheduler/"))

    async def scheduler_available(self) -> SchedulerAvailability:
        """GET scheduler/available: running jobs and each account's free capacity."""
        return _parse(SchedulerAvailability, await self._call("GET", "scheduler/available"))

    async def delete_scheduled(self, video_id: str) -> None:
        """DEL scheduler/{video_id}: stop tracking a running job. NotFound when it is not running."""
        await self._call("DELETE", f"scheduler/{_path_segment(video_id, 'video_id')}")

    # ---------------------------------------------------------------- accounts

    async def features(self, *, email: str | None = None) -> Features:
        """GET features: the account's plan and credits."""
        return _parse(Features, await self._call("GET", "features/", params=_query(email=email)))

    async def accounts(self) -> dict[str, Account]:
        """GET accounts: every configured PixVerse account by email ({} when none is)."""
        try:
            body = await self._call("GET", "accounts")
        except NotFound:  # documented: "Configuration not found" means no account yet
            return {}
        return _parse(dict[str, Account], body)

    async def account(self, email: str) -> Account:
        """GET accounts/{email}. NotFound when that account is not configured."""
        return _parse(Account, await self._call("GET", f"accounts/{_path_segment(email, 'email')}"))

    async def configure_account(self, request: AccountConfigRequest) -> Account:
        """POST accounts/{email}: add or update a PixVerse account."""
        request = _revalidated(request)
        path = f"accounts/{_path_segment(request.email, 'email')}"
        return _parse(Account, await self._call("POST", path, payload=request.payload()))

    async def delete_account(self, email: str) -> None:
        """DEL accounts/{email}."""
        await self._call("DELETE", f"accounts/{_path_segment(email, 'email')}")

    # ---------------------------------------------------------------- downloads

    async def download(self, url: str, destination: Path, *, max_bytes: int) -> int:
        """Stream `url` (a finished video) into `destination`; returns its size in bytes.

        Written in chunks, never held whole in memory. Raises `TooLarge` when the
        declared or the received size exceeds `max_bytes`; a download that fails or goes
        over the limit midway leaves no partial file behind. Retried like any read.
        """
        if urlsplit(url).scheme not in {"http", "https"}:
            raise RequestInvalid("url", f"must be an http(s) URL (got {url[:100]!r})")
        label = _loggable_url(url)

        async def attempt() -> int:
            # Built without the API's Authorization header: the CDN must never see the token.
            request = self._http.build_request("GET", url)
            response = await self._exchange(request, label, stream=True, follow_redirects=True)
            try:
                if not response.is_success:
                    await response.aread()
                    raise self._status_error(response)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise TooLarge(
                        f"declared {declared} bytes, limit {max_bytes}", max_bytes=max_bytes, size=int(declared)
                    )
                return await _stream_to_file(response, destination, max_bytes)
            finally:
                await response.aclose()

        return await self._retrying("GET", label, attempt)

    # ---------------------------------------------------------------- transport

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: object = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> object:
        """One API request, retried as `bot.upstream.retry` allows; returns the JSON body (None if empty)."""
        all_headers = {**(headers or {}), "Authorization": f"Bearer {self._token.get_secret_value()}"}

        async def attempt() -> httpx.Response:
            request = self._http.build_request(
                method, self._api_root + path, params=params, json=payload, content=content, headers=all_headers
            )
            response = await self._exchange(request, path)
            if not response.is_success:
                raise self._status_error(response)
            return response

        return _json_of(await self._retrying(method, path, attempt))

    async def _exchange(self, request: httpx.Request, label: str, **send_options: Any) -> httpx.Response:
        """Send `request`, logging method, `label`, status and time taken (never headers)."""
        started = time.monotonic()
        try:
            response = await self._http.send(request, **send_options)
        except httpx.TransportError as exc:
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.debug("%s %s failed after %.0f ms: %s", request.method, label, elapsed_ms, type(exc).__name__)
            raise
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.debug("%s %s -> %d in %.0f ms", request.method, label, response.status_code, elapsed_ms)
        return response

    async def _retrying(self, method: str, label: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds or `bot.upstream.retry` says stop.

        httpx failures come out as `RequestNotSent`, `Timeout` or `TransportError`.
        """
        number = 0
        while True:
            number += 1
            try:
                return await attempt()
            except httpx.TransportError as exc:
                if number == retry.MAX_ATTEMPTS or not retry.retry_after_transport_error(method, exc):
                    raise self._transport_error(label, exc) from exc
                reason = type(exc).__name__
            except UpstreamError as exc:
                if number == retry.MAX_ATTEMPTS or not retry.retry_after_error_status(method, exc):
                    raise
                reason = f"status {exc.status}"
            delay = retry.backoff_seconds(number)
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, label, reason, number, delay)
            await self._sleep(delay)

    def _redact(self, text: str) -> str:
        secret = self._token.get_secret_value()
        return text.replace(secret, _REDACTED) if secret else text

    def _status_error(self, response: httpx.Response) -> UpstreamError:
        # An upstream that echoes the credentials it got must not put them in our errors.
        text = self._redact(response.text)
        try:
            body: object = json.loads(text)
        except ValueError:
            body = text
        return error_from_response(response.status_code, body)

    def _transport_error(self, label: str, exc: httpx.TransportError) -> TransportError:
        detail = self._redact(f"{label}: {type(exc).__name__}: {exc}")
        if isinstance(exc, retry.NOT_SENT_ERRORS):
            return RequestNotSent(detail)
        if isinstance(exc, httpx.TimeoutException):
            return Timeout(detail)
        return TransportError(detail)


async def _stream_to_file(response: httpx.Response, destination: Path, max_bytes: int) -> int:
    received = 0
    try:
        with destination.open("wb") as file:
            async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise TooLarge(f"over {max_bytes} bytes while streaming", max_bytes=max_bytes, size=received)
                file.write(chunk)
    except BaseException:
        # Also on cancellation: a partial file must never pass for a finished video.
        destination.unlink(missing_ok=True)
        raise
    return received
