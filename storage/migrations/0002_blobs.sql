-- Small binary objects kept across restarts (images uploaded for /animate).
CREATE TABLE blobs (
    id           TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
