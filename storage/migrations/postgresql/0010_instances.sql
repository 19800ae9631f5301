-- Several bot processes on one database (README "Scaling out"). Each running process is
-- an instance with a lease it renews while alive (bot/instances.py); a job names the
-- instance responsible for its next step (submitting, tracking or delivering it). A job
-- whose owner's lease has run out is taken over by another process.
CREATE TABLE instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    started_at  TEXT NOT NULL,
    lease_until TEXT COLLATE "C" NOT NULL
);

ALTER TABLE jobs ADD COLUMN owner TEXT COLLATE "C";

-- Chat-platform updates already handled (Telegram retries an update until one process
-- answers it; behind a load balancer the retry may reach another process).
CREATE TABLE handled_updates (
    platform   TEXT COLLATE "C" NOT NULL,
    update_id  BIGINT NOT NULL,
    handled_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (platform, update_id)
);
CREATE INDEX handled_updates_by_time ON handled_updates (handled_at);
