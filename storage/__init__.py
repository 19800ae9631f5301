"""SQLite storage behind the core's ports (`bot.ports`): jobs, blobs and the bot's own settings."""

from storage.admission import SqliteJobAdmission
from storage.blobs import SqliteBlobStore
from storage.database import Database, open_database
from storage.governance import SqliteGovernanceStore, SqliteQuotaStore
from storage.jobs import SqliteJobStore

__all__ = [
    "Database",
    "SqliteBlobStore",
    "SqliteGovernanceStore",
    "SqliteJobAdmission",
    "SqliteJobStore",
    "SqliteQuotaStore",
    "open_database",
]
