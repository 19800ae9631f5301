-- PostgreSQL's twin of ../0007_queue_users.sql (see there): the same table, kept in step
-- with `jobs` by triggers, here PL/pgSQL functions.
CREATE INDEX jobs_queued_by_user ON jobs (user_key, created_at, id) WHERE state = 'queued';
-- The first column is storage.sql.POSTGRESQL.off_peak, word for word.
CREATE INDEX jobs_queued_off_peak ON jobs ((COALESCE(((request::jsonb ->> 'off_peak')::boolean)::int, 0)), created_at, id)
    WHERE state = 'queued';

CREATE TABLE queue_users (
    user_key    TEXT COLLATE "C" PRIMARY KEY,
    queued      INTEGER NOT NULL DEFAULT 0,
    oldest      TEXT COLLATE "C",
    last_served TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX queue_users_fair ON queue_users (last_served, oldest, user_key) WHERE queued > 0;

INSERT INTO queue_users (user_key, queued, oldest)
SELECT user_key, COUNT(*), MIN(created_at) FROM jobs WHERE state = 'queued' GROUP BY user_key;

CREATE FUNCTION queue_users_enter(key TEXT, created TEXT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO queue_users AS q (user_key, queued, oldest) VALUES (key, 1, created)
    ON CONFLICT (user_key) DO UPDATE SET
        queued = q.queued + 1,
        oldest = CASE WHEN q.oldest IS NULL OR excluded.oldest < q.oldest THEN excluded.oldest ELSE q.oldest END;
$$;

CREATE FUNCTION queue_users_leave(key TEXT) RETURNS void LANGUAGE sql AS $$
    UPDATE queue_users SET
        queued = queued - 1,
        oldest = (SELECT MIN(created_at) FROM jobs WHERE user_key = key AND state = 'queued')
    WHERE user_key = key;
$$;

CREATE FUNCTION jobs_follow_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state = 'queued' THEN
            PERFORM queue_users_enter(NEW.user_key, NEW.created_at);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.state = 'queued' THEN
            PERFORM queue_users_leave(OLD.user_key);
        END IF;
    ELSE
        -- Leaving first, then entering: a job that moves to another user does both.
        IF OLD.state = 'queued' AND (NEW.state <> 'queued' OR OLD.user_key <> NEW.user_key) THEN
            PERFORM queue_users_leave(OLD.user_key);
        END IF;
        -- A job back in the queue (a retry) keeps its place: its created_at.
        IF NEW.state = 'queued' AND (OLD.state <> 'queued' OR OLD.user_key <> NEW.user_key) THEN
            PERFORM queue_users_enter(NEW.user_key, NEW.created_at);
        END IF;
        -- A job of theirs went out (the upstream accepted it): "served", for the fair order.
        IF OLD.state = 'submitting' AND NEW.state = 'submitted' THEN
            INSERT INTO queue_users (user_key, last_served) VALUES (NEW.user_key, NEW.updated_at)
            ON CONFLICT (user_key) DO UPDATE SET last_served = excluded.last_served;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_follow_queue AFTER INSERT OR UPDATE OF state, user_key OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_follow_queue();
