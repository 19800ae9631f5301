"""GET/POST/DELETE accounts, and GET features (an account's plan and credits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.sandbox.config import SandboxAccount
from bot.sandbox.errors import ApiError
from bot.sandbox.videos import SANDBOX_USER_ID, account_id_of, iso_utc
from bot.sandbox.web_support import API_PREFIX, RouteGroup, on_both, queried_account, read_body, validated
from bot.upstream.models import AccountConfigRequest

_SECURED = "…secured…"
_NOT_CONFIGURED = "Configuration not found. To create configuration use POST accounts/{email}"
# Plan concurrency reported by GET features when an account sets no limit of its own.
_PLAN_CONCURRENCY = 8


def _account_json(account: SandboxAccount) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(days=1)
    jwt = {
        "AccountId": account_id_of(account.email),
        "ExpireTime": int(expires.timestamp()),
        "ExpireTimeUTC": iso_utc(expires, millis=True),
        "Username": account.email,
        "token": f"abc{_SECURED}cde",
    }
    return {"email": account.email, "password": _SECURED, "maxJobs": account.max_jobs, "jwt": jwt}


class AccountRoutes(RouteGroup):
    """The accounts useapi.net runs jobs on, and their credits."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *on_both("GET", f"{API_PREFIX}/accounts", self.list_accounts),
            web.get(f"{API_PREFIX}/accounts/{{email}}", self.get_account),
            web.post(f"{API_PREFIX}/accounts/{{email}}", self.configure_account),
            web.delete(f"{API_PREFIX}/accounts/{{email}}", self.delete_account),
            *on_both("GET", f"{API_PREFIX}/features", self.features),
        ]

    async def list_accounts(self, request: web.Request) -> web.Response:
        accounts = self.sandbox.config.accounts
        if not accounts:
            raise ApiError(404, _NOT_CONFIGURED)
        return web.json_response({account.email: _account_json(account) for account in accounts})

    async def get_account(self, request: web.Request) -> web.Response:
        return web.json_response(_account_json(self._named(request)))

    async def configure_account(self, request: web.Request) -> web.Response:
        """Create or update an account; updating clears its pending error (596)."""
        email = request.match_info["email"]
        ask = validated(AccountConfigRequest, await read_body(request))
        if ask.email.lower() != email.lower():
            raise ApiError(400, f"email: {ask.email} does not match the email in the path ({email})")
        account = self.sandbox.config.account(email)
        if account is None:
            account = SandboxAccount(email=ask.email, max_jobs=ask.maxJobs)
            self.sandbox.config.accounts.append(account)
        account.max_jobs, account.needs_attention = ask.maxJobs, False
        return web.json_response(_account_json(account), status=201)

    async def delete_account(self, request: web.Request) -> web.Response:
        self.sandbox.config.accounts.remove(self._named(request))
        return web.Response(status=204)

    async def features(self, request: web.Request) -> web.Response:
        account = queried_account(self.sandbox, request)
        body = {
            "user_id": SANDBOX_USER_ID,
            "member_id": account_id_of(account.email),
            "plan_name": "Sandbox Plan",
            "current_plan_type": 2,
            "credit_daily": 0,
            "credit_monthly": account.credits,
            "credit_package": 0,
            "gen_simultaneously": account.concurrency_limit or _PLAN_CONCURRENCY,
            "allow_effect": 1,
            "remove_watermark": 1,
        }
        return web.json_response(body)

    def _named(self, request: web.Request) -> SandboxAccount:
        account = self.sandbox.config.account(request.match_info["email"])
        if account is None:
            raise ApiError(404, _NOT_CONFIGURED)
        return account
