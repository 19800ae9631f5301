-- Settings the bot keeps for itself (e.g. a generated webhook secret).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
