"""Check Bot API requests against the machine-readable Telegram spec.

The spec (`../shared/specs/telegram-bot-api.json`, beside the repository checkout) lists
every method's fields with their types, whether they are required, and a description
that states limits such as "1-4096 characters" or "1-64 bytes". `check_request` turns
that into a list of problems, so a test can prove every request the bot sent is one
the real Telegram would accept, down to the buttons nested inside a reply markup.

Params are given as Telegram reads them: typed values (JSON numbers, booleans,
objects), and each uploaded file as a dict with exactly the keys in `UPLOAD_KEYS`.
`coerce_params` turns form fields (where every value is a string) into that shape.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.shared_specs import SPECS_DIR, read_spec

SPEC_PATH = SPECS_DIR / "telegram-bot-api.json"

UPLOAD_KEYS = frozenset({"filename", "size", "content_type"})
"""The keys of the dict that stands for an uploaded file part in checked params."""

_PRIMITIVES = frozenset({"Integer", "Float", "Boolean", "String"})
_ARRAY_PREFIX = "Array of "
_INTEGER = re.compile(r"-?\d+")
_LENGTH = re.compile(r"(\d+)-(\d+) (characters|bytes)")
# "Scope type, must be default", 'always "creator"': the field is a discriminator
# constant, which is also what tells the members of a union type apart.
_CONSTANT = re.compile(r"(?:must be|always) [“\"]?([A-Za-z0-9_]+)[”\"]?$")
# The spec states allowed alphabets in prose; these are its exact phrasings.
_ALPHABETS = {
    "Can contain only lowercase English letters, digits and underscores": re.compile(r"[a-z0-9_]*"),
    "Can contain only English letters, digits and underscores": re.compile(r"[A-Za-z0-9_]*"),
    "Only characters A-Z, a-z, 0-9, _ and - are allowed": re.compile(r"[A-Za-z0-9_-]*"),
}


@functools.cache
def load_spec() -> dict[str, Any]:
    """Return the parsed spec, read once per process."""
    spec = read_spec(SPEC_PATH.name, "Telegram Bot API spec")
    return spec


@functools.cache
def _methods_by_lower_name() -> dict[str, dict[str, Any]]:
    return {name.lower(): method for name, method in load_spec()["methods"].items()}


def find_method(name: str) -> dict[str, Any] | None:
    """Return the spec entry of a method, matched case-insensitively as Telegram does."""
    return _methods_by_lower_name().get(name.lower())


def _fields(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    # Methods and types without parameters (getMe, CallbackGame) have no "fields" key.
    return {field["name"]: field for field in entry.get("fields", [])}


def missing_required(method: str, params: Mapping[str, Any]) -> list[str]:
    """Return the names of the method's required fields absent from `params`."""
    entry = find_method(method)
    if entry is None:
        return []
    return [name for name, field in _fields(entry).items() if field["required"] and name not in params]


def coerce_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Decode string values by the method's declared field types, as Telegram does.

    Form fields are all strings: "42" for an Integer, "true" for a Boolean, JSON text
    for an object or array. A value that does not decode stays a string, so
    `check_request` reports it; values that are already typed (JSON bodies) pass through.
    """
    entry = find_method(method)
    fields = _fields(entry) if entry else {}
    return {
        name: _coerce(fields[name]["types"], value) if name in fields and isinstance(value, str) else value
        for name, value in params.items()
    }


def _coerce(types: list[str], raw: str) -> Any:
    if "String" in types:
        # "Integer or String" (chat_id): a numeric string is the chat's numeric id.
        if "Integer" in types and _INTEGER.fullmatch(raw):
            return int(raw)
        return raw
    for type_name in types:
        if type_name == "Integer" and _INTEGER.fullmatch(raw):
            return int(raw)
        if type_name == "Float":
            try:
                return float(raw)
            except ValueError:
                continue
        if type_name == "Boolean" and raw.lower() in ("true", "false", "1", "0"):
            return raw.lower() in ("true", "1")
        if type_name not in _PRIMITIVES and type_name != "InputFile":
            try:
                return json.loads(raw)
            except ValueError:
                continue
    return raw


def check_request(method: str, params: Mapping[str, Any]) -> list[str]:
    """Return every way the request breaks the spec; an empty list means it is valid.

    Checks that the method exists, required fields are present, no field is unknown,
    values have their declared types (nested objects recursively, unions by their
    members), strings keep the spec's stated lengths and alphabets, and no
    `attach://` reference is left without its uploaded part.
    """
    entry = find_method(method)
    if entry is None:
        return [f"{method}: unknown method"]
    return _check_fields(entry, params, entry["name"])


def check_object(type_name: str, value: Any, path: str | None = None) -> list[str]:
    """Return every way `value` breaks the spec's definition of `type_name`."""
    path = path or type_name
    return _check_alternatives([type_name], value, path)


