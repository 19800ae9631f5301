"""Prompt moderation as a group experiences it: lists, actions, strikes, mutes and the log.

Every text that reaches PixVerse (prompt, negative prompt, remix prompt, image
caption) is checked against the operator's global list plus the group's own list,
then (optionally) an external OpenAI-moderation-compatible endpoint. A hit is
refused with the entry that matched; in "strike" mode, repeated hits — ours or
PixVerse's own refusals — mute the user for a while.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from pydantic import SecretStr

from bot.cache import SharedCache, SharedSnapshot
from bot.domain import Requester, UserRef, utcnow
from bot.errors import BotError, InvalidInput, Refused
from bot.moderation.rules import Blocklist, InvalidRule, parse_entry
from bot.ports import AccessLists, Coordinator, GovernanceStore, ModerationLogEntry
from bot.ranges import MUTE_MINUTES, STRIKE_LIMIT, STRIKE_WINDOW_HOURS, NumberRange

log = logging.getLogger(__name__)

# Where bot-wide records live (private chats, operator additions to the global list).
BOT_WIDE = "*"

# Groups whose settings are kept in memory; others are read again when next used (one query).
CACHED_GROUP_SETTINGS = 10_000
# Groups whose merged blocklist is kept. Each holds the whole global list merged with the
# group's own, so it is the larger entry; a group past the bound merges again on its next prompt.
CACHED_GROUP_BLOCKLISTS = 1_000
# Bans and mutes in force held in memory at most, so that a command reads neither; with
# more than this (a bot that bans by the thousand), each command reads its user's (one query).
HELD_ACCESS_ENTRIES = 10_000
# What another process announces when it changed group settings, filters, or bans and mutes
# (`bot.ports.Coordinator`).
SETTINGS_TOPIC = "group-settings"
FILTERS_TOPIC = "filters"
ACCESS_TOPIC = "access"


class FilterMode(StrEnum):
    REJECT = "reject"
    STRIKE = "strike"


@dataclass(frozen=True, slots=True)
class GroupSettings:
    bot_enabled: bool = True
    filter_mode: FilterMode = FilterMode.REJECT
    strike_limit: int = 3
    strike_window_hours: float = 24.0
    mute_minutes: float = 60.0
    admins_exempt: bool = True

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None, defaults: GroupSettings, *, group_key: str) -> GroupSettings:
        """Settings as saved for `group_key`; a value that is not valid (saved by an older
        version, or edited by hand) falls back to the default, so it cannot break every prompt."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (stored or {}).items() if k in known}
        for name, value in list(values.items()):
            if not _valid_setting(name, value, getattr(defaults, name)):
                log.warning("group %s: ignoring its saved %s=%r (not valid); using the default", group_key, name, value)
                del values[name]
        if "filter_mode" in values:
            values["filter_mode"] = FilterMode(values["filter_mode"])
        return replace(defaults, **values)


# The group settings an admin sets by number, in the order /filtermode strike takes them.
NUMERIC_SETTINGS: dict[str, NumberRange[Any]] = {
    "strike_limit": STRIKE_LIMIT,
    "strike_window_hours": STRIKE_WINDOW_HOURS,
    "mute_minutes": MUTE_MINUTES,
}


def _valid_setting(name: str, value: object, default: object) -> bool:
    if name in NUMERIC_SETTINGS:
        return NUMERIC_SETTINGS[name].allows(value)
    if isinstance(default, StrEnum):
        return value in {member.value for member in type(default)}
    return type(value) is type(default)


class PromptRejected(BotError):
    """A text matched a blocklist entry or was flagged by the external check."""


