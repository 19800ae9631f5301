"""Storage behind the core's ports (`bot.ports`): jobs, blobs, governance, retention, own
settings — on SQLite (a file, the default) or PostgreSQL (a server), by BOT_DATABASE."""

from pathlib import Path

from storage.admission import SqlJobAdmission
from storage.blobs import SqlBlobStore
from storage.database import Database, open_database
from storage.governance import SqlGovernanceStore, SqlQuotaStore
from storage.jobs import SqlJobStore
from storage.postgres import INTEGRITY_ERRORS, PostgresDatabase, is_postgresql, open_postgres
from storage.retention import SqlRetentionStore
from storage.sql import SqlDatabase

__all__ = [
    "INTEGRITY_ERRORS",
    "Database",
    "PostgresDatabase",
    "SqlBlobStore",
    "SqlGovernanceStore",
    "SqlJobAdmission",
    "SqlJobStore",
    "SqlQuotaStore",
    "SqlRetentionStore",
    "SqlDatabase",
    "open_database",
    "open_storage",
]


async def open_storage(location: str | Path) -> SqlDatabase:
    """Open BOT_DATABASE: a `postgresql://` URL names a PostgreSQL server, anything else
    a SQLite file (created with its folder). The schema is brought up to date either way."""
    if is_postgresql(str(location)):
        return await open_postgres(str(location))
    return await open_database(location)
