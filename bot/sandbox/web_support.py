"""HTTP plumbing shared by the sandbox's routes: faults, auth, errors, bodies, queries."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from bot.catalogue import Catalogue, shipped_catalogue
from bot.sandbox.config import SandboxAccount
from bot.sandbox.errors import INJECTED_SERVER_ERROR, UNAUTHORIZED, ApiError

if TYPE_CHECKING:
    from bot.sandbox.core import Sandbox

API_PREFIX = "/v2/pixverse"
MEDIA_PREFIX = "/media/"
_INJECTED_STATUSES = (500, 502, 503)
_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RequestModel = TypeVar("RequestModel", bound=BaseModel)


class RouteGroup:
    """Handlers for one part of the API, sharing the sandbox they serve."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "code": status}, status=status)


def sandbox_middleware(sandbox: Sandbox) -> Middleware:
    """Log the request, inject the configured faults, check the token, shape errors."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        sandbox.request_log.append((request.method, request.path))
        config = sandbox.config
        if config.response_delay > 0:
            await asyncio.sleep(config.response_delay)
        if config.error_rate_5xx > 0 and sandbox.rng.random() < config.error_rate_5xx:
            return json_error(sandbox.rng.choice(_INJECTED_STATUSES), INJECTED_SERVER_ERROR)
        try:
            # Media urls are public, as PixVerse's CDN links are.
            if not request.path.startswith(MEDIA_PREFIX):
                _authorize(request, config.token)
            return await handler(request)
        except ApiError as error:
            return json_error(error.status, error.message)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            # No route for this method and path. aiohttp says 405 when another method has
            # one (POST videos/x matches GET videos/{video_id}); for the client either way
            # the endpoint does not exist, so both answer the same 404.
            return json_error(404, f"{request.method} {request.path} is not an endpoint of this API")
        except web.HTTPException as error:
            if error.status < 400:
                raise
            return json_error(error.status, error.reason)

    return middleware


def _authorize(request: web.Request, token: str) -> None:
    presented = request.headers.get("Authorization", "")
    if not secrets.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, UNAUTHORIZED)


def on_both(method: str, path: str, handler: Handler) -> list[web.RouteDef]:
    """Routes for `path` with and without a trailing slash (the docs use both)."""
    return [web.route(method, path, handler), web.route(method, path + "/", handler)]


def origin(request: web.Request) -> str:
    """scheme://host:port as the client reached us, for absolute media urls."""
    return str(request.url.origin())


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's fields: a JSON object, or a form (the docs also allow multipart/form-data)."""
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        return {name: value for name, value in form.items() if isinstance(value, str)}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "body: expected a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    return body


def validated(model: type[RequestModel], body: dict[str, Any], catalogue: Catalogue | None = None) -> RequestModel:
    """The body checked against the documented limits (models: `catalogue`'s); 400 naming each bad field."""
    try:
        return model.model_validate(body, context={"catalogue": catalogue or shipped_catalogue()})
    except ValidationError as error:
        raise ApiError(400, _describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        # Whole-request checks carry no location; their text names the field itself.
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def query_int(request: web.Request, name: str, *, default: int, minimum: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ApiError(400, f"{name}: expected an integer of at least {minimum}, got {raw!r}")
    return value


def queried_account(sandbox: Sandbox, request: web.Request) -> SandboxAccount:
    """The account named by `?email=`, which may be left out only when there is one account."""
    email = request.query.get("email", "")
    accounts = sandbox.config.accounts
    if not email:
        if len(accounts) == 1:
            return accounts[0]
        raise ApiError(400, f"email: required unless exactly one account is configured ({len(accounts)} are)")
    account = sandbox.config.account(email)
    if account is None:
        raise ApiError(400, f"email: account {email} is not configured")
    return account
