-- Retention (bot/retention.py) deletes old records in small batches; these indexes let
-- each batch find its rows without scanning the table.

-- Deleting a job makes SQLite look for jobs naming it as parent (the foreign key), and
-- pruning clears those references first: both look jobs up by parent_id.
CREATE INDEX jobs_by_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
-- Old settled ledger rows of one state (committed or refunded), oldest first.
CREATE INDEX quota_ledger_by_state ON quota_ledger (state, created_at);
CREATE INDEX moderation_log_by_time ON moderation_log (at);
CREATE INDEX strikes_by_time ON strikes (at);
