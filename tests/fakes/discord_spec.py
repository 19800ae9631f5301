"""Check Discord HTTP requests against Discord's own OpenAPI spec.

The spec (`../shared/specs/discord-openapi.json`, beside the repository checkout) is
OpenAPI 3.1, whose schemas are JSON Schema 2020-12: `check_request` finds the
operation a request addresses and validates its body with `jsonschema`, so a test can
prove every request the bot sent is one the real Discord would accept. On top of the
schema it checks the limits a chat bot meets most (`custom_id` ≤ 100, message
`content` ≤ 2000, modal title ≤ 45), wherever they sit in the body.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.shared_specs import SPECS_DIR, read_spec

SPEC_PATH = SPECS_DIR / "discord-openapi.json"
_SPEC_URI = "urn:discord-openapi"
_PARAMETER = re.compile(r"\{[^/}]+\}")

MAX_CUSTOM_ID = 100
MAX_CONTENT = 2000
MAX_MODAL_TITLE = 45
MODAL_CALLBACK = 9


@functools.cache
def load_spec() -> dict[str, Any]:
    """The parsed spec, adjusted where it is stricter than Discord itself (read once per process)."""
    spec = read_spec(SPEC_PATH.name, "Discord OpenAPI spec")
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    # The spec types snowflakes as strings, but Discord parses JSON integers as ids too,
    # and discord.py numbers a message's new attachments with integers (0, 1 …).
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    return spec


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    return Registry().with_resource(_SPEC_URI, resource)


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str, int]]:
    """(pattern, template, literal segment count) per path, most specific first."""
    routes = []
    for template in load_spec()["paths"]:
        parts = template.split("/")
        pattern = re.compile("/".join("[^/]+" if _PARAMETER.fullmatch(p) else re.escape(p) for p in parts) + "$")
        literal = sum(1 for part in parts if part and not _PARAMETER.fullmatch(part))
        routes.append((pattern, template, literal))
    return sorted(routes, key=lambda route: -route[2])


def find_route(path: str) -> str | None:
    """The spec's path template a concrete API path (without the `/api/v10` prefix) matches."""
    for pattern, template, _ in _routes():
        if pattern.match(path):
            return template
    return None


def _pointer(*parts: str) -> str:
    return "/".join(quote(part.replace("~", "~0").replace("/", "~1"), safe="~{}@") for part in parts)


@functools.cache
def _validator(template: str, method: str, media_type: str) -> Draft202012Validator | None:
    body = load_spec()["paths"][template][method].get("requestBody")
    if body is None or media_type not in body["content"]:
        return None
    ref = f"{_SPEC_URI}#/" + _pointer("paths", template, method, "requestBody", "content", media_type, "schema")
    return Draft202012Validator({"$ref": ref}, registry=_registry())


def check_request(method: str, path: str, body: Any = None, *, media_type: str = "application/json") -> list[str]:
    """Every way the request breaks the spec; an empty list means Discord would take it.

    `path` is the API path without the version prefix (`/channels/1/messages`); `body`
    is the JSON body, or a multipart request's `payload_json`, parsed (None: no body).
    """
    method = method.lower()
    where = f"{method.upper()} {path}"
    template = find_route(path)
    if template is None:
        return [f"{where}: no such path in the Discord API"]
    operation = load_spec()["paths"][template].get(method)
    if operation is None:
        return [f"{where}: {template} has no {method.upper()}"]
    if body is None:
        required = operation.get("requestBody", {}).get("required", False)
        return [f"{where}: the request body is required"] if required else []
    validator = _validator(template, method, media_type)
    if validator is None:
        return [f"{where}: {template} takes no {media_type} body"]
    problems = []
    errors = sorted(validator.iter_errors(body), key=relevance)
    if errors:
        error = _explain(errors[0])
        location = "/".join(str(part) for part in error.absolute_path) or "body"
        problems.append(f"{where}: {location}: {error.message[:300]}")
    return problems + [f"{where}: {problem}" for problem in check_limits(body)]


def check_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """Every way an answer of the fake breaks the spec's schema for that route and status."""
    method = method.lower()
    where = f"{method.upper()} {path} → {status}"
    template = find_route(path)
    responses = load_spec()["paths"].get(template or "", {}).get(method, {}).get("responses", {})
    if str(status) not in responses:
        return [f"{where}: the spec has no such answer"]
    pointer = _pointer(
        "paths", template or "", method, "responses", str(status), "content", "application/json", "schema"
    )
    validator = Draft202012Validator({"$ref": f"{_SPEC_URI}#/{pointer}"}, registry=_registry())
    return [
        f"{where}: {'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message[:300]}"
        for e in validator.iter_errors(body)
    ]


def _explain(error: ValidationError) -> ValidationError:
    """The error that tells what is wrong: inside a union, the branch the value meant to be.

    Discord's unions (component types, callback types) are told apart by a `type`
    field or by the JSON type (null or an object), so the branch whose shape matched
    is the one whose errors matter.
    """
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        candidates: list[list[ValidationError]] = [
            errs for errs in branches.values() if not any(_wrong_branch(e) for e in errs)
        ] or list(branches.values())
        fewest = min(candidates, key=len)
        error = sorted(fewest, key=relevance)[0]
    return error


def _wrong_branch(error: ValidationError) -> bool:
    """The value is not of this branch's shape at all: another JSON type, or another `type` tag."""
    if error.validator == "type" and not error.relative_path:
        return True
    return error.validator in {"enum", "const"} and list(error.relative_path) == ["type"]


def check_limits(body: Any) -> list[str]:
    """The limits a bot meets most, checked wherever they appear in a body."""
    problems = []
    for location, key, value in _walk(body, "body"):
        if key == "custom_id" and isinstance(value, str) and not 1 <= len(value) <= MAX_CUSTOM_ID:
            problems.append(f"{location}: custom_id is {len(value)} characters (1–{MAX_CUSTOM_ID})")
        if key == "content" and isinstance(value, str) and len(value) > MAX_CONTENT:
            problems.append(f"{location}: content is {len(value)} characters (at most {MAX_CONTENT})")
    if isinstance(body, dict) and body.get("type") == MODAL_CALLBACK:
        title = (body.get("data") or {}).get("title", "")
        if not 1 <= len(title) <= MAX_MODAL_TITLE:
            problems.append(f"body/data/title: a modal title is {len(title)} characters (1–{MAX_MODAL_TITLE})")
    return problems


def _walk(value: Any, location: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield location, key, item
            yield from _walk(item, f"{location}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{location}/{index}")
