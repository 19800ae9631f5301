-- Images uploaded for /animate: in the database (bytea) like every other record, so
-- every process that shares the database sees them and one backup holds them.
CREATE TABLE blobs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    content_type TEXT NOT NULL,
    data         BYTEA NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL
);
