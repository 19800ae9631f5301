"""Admin commands, on every platform: quotas, bans, filters, filter mode, the log, stats, credits.

Who may do what:
- operators (BOT_ADMIN_IDS) — everything, bot-wide; in a group, also that group's settings;
- group admins (Telegram chat admins, Discord Manage Server) — their own group's
  filters, filter mode, bans, mutes, moderation log, stats, shared quota pool, and /bot on|off.
Per-user quotas are the operator's: they decide what each member may spend.
Refusals never say more than "only admins" (no hint of what exists).
"""

from __future__ import annotations

from datetime import timedelta

from bot.domain import Platform, Requester, UserRef, utcnow
from bot.errors import InvalidInput, NotAllowed
from bot.moderation.service import BOT_WIDE, NUMERIC_SETTINGS, FilterMode, ModerationService
from bot.ports import Upstream
from bot.quota import GROUP, USER, QuotaService, QuotaStatus
from bot.ranges import MODLOG_ENTRIES, QUOTA_LIMIT, STATS_DAYS
from bot.retention import RetentionPolicy
from bot.upstream.errors import UpstreamError

UNLIMITED_WORDS = {"unlimited", "none", "off", "∞"}
MEMBER_QUOTA_HINT = (
    "each member's own quota is set by the bot's operator; group admins set the group's shared pool "
    "(/setquota group <n|off>, /resetquota group)"
)


def format_quota(title: str, status: QuotaStatus, tz) -> str:
    unit = status.unit
    if status.limit is None:
        head = f"{title}: unlimited ({unit.of(status.used)} used"
    else:
        head = f"{title}: {status.left} of {unit.of(status.limit)} left ({status.used} used"
    head += f", {status.reserved} reserved by running jobs)" if status.reserved else ")"
    if status.resets_at and status.limit is not None:
        head += f"; {status.window.value} quota, resets {status.resets_at.astimezone(tz):%Y-%m-%d %H:%M %Z}"
    return head


