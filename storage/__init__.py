"""SQLite storage behind the core's ports (`bot.ports`): jobs, blobs, governance, retention, own settings."""

from storage.admission import SqliteJobAdmission
from storage.blobs import SqliteBlobStore
from storage.database import Database, open_database
from storage.governance import SqliteGovernanceStore, SqliteQuotaStore
from storage.jobs import SqliteJobStore
from storage.retention import SqliteRetentionStore

__all__ = [
    "Database",
    "SqliteBlobStore",
    "SqliteGovernanceStore",
    "SqliteJobAdmission",
    "SqliteJobStore",
    "SqliteQuotaStore",
    "SqliteRetentionStore",
    "open_database",
]
