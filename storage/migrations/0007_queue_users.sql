-- The scheduler's view of the queue, so that a pass costs what it submits and reports,
-- not the length of the queue (bot/scheduler.py).

-- A user's queued jobs, oldest first: their next job to send, and their oldest one.
CREATE INDEX jobs_queued_by_user ON jobs (user_key, created_at, id) WHERE state = 'queued';
-- Queued off-peak jobs, oldest first: they take no account slot, so they go even when
-- every slot is taken. The first column is storage.sql.SQLITE.off_peak, word for word (an
-- equality on it is what makes SQLite prefer this index to jobs_by_state).
CREATE INDEX jobs_queued_off_peak ON jobs (COALESCE(json_extract(request, '$.off_peak'), 0), created_at, id)
    WHERE state = 'queued';

-- One row per user who has queued work (or had, and was served): how many jobs they have
-- queued, when their oldest was made, and when one of theirs was last sent. The triggers
-- below keep it in step with `jobs` in the same statement that changes a job, so every
-- process sharing the database sees the same queue.
CREATE TABLE queue_users (
    user_key    TEXT PRIMARY KEY,
    queued      INTEGER NOT NULL DEFAULT 0,
    oldest      TEXT,
    last_served TEXT NOT NULL DEFAULT ''
);
-- Fair order: never served first ('' sorts first), then served longest ago, then oldest job.
CREATE INDEX queue_users_fair ON queue_users (last_served, oldest, user_key) WHERE queued > 0;

INSERT INTO queue_users (user_key, queued, oldest)
SELECT user_key, COUNT(*), MIN(created_at) FROM jobs WHERE state = 'queued' GROUP BY user_key;

CREATE TRIGGER jobs_enter_queue_on_insert AFTER INSERT ON jobs WHEN NEW.state = 'queued'
BEGIN
    INSERT INTO queue_users (user_key, queued, oldest) VALUES (NEW.user_key, 1, NEW.created_at)
    ON CONFLICT (user_key) DO UPDATE SET
        queued = queued + 1,
        oldest = CASE WHEN oldest IS NULL OR excluded.oldest < oldest THEN excluded.oldest ELSE oldest END;
END;

-- A job back in the queue (a retry) keeps its place: its created_at.
CREATE TRIGGER jobs_enter_queue AFTER UPDATE OF state, user_key ON jobs
    WHEN NEW.state = 'queued' AND (OLD.state <> 'queued' OR OLD.user_key <> NEW.user_key)
BEGIN
    INSERT INTO queue_users (user_key, queued, oldest) VALUES (NEW.user_key, 1, NEW.created_at)
    ON CONFLICT (user_key) DO UPDATE SET
        queued = queued + 1,
        oldest = CASE WHEN oldest IS NULL OR excluded.oldest < oldest THEN excluded.oldest ELSE oldest END;
END;

-- Leaving the queue: one fewer, the oldest looked up again (one index seek).
CREATE TRIGGER jobs_leave_queue AFTER UPDATE OF state, user_key ON jobs
    WHEN OLD.state = 'queued' AND (NEW.state <> 'queued' OR OLD.user_key <> NEW.user_key)
BEGIN
    UPDATE queue_users SET
        queued = queued - 1,
        oldest = (SELECT MIN(created_at) FROM jobs WHERE user_key = OLD.user_key AND state = 'queued')
    WHERE user_key = OLD.user_key;
END;

-- A job of theirs went out (the upstream accepted it): what "served" means for the fair order.
CREATE TRIGGER jobs_served AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'submitting' AND NEW.state = 'submitted'
BEGIN
    INSERT INTO queue_users (user_key, last_served) VALUES (NEW.user_key, NEW.updated_at)
    ON CONFLICT (user_key) DO UPDATE SET last_served = excluded.last_served;
END;

CREATE TRIGGER jobs_leave_queue_on_delete AFTER DELETE ON jobs WHEN OLD.state = 'queued'
BEGIN
    UPDATE queue_users SET
        queued = queued - 1,
        oldest = (SELECT MIN(created_at) FROM jobs WHERE user_key = OLD.user_key AND state = 'queued')
    WHERE user_key = OLD.user_key;
END;