def _check_fields(entry: Mapping[str, Any], value: Mapping[str, Any], path: str) -> list[str]:
    declared = _fields(entry)
    problems = [f"{path}: unknown field {name!r}" for name in value if name not in declared]
    for name, field in declared.items():
        if name in value:
            problems += _check_field(field, value[name], f"{path}.{name}")
        elif field["required"]:
            problems.append(f"{path}: missing required field {name!r}")
    return problems


def _check_field(field: Mapping[str, Any], value: Any, path: str) -> list[str]:
    description: str = field["description"]
    if _is_upload(value) and ("InputFile" in field["types"] or "attach://" in description):
        return []
    problems = _check_alternatives(field["types"], value, path)
    if problems:
        return problems
    return _check_string(description, value, path) if isinstance(value, str) else []


def _check_alternatives(types: list[str], value: Any, path: str) -> list[str]:
    """Check `value` against any of `types`; report the closest match's problems."""
    item_types = [name.removeprefix(_ARRAY_PREFIX) for name in types if name.startswith(_ARRAY_PREFIX)]
    if len(item_types) > 1 and isinstance(value, list):
        # sendMediaGroup's "Array of InputMediaPhoto, ... and InputMediaVideo" is listed
        # as one array type per item type, yet an album may mix photos and videos.
        return _check_items(item_types, value, path)
    closest: list[str] | None = None
    for type_name in types:
        problems = _check_type(type_name, value, path)
        if problems == []:
            return []
        if problems is not None and (closest is None or len(problems) < len(closest)):
            closest = problems
    if closest is not None:
        return closest
    return [f"{path}: expected {' or '.join(types)}, got {_json_type(value)}"]


def _check_type(type_name: str, value: Any, path: str) -> list[str] | None:
    """Return the problems of `value` as a `type_name`, or None if its shape differs."""
    if type_name.startswith(_ARRAY_PREFIX):
        if not isinstance(value, list):
            return None
        return _check_items([type_name.removeprefix(_ARRAY_PREFIX)], value, path)
    if type_name in _PRIMITIVES or type_name == "InputFile":
        return [] if _is_primitive(type_name, value) else None
    entry = load_spec()["types"].get(type_name)
    if entry is None:
        return [f"{path}: the spec defines no type {type_name!r}"]
    if "subtypes" in entry:
        return _check_union(entry["subtypes"], value, path)
    if not isinstance(value, dict):
        return None
    return _check_fields(entry, value, path)


def _check_items(item_types: list[str], items: list[Any], path: str) -> list[str]:
    return [
        problem
        for index, item in enumerate(items)
        for problem in _check_alternatives(item_types, item, f"{path}[{index}]")
    ]


def _check_union(subtypes: list[str], value: Any, path: str) -> list[str] | None:
    # Telegram tells union members apart by their constant fields ("type": "chat"), so
    # the members those constants name are the ones whose problems are worth reporting.
    named = [name for name in subtypes if _constants_match(name, value)]
    problems = _check_alternatives(named or subtypes, value, path)
    # A shape that fits no member is a shape mismatch of the union itself.
    if len(problems) == 1 and problems[0].startswith(f"{path}: expected "):
        return None
    return problems


def _constants_match(type_name: str, value: Any) -> bool:
    entry = load_spec()["types"].get(type_name)
    if entry is None or not isinstance(value, dict):
        return False
    return all(
        value.get(name) == constant.group(1)
        for name, field in _fields(entry).items()
        if (constant := _CONSTANT.search(field["description"]))
    )


def _is_primitive(type_name: str, value: Any) -> bool:
    if type_name == "InputFile":
        return _is_upload(value)
    if isinstance(value, bool):
        return type_name == "Boolean"
    if type_name == "Integer":
        return isinstance(value, int)
    if type_name == "Float":
        return isinstance(value, (int, float))
    return type_name == "String" and isinstance(value, str)


def _check_string(description: str, value: str, path: str) -> list[str]:
    problems = []
    if value.startswith("attach://"):
        problems.append(f"{path}: {value!r} names no uploaded file part")
    if (constant := _CONSTANT.search(description)) and value != constant.group(1):
        problems.append(f"{path}: must be {constant.group(1)!r}, got {value!r}")
    if limit := _LENGTH.search(description):
        low, high, unit = int(limit.group(1)), int(limit.group(2)), limit.group(3)
        size = len(value.encode("utf-8")) if unit == "bytes" else len(value)
        if not low <= size <= high:
            problems.append(f"{path}: {size} {unit}, allowed {low}-{high}")
    for phrase, alphabet in _ALPHABETS.items():
        if phrase in description and not alphabet.fullmatch(value):
            problems.append(f"{path}: {value!r} breaks the rule {phrase!r}")
    return problems


def _is_upload(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == UPLOAD_KEYS


def _json_type(value: Any) -> str:
    names = {bool: "Boolean", int: "Integer", float: "Float", str: "String", list: "Array"}
    return names.get(type(value), "Object" if isinstance(value, dict) else type(value).__name__)
