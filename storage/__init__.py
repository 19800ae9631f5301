"""SQLite storage behind the core's ports (`bot.ports`): jobs, blobs and the bot's own settings."""

from storage.blobs import SqliteBlobStore
from storage.database import Database, open_database
from storage.jobs import SqliteJobStore

__all__ = ["Database", "SqliteBlobStore", "SqliteJobStore", "open_database"]
