-- PostgreSQL's twin of ../0006_retention.sql (see there).
CREATE INDEX jobs_by_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX quota_ledger_by_state ON quota_ledger (state, created_at);
CREATE INDEX moderation_log_by_time ON moderation_log (at);
CREATE INDEX strikes_by_time ON strikes (at);
