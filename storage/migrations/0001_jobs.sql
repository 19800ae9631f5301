-- Jobs: one row per generation. What the bot looks jobs up by is a real, indexed
-- column; who asked (`requester`) and what was asked (`request`) are JSON documents
-- (platform, chat_id and user_key copy the requester's fields for queries).
-- Times are fixed-width ISO-8601 UTC text, so text order is time order.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    state             TEXT NOT NULL,
    outcome           TEXT,
    action            TEXT,
    parent_id         TEXT REFERENCES jobs (id),
    platform          TEXT NOT NULL,
    chat_id           TEXT NOT NULL,
    user_key          TEXT NOT NULL,
    video_id          TEXT,
    account           TEXT,
    result_url        TEXT,
    failure           TEXT,
    status_message_id TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    submitted_at      TEXT,
    finished_at       TEXT,
    not_before        TEXT,
    requester         TEXT NOT NULL,
    request           TEXT NOT NULL
);

-- The scheduler's and tracker's scans (jobs in a state, oldest first) and queue positions.
CREATE INDEX jobs_by_state ON jobs (state, created_at, id);
-- A user's recent jobs, newest first.
CREATE INDEX jobs_by_user ON jobs (user_key, created_at, id);
-- Webhooks and polling name the upstream video; queued jobs have none yet.
CREATE INDEX jobs_by_video ON jobs (video_id) WHERE video_id IS NOT NULL;
