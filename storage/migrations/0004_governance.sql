-- Quotas: one ledger row per job (reserved → committed | refunded), overrides and resets.
CREATE TABLE quota_ledger (
    job_id     TEXT PRIMARY KEY,
    user_key   TEXT NOT NULL,
    user_name  TEXT NOT NULL DEFAULT '',
    group_key  TEXT,
    amount     INTEGER NOT NULL,   -- in the operator's quota unit (videos or credits)
    credits    INTEGER NOT NULL,   -- estimated PixVerse credits, for /stats
    state      TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'refunded')),
    created_at TEXT NOT NULL,
    settled_at TEXT
);
CREATE INDEX quota_ledger_by_user ON quota_ledger (user_key, created_at);
CREATE INDEX quota_ledger_by_group ON quota_ledger (group_key, created_at) WHERE group_key IS NOT NULL;
CREATE INDEX quota_ledger_by_time ON quota_ledger (created_at);

CREATE TABLE quota_overrides (
    scope   TEXT NOT NULL,         -- 'user' or 'group'
    subject TEXT NOT NULL,
    quota   INTEGER,               -- NULL: unlimited
    PRIMARY KEY (scope, subject)
);

CREATE TABLE quota_resets (
    scope    TEXT NOT NULL,
    subject  TEXT NOT NULL,
    reset_at TEXT NOT NULL,
    PRIMARY KEY (scope, subject)
);

-- Moderation and group settings.
CREATE TABLE group_settings (
    group_key TEXT PRIMARY KEY,
    settings  TEXT NOT NULL        -- JSON
);

CREATE TABLE group_filters (
    group_key  TEXT NOT NULL,
    entry      TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (group_key, entry)
);

CREATE TABLE strikes (
    id        INTEGER PRIMARY KEY,
    user_key  TEXT NOT NULL,
    group_key TEXT NOT NULL,
    at        TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX strikes_by_user ON strikes (user_key, group_key, at);

CREATE TABLE mutes (
    user_key  TEXT NOT NULL,
    group_key TEXT NOT NULL,
    until     TEXT NOT NULL,
    PRIMARY KEY (user_key, group_key)
);

CREATE TABLE bans (
    user_key  TEXT NOT NULL,
    scope     TEXT NOT NULL,       -- a group key, or '*' for the whole bot
    banned_by TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (user_key, scope)
);

CREATE TABLE moderation_log (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    group_key TEXT NOT NULL,
    user_key  TEXT NOT NULL,
    user_name TEXT NOT NULL,
    text      TEXT NOT NULL,
    rule      TEXT NOT NULL,
    source    TEXT NOT NULL,
    action    TEXT NOT NULL
);
CREATE INDEX moderation_log_by_group ON moderation_log (group_key, at);
