-- PostgreSQL's twin of ../0008_job_control.sql (see there): /queue and /cancel.

ALTER TABLE jobs ADD COLUMN cancel_requested_by TEXT;

-- Backfilled from the requester as SQLite's migration does it (json_extract there, ->> here).
ALTER TABLE jobs ADD COLUMN group_key TEXT COLLATE "C";
UPDATE jobs SET group_key = CASE
    WHEN (requester::jsonb -> 'chat' ->> 'is_private')::boolean THEN NULL
    ELSE platform || ':' || COALESCE(requester::jsonb -> 'chat' ->> 'group_id', chat_id)
END;

-- The state lists are storage.jobs.UNFINISHED_SQL, word for word.
CREATE INDEX jobs_unfinished_by_user ON jobs (user_key, created_at, id)
    WHERE state IN ('queued', 'submitting', 'submitted', 'generating');
CREATE INDEX jobs_unfinished_by_group ON jobs (group_key, created_at, id)
    WHERE group_key IS NOT NULL AND state IN ('queued', 'submitting', 'submitted', 'generating');

CREATE INDEX jobs_completed_by_finish ON jobs (finished_at) WHERE outcome = 'completed';