class AdminService:
    def __init__(
        self,
        *,
        quotas: QuotaService,
        moderation: ModerationService,
        upstream: Upstream,
        operators: frozenset[str],
        retention: RetentionPolicy,
    ) -> None:
        self._quotas = quotas
        self._retention = retention
        self._moderation = moderation
        self._upstream = upstream
        self._operators = operators

    # ------------------------------------------------------------ who is who

    def is_operator(self, user: UserRef) -> bool:
        return user.key in self._operators

    def ids(self, requester: Requester) -> str:
        """/id (everyone): the caller's and the chat's ids, written the way the settings take them."""
        user, chat = requester.user, requester.chat
        lines = [f"Your id: {user.key} (as BOT_ADMIN_IDS takes it: BOT_ADMIN_IDS={user.key})"]
        if user.platform is Platform.DISCORD:
            thread = f", thread {chat.thread_id}" if chat.thread_id else ""
            lines.append(f"This channel: {chat.chat_id}{thread}")
            if chat.group_id:
                lines.append(f"This server: {chat.group_id} (as DISCORD_GUILD_IDS takes it)")
        elif user.platform is not Platform.CONSOLE:
            topic = f", topic {chat.thread_id}" if chat.thread_id else ""
            lines.append(f"This chat: {chat.chat_id}{topic}")
        if self.is_operator(user):
            lines.append("You are an operator of this bot.")
        else:
            lines.append("You are not an operator: the bot's owner adds your id to BOT_ADMIN_IDS and restarts it.")
        return "\n".join(lines)

    def _require_operator(self, requester: Requester, *, group_admin_hint: str | None = None) -> None:
        if self.is_operator(requester.user):
            return
        if group_admin_hint and requester.is_group_admin:
            # They are an admin, just not of this: say what they can do instead.
            raise InvalidInput("user", group_admin_hint)
        raise NotAllowed()

    def _group_scope(self, requester: Requester) -> str:
        """The scope an admin command acts on: the group here, or bot-wide for an operator in private."""
        group = requester.chat.group_key
        if group is None:
            self._require_operator(requester)
            return BOT_WIDE
        if not (requester.is_group_admin or self.is_operator(requester.user)):
            raise NotAllowed()
        return group

    async def _name(self, user: UserRef) -> str:
        """How answers name a member: the name the platform gave, else the last one seen, else the key."""
        return user.display_name or await self._moderation.known_name(user.key) or user.key

    # ------------------------------------------------------------ quotas

    async def quota(self, requester: Requester) -> str:
        """/quota: what the asking user has left (anyone may ask)."""
        mine, pool = await self._quotas.status(requester.user, requester.chat.group_key)
        tz = self._quotas.policy.timezone
        lines = [format_quota("Your quota", mine, tz)]
        if pool is not None:
            lines.append(format_quota("This group's shared pool", pool, tz))
        return "\n".join(lines)

    async def set_quota(self, requester: Requester, target: UserRef | None, value: str) -> str:
        """/setquota <user> <n|unlimited> (operator); /setquota group <n|off> (group admins)."""
        limit = self._parse_limit(value)
        if target is None:
            group = self._group_scope(requester)
            if group == BOT_WIDE:
                raise InvalidInput("group", "a group's pool is set from inside that group")
            await self._quotas.set_limit(GROUP, group, limit)
            return f"This group's shared pool is now {self._limit_text(limit)}."
        self._require_operator(requester, group_admin_hint=MEMBER_QUOTA_HINT)
        await self._quotas.set_limit(USER, target.key, limit)
        return f"{await self._name(target)}'s quota is now {self._limit_text(limit)}."

    async def reset_quota(self, requester: Requester, target: UserRef | None) -> str:
        """/resetquota <user> (operator) or /resetquota group (group admins): usage so far no longer counts."""
        if target is None:
            group = self._group_scope(requester)
            await self._quotas.reset(GROUP, group)
            return "This group's pool usage was reset."
        self._require_operator(requester, group_admin_hint=MEMBER_QUOTA_HINT)
        await self._quotas.reset(USER, target.key)
        return f"{await self._name(target)}'s usage was reset for this window."

    def _parse_limit(self, value: str) -> int | None:
        if value.strip().lower() in UNLIMITED_WORDS:
            return None
        return QUOTA_LIMIT.parse(value)

    def _limit_text(self, limit: int | None) -> str:
        unit = self._quotas.policy.unit
        return "unlimited" if limit is None else f"{unit.of(limit)} per {self._quotas.policy.window.value} window"

    # ------------------------------------------------------------ bans

    async def ban(self, requester: Requester, target: UserRef) -> str:
        scope = self._group_scope(requester)
        if self.is_operator(target):
            raise InvalidInput("user", "operators cannot be banned")
        await self._moderation.ban(target.key, scope, requester.user.key)
        where = "from the bot everywhere" if scope == BOT_WIDE else "from the bot in this group"
        return f"{await self._name(target)} is banned {where}."

    async def unban(self, requester: Requester, target: UserRef) -> str:
        scope = self._group_scope(requester)
        removed = await self._moderation.unban(target.key, scope)
        name = await self._name(target)
        return f"{name} is no longer banned." if removed else f"{name} was not banned here."

    # ------------------------------------------------------------ mutes

    async def unmute(self, requester: Requester, target: UserRef) -> str:
        """/unmute <user>: lift a strike-mode mute here (an operator in private: everywhere) and clear the strikes."""
        scope = self._group_scope(requester)
        lifted = await self._moderation.unmute(target.key, scope)
        name = await self._name(target)
        where = "anywhere" if scope == BOT_WIDE else "here"
        if lifted:
            return f"{name} is no longer muted {where}; their strikes were cleared."
        return f"{name} was not muted {where}; any strikes were cleared."

    # ------------------------------------------------------------ filters

    async def filter(self, requester: Requester, operation: str, text: str) -> str:
        """/filter add|remove|list|test <text>."""
        scope = self._group_scope(requester)
        group = None if scope == BOT_WIDE else scope
        operation = operation.lower()
        if operation == "list":
            entries = await self._moderation.list_filters(group)
            where = "the bot-wide extra list" if group is None else "this group's list"
            return f"Entries in {where} (the operator's global list applies too):\n" + (
                "\n".join(f"• {e}" for e in entries) if entries else "(none)"
            )
        if not text.strip():
            raise InvalidInput("filter", f"/filter {operation} needs a word, phrase or pattern")
        if operation == "add":
            added = await self._moderation.add_filter(
                group, text, requester.user.key, allow_regex=self.is_operator(requester.user)
            )
            return f"Added “{text.strip()}”." if added else f"“{text.strip()}” was already on the list."
        if operation == "remove":
            removed = await self._moderation.remove_filter(group, text)
            return f"Removed “{text.strip()}”." if removed else f"“{text.strip()}” is not on this list."
        if operation == "test":
            rule = await self._moderation.test(group, text)
            return f"Would be refused: matches “{rule}”." if rule else "Would pass the lists."
        raise InvalidInput("filter", f"{operation!r} is not an operation; use add, remove, list or test")

    async def filter_mode(self, requester: Requester, args: list[str]) -> str:
        """/filtermode reject | strike [limit] [window hours] [mute minutes] | exempt on|off."""
        scope = self._group_scope(requester)
        if not args:
            s = await self._moderation.settings_for(None if scope == BOT_WIDE else scope)
            return self._describe_mode(s)
        mode, rest = args[0].lower(), args[1:]
        changes: dict = {}
        if mode == "reject":
            changes["filter_mode"] = FilterMode.REJECT
        elif mode == "strike":
            changes["filter_mode"] = FilterMode.STRIKE
            for (name, allowed), typed in zip(NUMERIC_SETTINGS.items(), rest, strict=False):
                changes[name] = allowed.parse(typed)
        elif mode == "exempt" and rest and rest[0].lower() in {"on", "off"}:
            changes["admins_exempt"] = rest[0].lower() == "on"
        else:
            raise InvalidInput(
                "filtermode", "use: reject | strike [limit] [window hours] [mute minutes] | exempt on|off"
            )
        updated = await self._moderation.update_settings(scope, **changes)
        return "Updated. " + self._describe_mode(updated)

    @staticmethod
    def _describe_mode(s) -> str:
        if s.filter_mode is FilterMode.REJECT:
            text = "Mode: reject (blocked prompts are refused with the matching entry)."
        else:
            text = (
                f"Mode: strike ({s.strike_limit} refusals in {s.strike_window_hours:g} h mute a user "
                f"for {s.mute_minutes:g} min)."
            )
        return text + (" Admins are exempt." if s.admins_exempt else " Admins are checked too.")

    async def set_bot_enabled(self, requester: Requester, enabled: bool) -> str:
        """/bot on|off in a group."""
        scope = self._group_scope(requester)
        if scope == BOT_WIDE:
            raise InvalidInput("bot", "/bot on|off works in groups")
        await self._moderation.update_settings(scope, bot_enabled=enabled)
        return (
            "The bot is on in this group." if enabled else "The bot is off in this group until an admin sends /bot on."
        )

    # ------------------------------------------------------------ reports

    async def modlog(self, requester: Requester, limit: int = 20) -> str:
        scope = self._group_scope(requester)
        MODLOG_ENTRIES.check(limit)
        entries = await self._moderation.log(None if scope == BOT_WIDE else scope, limit)
        if not entries:
            return "The moderation log is empty."
        return "\n".join(
            f"{e.at:%Y-%m-%d %H:%M} {e.user_name or e.user_key} — {e.action} by {e.source} “{e.rule}”: {e.text[:80]}"
            for e in entries
        )

    async def stats(self, requester: Requester, days: int = 30) -> str:
        scope = self._group_scope(requester)
        STATS_DAYS.check(days)
        asked, days = days, self._retention.lookback_days(days)
        reach = self._stats_reach(asked, days)
        rows = await self._quotas.usage_stats(None if scope == BOT_WIDE else scope, utcnow() - timedelta(days=days))
        if not rows:
            return f"No jobs in the last {days} days.{reach}"
        total = sum(r.credits for r in rows)
        lines = [f"Last {days} days: {sum(r.jobs for r in rows)} jobs, {total} credits spent"]
        lines += [
            f"• {r.name or r.subject}: {r.jobs} jobs, {r.failures} failed/refunded, {r.credits} credits" for r in rows
        ]
        return "\n".join(lines) + reach

    def _stats_reach(self, asked: int, shown: int) -> str:
        """How far back /stats can see (a line to append), so a short answer is not taken for all history."""
        if self._retention.keeps_forever:
            return ""
        kept = self._retention.period
        if asked > shown:
            return f"\nYou asked for {asked} days, but only the last {kept} are kept: older records are deleted."
        return f"\nStats reach back {kept} at most: older records are deleted."

    async def credits(self, requester: Requester) -> str:
        """/credits (operators): PixVerse balances and account capacity."""
        self._require_operator(requester)
        try:
            availability = await self._upstream.scheduler_available()
            lines = []
            for account in availability.available:
                features = await self._upstream.features(email=account.email)
                lines.append(
                    f"• {account.email}: {features.credits_left} credits, "
                    f"{account.available}/{account.maxJobs} slots free"
                )
        except UpstreamError as exc:
            return f"Could not ask PixVerse: {exc}"
        return "PixVerse accounts:\n" + ("\n".join(lines) if lines else "(none configured)")
