-- PostgreSQL's twin of ../0009_accept_path.sql (see there): what every accepted command
-- pays, made cheaper; the same tables and columns, so both backends answer the same.

-- 1. The quota check sums `amount` over a user's (or group's) counted rows since the window
-- start: with state and amount in the index (INCLUDE: carried, not sorted by), PostgreSQL
-- answers it by an index-only scan. The keys are the old ones, so the indexes serve
-- everything they served before.
DROP INDEX quota_ledger_by_user;
CREATE INDEX quota_ledger_by_user ON quota_ledger (user_key, created_at) INCLUDE (state, amount);
DROP INDEX quota_ledger_by_group;
CREATE INDEX quota_ledger_by_group ON quota_ledger (group_key, created_at) INCLUDE (state, amount)
    WHERE group_key IS NOT NULL;

-- 2. Whether a job is off-peak, as a column of its own (storage.jobs.OFF_PEAK_SQL, written
-- with `request` by storage.jobs._columns), backfilled from the request's JSON; the index
-- of queued off-peak jobs holds those only.
ALTER TABLE jobs ADD COLUMN off_peak INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET off_peak = 1 WHERE COALESCE((request::jsonb ->> 'off_peak')::boolean, false);
DROP INDEX jobs_queued_off_peak;
CREATE INDEX jobs_queued_off_peak ON jobs (off_peak, created_at, id) WHERE state = 'queued' AND off_peak = 1;
