"""Quotas, group settings and moderation records in SQL (SQLite or PostgreSQL).

`SqlQuotaStore` implements the core's `QuotaStore` port; `SqlGovernanceStore`
its `GovernanceStore` port. A reservation is checked and recorded in one unit of work
that holds its subjects' locks, so two concurrent requests can never both take the last
unit; `storage.admission` does so together with inserting the job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain import utcnow
from bot.ports import AccessLists, ModerationLogEntry, QuotaCharge, QuotaReservation, QuotaUsage, UsageStats
from storage.database import from_sql_time, to_sql_time
from storage.sql import Dialect, SqlDatabase, Transaction, placeholders

# What counts against a quota: what is running and what has succeeded.
_COUNTED = "state IN ('reserved', 'committed')"
_SUBJECT_COLUMN = {"user": "user_key", "group": "group_key"}


def _since_clause(since: datetime | None) -> tuple[str, tuple[Any, ...]]:
    return ("", ()) if since is None else (" AND created_at >= ?", (to_sql_time(since),))


def _fits(dialect: Dialect, charge: QuotaCharge, amount: int) -> tuple[str, tuple[Any, ...]]:
    """SQL that is true when `amount` more fits `charge` (usage counted since the window start or a reset)."""
    column = _SUBJECT_COLUMN[charge.scope]
    since = to_sql_time(charge.since) if charge.since else ""
    # Times are fixed-width ISO text, so the greater is the later one ('' is the earliest).
    reset = "COALESCE((SELECT reset_at FROM quota_resets WHERE scope = ? AND subject = ?), '')"
    sql = (
        f"(SELECT COALESCE(SUM(amount), 0) FROM quota_ledger WHERE {column} = ? AND {_COUNTED}"
        f" AND created_at >= {dialect.later('?', reset)}) + ? <= ?"
    )
    return sql, (charge.subject, since, charge.scope, charge.subject, amount, charge.limit)


async def quota_refusal(transaction: Transaction, reservation: QuotaReservation) -> QuotaCharge | None:
    """The first charge `reservation` would exceed, or None when it fits them all.

    Read inside the caller's unit of work, which must hold the lock of every charge's
    subject (`Transaction.lock`, see `storage.admission`), so recording it next in the
    same unit is atomic: two requests can never both take the last unit.
    """
    for charge in reservation.charges:
        sql, params = _fits(transaction.dialect, charge, reservation.amount)
        row = await transaction.fetch_one(f"SELECT {sql}", params)
        if row is None or not row[0]:
            return charge
    return None


async def record_reservation(transaction: Transaction, job_id: str, reservation: QuotaReservation) -> None:
    """Write `reservation` for `job_id` into the ledger (checked first with `quota_refusal`)."""
    await transaction.execute(
        "INSERT INTO quota_ledger (job_id, user_key, user_name, group_key, amount, credits, state, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?)",
        (
            job_id,
            reservation.user_key,
            reservation.user_name,
            reservation.group_key,
            reservation.amount,
            reservation.credits,
            to_sql_time(reservation.at or utcnow()),
        ),
    )


class SqlQuotaStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def settle(self, job_id: str, *, commit: bool) -> bool:
        rows = await self._db.write(
            "UPDATE quota_ledger SET state = ?, settled_at = ?"
            " WHERE job_id = ? AND state = 'reserved' RETURNING job_id",
            ("committed" if commit else "refunded", to_sql_time(utcnow()), job_id),
        )
        return bool(rows)

    async def release_orphans(self) -> int:
        """Refund reservations whose job was never stored (left by a version that reserved
        and inserted in two steps, or by a direct `reserve`)."""
        rows = await self._db.write(
            "UPDATE quota_ledger SET state = 'refunded', settled_at = ?"
            " WHERE state = 'reserved' AND job_id NOT IN (SELECT id FROM jobs) RETURNING job_id",
            (to_sql_time(utcnow()),),
        )
        return len(rows)

    async def usage(self, scope: str, subject: str, since: datetime | None) -> QuotaUsage:
        column = _SUBJECT_COLUMN[scope]
        reset = await self.reset_at(scope, subject)
        effective = max((t for t in (since, reset) if t is not None), default=None)
        where, params = _since_clause(effective)
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(CASE WHEN state = 'committed' THEN amount END), 0) AS committed,"
            " COALESCE(SUM(CASE WHEN state = 'reserved' THEN amount END), 0) AS reserved"
            f" FROM quota_ledger WHERE {column} = ?{where}",
            (subject, *params),
        )
        assert row is not None
        return QuotaUsage(committed=int(row["committed"]), reserved=int(row["reserved"]))

    async def get_override(self, scope: str, subject: str) -> tuple[bool, int | None]:
        row = await self._db.fetch_one(
            "SELECT quota FROM quota_overrides WHERE scope = ? AND subject = ?", (scope, subject)
        )
        return (False, None) if row is None else (True, row["quota"])

    async def overrides(self, at_most: int) -> dict[tuple[str, str], int | None] | None:
        rows = await self._db.fetch_all("SELECT scope, subject, quota FROM quota_overrides LIMIT ?", (at_most + 1,))
        if len(rows) > at_most:
            return None
        return {(row["scope"], row["subject"]): row["quota"] for row in rows}

    async def set_override(self, scope: str, subject: str, limit: int | None) -> None:
        await self._db.write(
            "INSERT INTO quota_overrides (scope, subject, quota) VALUES (?, ?, ?)"
            " ON CONFLICT (scope, subject) DO UPDATE SET quota = excluded.quota",
            (scope, subject, limit),
        )

    async def reset(self, scope: str, subject: str, at: datetime) -> None:
        await self._db.write(
            "INSERT INTO quota_resets (scope, subject, reset_at) VALUES (?, ?, ?)"
            " ON CONFLICT (scope, subject) DO UPDATE SET reset_at = excluded.reset_at",
            (scope, subject, to_sql_time(at)),
        )

    async def reset_at(self, scope: str, subject: str) -> datetime | None:
        row = await self._db.fetch_one(
            "SELECT reset_at FROM quota_resets WHERE scope = ? AND subject = ?", (scope, subject)
        )
        return None if row is None else from_sql_time(row["reset_at"])


class SqlGovernanceStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def group_settings(self, group_key: str) -> dict[str, Any] | None:
        row = await self._db.fetch_one("SELECT settings FROM group_settings WHERE group_key = ?", (group_key,))
        return None if row is None else json.loads(row["settings"])

    async def all_group_settings(self) -> dict[str, dict[str, Any]]:
        rows = await self._db.fetch_all("SELECT group_key, settings FROM group_settings")
        return {row["group_key"]: json.loads(row["settings"]) for row in rows}

    async def save_group_settings(self, group_key: str, settings: dict[str, Any]) -> None:
        await self._db.write(
            "INSERT INTO group_settings (group_key, settings) VALUES (?, ?)"
            " ON CONFLICT (group_key) DO UPDATE SET settings = excluded.settings",
            (group_key, json.dumps(settings, sort_keys=True)),
        )

    async def filters(self, group_key: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT entry FROM group_filters WHERE group_key = ? ORDER BY created_at, entry", (group_key,)
        )
        return [row["entry"] for row in rows]

    async def add_filter(self, group_key: str, entry: str, added_by: str) -> bool:
        rows = await self._db.write(
            "INSERT INTO group_filters (group_key, entry, added_by, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING entry",
            (group_key, entry, added_by, to_sql_time(utcnow())),
        )
        return bool(rows)

    async def remove_filter(self, group_key: str, entry: str) -> bool:
        rows = await self._db.write(
            "DELETE FROM group_filters WHERE group_key = ? AND entry = ? RETURNING entry", (group_key, entry)
        )
        return bool(rows)

    async def add_strike(self, user_key: str, group_key: str, at: datetime, reason: str) -> None:
        await self._db.write(
            "INSERT INTO strikes (user_key, group_key, at, reason) VALUES (?, ?, ?, ?)",
            (user_key, group_key, to_sql_time(at), reason),
        )

    async def count_strikes(self, user_key: str, group_key: str, since: datetime) -> int:
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM strikes WHERE user_key = ? AND group_key = ? AND at >= ?",
            (user_key, group_key, to_sql_time(since)),
        )
        return int(row["n"]) if row else 0

    async def set_mute(self, user_key: str, group_key: str, until: datetime) -> None:
        await self._db.write(
            "INSERT INTO mutes (user_key, group_key, until) VALUES (?, ?, ?)"
            " ON CONFLICT (user_key, group_key) DO UPDATE SET until = excluded.until",
            (user_key, group_key, to_sql_time(until)),
        )

    async def remove_mutes(self, user_key: str, group_key: str | None, now: datetime) -> bool:
        """Lift the user's mute and forget their strikes, in one group or (None) everywhere.

        True when a mute still in force was lifted. The strikes go too: kept, the next
        refused prompt would mute again at once.
        """
        where, params = (
            ("user_key = ?", (user_key,))
            if group_key is None
            else (
                "user_key = ? AND group_key = ?",
                (user_key, group_key),
            )
        )

        async def lift(transaction: Transaction) -> bool:
            await transaction.execute(f"DELETE FROM strikes WHERE {where}", params)
            lifted = await transaction.fetch_all(f"DELETE FROM mutes WHERE {where} RETURNING until", params)
            return any(from_sql_time(row["until"]) > now for row in lifted)

        return await self._db.transaction(lift)

    async def known_name(self, user_key: str) -> str | None:
        """The name the user last went by in a job or a moderation record, if any."""
        row = await self._db.fetch_one(
            "SELECT user_name FROM ("
            " SELECT user_name, created_at AS at FROM quota_ledger WHERE user_key = ? AND user_name != ''"
            " UNION ALL"
            " SELECT user_name, at FROM moderation_log WHERE user_key = ? AND user_name != ''"
            ") AS names ORDER BY at DESC LIMIT 1",
            (user_key, user_key),
        )
        return None if row is None else str(row["user_name"])

    async def set_ban(self, user_key: str, scope: str, banned_by: str, at: datetime) -> None:
        await self._db.write(
            "INSERT INTO bans (user_key, scope, banned_by, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_key, scope) DO UPDATE SET banned_by = excluded.banned_by, at = excluded.at",
            (user_key, scope, banned_by, to_sql_time(at)),
        )

    async def remove_ban(self, user_key: str, scope: str) -> bool:
        rows = await self._db.write(
            "DELETE FROM bans WHERE user_key = ? AND scope = ? RETURNING user_key", (user_key, scope)
        )
        return bool(rows)

    async def access(self, user_key: str, ban_scopes: Sequence[str], mute_scope: str) -> tuple[bool, datetime | None]:
        """(banned in any of `ban_scopes`, muted until) in one query: every command asks this."""
        marks = placeholders(len(ban_scopes))
        row = await self._db.fetch_one(
            f"SELECT EXISTS (SELECT 1 FROM bans WHERE user_key = ? AND scope IN ({marks})) AS banned,"
            " (SELECT until FROM mutes WHERE user_key = ? AND group_key = ?) AS until",
            (user_key, *ban_scopes, user_key, mute_scope),
        )
        assert row is not None
        return bool(row["banned"]), from_sql_time(row["until"]) if row["until"] else None

    async def access_lists(self, at_most: int, now: datetime) -> AccessLists | None:
        rows = await self._db.fetch_all(
            "SELECT * FROM (SELECT 'ban' AS kind, user_key, scope, NULL AS until FROM bans LIMIT ?) AS b"
            " UNION ALL SELECT * FROM (SELECT 'mute' AS kind, user_key, group_key, until FROM mutes"
            " WHERE until > ? LIMIT ?) AS m",
            (at_most + 1, to_sql_time(now), at_most + 1),
        )
        if len(rows) > at_most:
            return None
        bans = frozenset((row["user_key"], row["scope"]) for row in rows if row["kind"] == "ban")
        mutes = {(row["user_key"], row["scope"]): from_sql_time(row["until"]) for row in rows if row["kind"] == "mute"}
        return AccessLists(bans, mutes)

    async def log_moderation(self, entry: ModerationLogEntry) -> None:
        await self._db.write(
            "INSERT INTO moderation_log (at, group_key, user_key, user_name, text, rule, source, action)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                to_sql_time(entry.at),
                entry.group_key,
                entry.user_key,
                entry.user_name,
                entry.text,
                entry.rule,
                entry.source,
                entry.action,
            ),
        )

    async def moderation_log(self, group_key: str | None, limit: int) -> list[ModerationLogEntry]:
        where, params = ("WHERE group_key = ?", (group_key,)) if group_key else ("", ())
        rows = await self._db.fetch_all(
            "SELECT at, group_key, user_key, user_name, text, rule, source, action FROM moderation_log"
            f" {where} ORDER BY at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            ModerationLogEntry(
                at=from_sql_time(r["at"]),
                group_key=r["group_key"],
                user_key=r["user_key"],
                user_name=r["user_name"],
                text=r["text"],
                rule=r["rule"],
                source=r["source"],
                action=r["action"],
            )
            for r in rows
        ]

    async def usage_stats(self, group_key: str | None, since: datetime) -> list[UsageStats]:
        where, params = (" AND group_key = ?", (group_key,)) if group_key else ("", ())
        rows = await self._db.fetch_all(
            "SELECT user_key, MAX(user_name) AS name, COUNT(*) AS jobs,"
            " SUM(CASE WHEN state = 'refunded' THEN 1 ELSE 0 END) AS failures,"
            " COALESCE(SUM(CASE WHEN state = 'committed' THEN credits END), 0) AS credits"
            f" FROM quota_ledger WHERE created_at >= ?{where} GROUP BY user_key ORDER BY credits DESC, jobs DESC",
            (to_sql_time(since), *params),
        )
        return [
            UsageStats(r["user_key"], r["name"], int(r["jobs"]), int(r["failures"]), int(r["credits"])) for r in rows
        ]