class ExternalModeration:
    """An OpenAI-moderation-compatible endpoint: POST {"input": text} → {"results": [{"flagged": …}]}."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, api_key: SecretStr | None, *, model: str | None, fail_open: bool
    ) -> None:
        self._http = http
        self._url = url
        self._api_key = api_key
        self._model = model
        self._fail_open = fail_open

    async def flagged(self, text: str) -> str | None:
        """The flagged categories (comma-separated), or None when the text passes."""
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"} if self._api_key else {}
        body: dict[str, Any] = {"input": text} | ({"model": self._model} if self._model else {})
        try:
            response = await self._http.post(self._url, json=body, headers=headers)
            response.raise_for_status()
            results = response.json()["results"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            # Never the key: only the exception type and the status, if any.
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if self._fail_open:
                log.warning(
                    "external moderation failed (%s %s); letting the prompt through", type(exc).__name__, status
                )
                return None
            log.warning("external moderation failed (%s %s); refusing the prompt", type(exc).__name__, status)
            raise Refused("The prompt checker is unavailable right now; please try again in a few minutes.") from None
        for result in results:
            if result.get("flagged"):
                categories = [name for name, hit in (result.get("categories") or {}).items() if hit]
                return ", ".join(categories) or "flagged"
        return None


class ModerationService:
    def __init__(
        self,
        store: GovernanceStore,
        global_list: Blocklist,
        *,
        defaults: GroupSettings,
        operators: frozenset[str],
        external: ExternalModeration | None = None,
        clock: Callable[[], datetime] = utcnow,
        coordinator: Coordinator | None = None,
    ) -> None:
        self._clock = clock
        self._store = store
        self._global = global_list
        self._defaults = defaults
        self._operators = operators
        self._external = external
        self._lists: SharedCache[str, Blocklist] = SharedCache(CACHED_GROUP_BLOCKLISTS)
        self._settings: SharedCache[str, GroupSettings] = SharedCache(CACHED_GROUP_SETTINGS)
        # Every command asks whether its user is banned or muted, and nearly all are not:
        # both lists, held whole, answer without a read (None: too long to hold).
        self._access: SharedSnapshot[AccessLists | None] = SharedSnapshot()
        # Other processes on the same database change settings and lists too: they say so.
        self._coordinator = coordinator
        if coordinator is not None:
            coordinator.subscribe(SETTINGS_TOPIC, self._settings.forget)
            coordinator.subscribe(FILTERS_TOPIC, self._lists.forget)
            coordinator.subscribe(ACCESS_TOPIC, self._access.forget)

    # --------------------------------------------------------------- settings

    async def settings_for(self, group_key: str | None) -> GroupSettings:
        """A group's settings; private chats follow the bot-wide ones an operator set (or the defaults).

        Cached: every command reads them, only admin commands change them (of this process,
        or of another on the same database, which announces it).
        """
        key = group_key or BOT_WIDE

        async def load() -> GroupSettings:
            return GroupSettings.from_stored(await self._store.group_settings(key), self._defaults, group_key=key)

        return await self._settings.get_or_load(key, load)

    async def update_settings(self, group_key: str, **changes: Any) -> GroupSettings:
        updated = replace(await self.settings_for(group_key), **changes)
        stored = asdict(updated)
        stored["filter_mode"] = updated.filter_mode.value
        await self._store.save_group_settings(group_key, stored)
        self._settings.put(group_key, updated)
        await self._announce(SETTINGS_TOPIC)
        return updated

    async def _announce(self, topic: str) -> None:
        if self._coordinator is not None:
            await self._coordinator.announce(topic)

    async def longest_strike_window(self) -> timedelta:
        """The longest strike window any group (or the defaults) counts strikes over:
        a strike younger than this may still count toward a mute, so it must be kept."""
        stored = await self._store.all_group_settings()
        hours = [
            GroupSettings.from_stored(settings, self._defaults, group_key=group).strike_window_hours
            for group, settings in stored.items()
        ]
        return timedelta(hours=max([self._defaults.strike_window_hours, *hours]))

    # --------------------------------------------------------------- checking

    def is_exempt(self, requester: Requester, settings: GroupSettings) -> bool:
        """Whether moderation (the lists, strikes and mutes) passes this requester by: admins, if the group says so."""
        is_admin = requester.user.key in self._operators or requester.is_group_admin
        return settings.admins_exempt and is_admin

    async def check_access(self, requester: Requester, *, admin_command: bool = False) -> None:
        """Refuse users who are banned here, or muted here (unless exempt).

        A mute never refuses an `admin_command`: a muted admin can still run the group
        (and lift the mute); whether the requester *is* an admin is the command's own check.
        """
        group = requester.chat.group_key
        scopes = [BOT_WIDE] + ([group] if group else [])
        now = self._clock()
        lists = await self._access.get_or_load(lambda: self._store.access_lists(HELD_ACCESS_ENTRIES, now))
        if lists is not None:
            banned, until = lists.access(requester.user.key, scopes, group or BOT_WIDE)
        else:
            banned, until = await self._store.access(requester.user.key, scopes, group or BOT_WIDE)
        if banned:
            raise Refused("You are not allowed to use this bot here.")
        if admin_command or until is None or until <= now:
            return
        if self.is_exempt(requester, await self.settings_for(group)):
            return  # muted while admins were checked; exempt again now
        minutes = max(1, int((until - now).total_seconds() // 60) + 1)
        raise Refused(f"You are muted from the bot here for {minutes} more min after repeated refused prompts.")

    async def check_texts(self, requester: Requester, texts: list[str | None]) -> None:
        """Refuse if any text matches a list (or the external check); records and strikes."""
        group = requester.chat.group_key
        settings = await self.settings_for(group)
        if self.is_exempt(requester, settings):
            return
        rules = await self._rules_for(group)
        for text in filter(None, texts):
            hit = rules.match(text)
            if hit is not None:
                consequence = await self.record(requester.user, group, text, hit.rule, "blocklist")
                raise PromptRejected(
                    f"Your prompt was refused: it contains the blocked term “{hit.rule}”.{consequence}"
                )
        if self._external is not None:
            joined = "\n".join(filter(None, texts))
            categories = await self._external.flagged(joined) if joined else None
            if categories:
                consequence = await self.record(requester.user, group, joined, categories, "external")
                raise PromptRejected(f"Your prompt was refused by the content checker ({categories}).{consequence}")

    async def record(self, user: UserRef, group_key: str | None, text: str, rule: str, source: str) -> str:
        """Log a refusal; in strike mode count it and mute at the limit. Returns a sentence for the user."""
        scope = group_key or BOT_WIDE
        settings = await self.settings_for(group_key)
        now = self._clock()
        action, consequence = "rejected", ""
        if settings.filter_mode is FilterMode.STRIKE:
            await self._store.add_strike(user.key, scope, now, rule)
            since = now - timedelta(hours=settings.strike_window_hours)
            strikes = await self._store.count_strikes(user.key, scope, since)
            action = "strike"
            consequence = f" Strike {strikes} of {settings.strike_limit} in {settings.strike_window_hours:g} h."
            if strikes >= settings.strike_limit:
                await self._store.set_mute(user.key, scope, now + timedelta(minutes=settings.mute_minutes))
                await self._access_changed()
                action = "muted"
                consequence = (
                    f" That was strike {strikes}: you are muted from the bot here for {settings.mute_minutes:g} min."
                )
        await self._store.log_moderation(
            ModerationLogEntry(now, scope, user.key, user.display_name, text[:500], rule, source, action)
        )
        return consequence

    async def _rules_for(self, group_key: str | None) -> Blocklist:
        key = group_key or BOT_WIDE

        async def load() -> Blocklist:
            operator_extra = await self._store.filters(BOT_WIDE)
            group_entries = await self._store.filters(group_key) if group_key else []
            extra = Blocklist.from_lines(operator_extra, allow_regex=True, source="operator")
            own = Blocklist.from_lines(group_entries, allow_regex=False, source="group")
            return Blocklist.merged(self._global, extra, own)

        return await self._lists.get_or_load(key, load)

    # --------------------------------------------------------------- lists

    async def add_filter(self, group_key: str | None, entry: str, added_by: str, *, allow_regex: bool) -> bool:
        entry = entry.strip()
        try:
            parse_entry(entry, allow_regex=allow_regex)
        except InvalidRule as exc:
            raise InvalidInput("filter", str(exc)) from None
        added = await self._store.add_filter(group_key or BOT_WIDE, entry, added_by)
        self._lists.forget()
        await self._announce(FILTERS_TOPIC)
        return added

    async def remove_filter(self, group_key: str | None, entry: str) -> bool:
        removed = await self._store.remove_filter(group_key or BOT_WIDE, entry.strip())
        self._lists.forget()
        await self._announce(FILTERS_TOPIC)
        return removed

    async def list_filters(self, group_key: str | None) -> list[str]:
        return await self._store.filters(group_key or BOT_WIDE)

    async def test(self, group_key: str | None, text: str) -> str | None:
        """Which entry would refuse `text` here (None if it passes the lists)."""
        hit = (await self._rules_for(group_key)).match(text)
        return hit.rule if hit else None

    async def log(self, group_key: str | None, limit: int = 20) -> list[ModerationLogEntry]:
        return await self._store.moderation_log(group_key, limit)

    async def ban(self, user_key: str, scope: str, by: str) -> None:
        await self._store.set_ban(user_key, scope, by, self._clock())
        await self._access_changed()

    async def unban(self, user_key: str, scope: str) -> bool:
        removed = await self._store.remove_ban(user_key, scope)
        await self._access_changed()
        return removed

    async def unmute(self, user_key: str, scope: str) -> bool:
        """Lift the user's mute in `scope` (bot-wide: in every group) and clear the strikes that led to it.

        True when a mute still in force was lifted.
        """
        lifted = await self._store.remove_mutes(user_key, None if scope == BOT_WIDE else scope, self._clock())
        await self._access_changed()
        return lifted

    async def _access_changed(self) -> None:
        """A ban or mute was set or lifted: read the lists again here, and tell the other processes."""
        self._access.forget()
        await self._announce(ACCESS_TOPIC)

    async def known_name(self, user_key: str) -> str | None:
        """The name a user last went by in a job or a moderation record (None if never seen)."""
        return await self._store.known_name(user_key)
