-- PostgreSQL's twin of ../0001_jobs.sql (same columns, same meaning; see there).
-- Times are fixed-width ISO-8601 UTC text, as in SQLite, so the stores' SQL is the same
-- for both and a copy (`pixverse-bot migrate-db`) is verbatim. Text that is sorted or
-- compared is COLLATE "C" (byte order, as SQLite's), whatever the server's locale.
CREATE TABLE jobs (
    id                TEXT COLLATE "C" PRIMARY KEY,
    state             TEXT COLLATE "C" NOT NULL,
    outcome           TEXT,
    action            TEXT,
    parent_id         TEXT COLLATE "C" REFERENCES jobs (id),
    platform          TEXT NOT NULL,
    chat_id           TEXT NOT NULL,
    user_key          TEXT COLLATE "C" NOT NULL,
    video_id          TEXT,
    account           TEXT,
    result_url        TEXT,
    failure           TEXT,
    status_message_id TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT COLLATE "C" NOT NULL,
    updated_at        TEXT COLLATE "C" NOT NULL,
    submitted_at      TEXT COLLATE "C",
    finished_at       TEXT COLLATE "C",
    not_before        TEXT COLLATE "C",
    requester         TEXT NOT NULL,
    request           TEXT NOT NULL
);

CREATE INDEX jobs_by_state ON jobs (state, created_at, id);
CREATE INDEX jobs_by_user ON jobs (user_key, created_at, id);
CREATE INDEX jobs_by_video ON jobs (video_id) WHERE video_id IS NOT NULL;
