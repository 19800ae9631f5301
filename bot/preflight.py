"""Checks made before the bot starts: defaults that cannot work together, tokens the services refuse.

One place for both `pixverse-bot check` (which prints every finding) and `pixverse-bot run`
(which refuses to start on a finding it cannot work around). The chat platforms' token
checks live in their adapters — the core imports neither aiogram nor discord.py — and
report with the same `Finding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from bot.commands import RequestBuilder
from bot.domain import GenerationRequest
from bot.errors import InvalidInput
from bot.kinds.animate import Animate
from bot.kinds.create import CreateSingle
from bot.settings import Settings
from bot.submission import validate_request
from bot.upstream import errors as ue
from bot.upstream.client import PixVerseClient


class Verdict(StrEnum):
    OK = "ok"
    # The service could not be asked (network, outage): the setting may be right.
    UNREACHABLE = "unreachable"
    # The setting is wrong: retrying will not help, the operator must change it.
    WRONG = "wrong"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a preflight check: what the service said, or what is wrong and how to fix it."""

    verdict: Verdict
    text: str

    @property
    def is_problem(self) -> bool:
        return self.verdict is not Verdict.OK


def ok(text: str) -> Finding:
    return Finding(Verdict.OK, text)


def wrong(text: str) -> Finding:
    return Finding(Verdict.WRONG, text)


def unreachable(text: str) -> Finding:
    return Finding(Verdict.UNREACHABLE, text)


def without_secret(text: str, secret: SecretStr | None) -> str:
    """`text` with every occurrence of `secret` masked: error messages may quote a URL holding a token."""
    raw = secret.get_secret_value() if secret is not None else ""
    return text.replace(raw, "…") if raw else text


# ---------------------------------------------------------------- the generation defaults

# The settings each field of a default request comes from (what `RequestBuilder` reads).
_DEFAULT_SETTINGS = (
    "default_model",
    "default_duration",
    "default_quality",
    "default_hd_quality",
    "default_aspect_ratio",
    "default_audio",
    "default_off_peak",
    "default_style",
)
# The plain requests every user can make, each built from the defaults alone.
_PLAIN_REQUESTS = (
    ("/create_single <prompt>", lambda builder: builder.create_single(CreateSingle(prompt="a fox"))),
    ("/animate", lambda builder: builder.animate(Animate(), image_blob_id="preflight")),
    ("/animate --hd yes", lambda builder: builder.animate(Animate(hd_quality=True), image_blob_id="preflight")),
)


def default_conflicts(settings: Settings) -> list[str]:
    """Contradictions among the DEFAULT_* settings, one line each naming the settings involved.

    Each plain request (no options given) is built from the defaults and validated by the
    same code that validates users' requests, so every upstream limit counts and none is
    restated here. The settings to blame for a refusal are those that, put back to their
    own default alone, change it; with one of them put back, the next refusal (if any)
    is looked for the same way.
    """
    lines: dict[str, str] = {}  # conflict → line; /animate repeating /create_single's is said once
    for command, build in _PLAIN_REQUESTS:
        current = settings
        while (error := _refusal(current, build)) is not None:
            culprits = [
                name
                for name in _DEFAULT_SETTINGS
                if getattr(current, name) != Settings.model_fields[name].default
                and _refusal(_with_default(current, name), build) != error
            ]
            if not culprits:  # the embedded defaults themselves are refused: nothing to name
                break
            named = " and ".join(f"{name.upper()}={_shown(getattr(current, name))}" for name in culprits)
            conflict = f"{named} cannot be used together: {error}"
            lines.setdefault(conflict, f"{conflict}; every plain {command} would be refused")
            current = _with_default(current, culprits[0])
    return list(lines.values())


def _refusal(settings: Settings, build: Any) -> str | None:
    try:
        request: GenerationRequest = build(RequestBuilder(settings))
        validate_request(request)
    except InvalidInput as exc:
        return exc.problem
    return None


def _with_default(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={name: Settings.model_fields[name].default})


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(getattr(value, "value", value))


# ---------------------------------------------------------------- useapi.net


@dataclass(frozen=True, slots=True)
class UpstreamReport:
    """What useapi.net says about the token and the PixVerse accounts the bot would use."""

    findings: list[Finding]
    # The token itself was refused: nothing will work until it is replaced.
    token_rejected: bool = False


async def check_useapi(settings: Settings) -> UpstreamReport:
    """Ask useapi.net (GET accounts, GET scheduler/available) whether the token and accounts work.

    Nothing is asked when the bot would not use useapi.net (no token, or BOT_SANDBOX=true).
    """
    token = settings.useapi_api_token
    if token is None or settings.bot_sandbox:
        return UpstreamReport([])
    base = settings.useapi_base_url
    try:
        async with PixVerseClient(base, token, timeout=settings.useapi_timeout_seconds) as client:
            accounts = await client.accounts()
            availability = await client.scheduler_available()
    except ue.Unauthorized as exc:
        detail = without_secret(exc.detail or str(exc.status), token)
        return UpstreamReport([wrong(f"USEAPI_API_TOKEN: the token was rejected by {base} ({detail})")], True)
    except ue.TransportError as exc:
        return UpstreamReport([unreachable(f"USEAPI_BASE_URL: cannot reach {base} ({exc!r})")])
    except ue.UpstreamError as exc:
        detail = without_secret(exc.detail or str(exc.status), token)
        return UpstreamReport([unreachable(f"USEAPI_BASE_URL: {base} answered with an error: {exc} ({detail})")])
    # Compared as written: the account pool matches USEAPI_ACCOUNTS exactly, so must this.
    unknown = [email for email in settings.useapi_accounts if email not in accounts]
    findings = [ok(f"useapi.net accounts: {', '.join(accounts) or '(none configured)'}")]
    for cap in availability.available:
        unused = settings.useapi_accounts and cap.email not in settings.useapi_accounts
        used = " (not used: USEAPI_ACCOUNTS)" if unused else ""
        findings.append(ok(f"{cap.email}: {cap.available}/{cap.maxJobs} slots free{used}"))
    if unknown:
        findings.append(wrong(unknown_accounts_text(unknown, sorted(accounts))))
    elif not accounts:
        findings.append(wrong("useapi.net has no PixVerse account for this token: add one (README, step 1)"))
    return UpstreamReport(findings)


def unknown_accounts_text(unknown: list[str], known: list[str]) -> str:
    return (
        f"USEAPI_ACCOUNTS lists {', '.join(unknown)}, which useapi.net does not know "
        f"(its accounts: {', '.join(known) or 'none'}); jobs for them would wait for ever. "
        "Fix the spelling, or add the account at useapi.net"
    )
