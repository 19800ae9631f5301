-- /queue and /cancel (bot/cancellation.py): a user's or a group's unfinished jobs, how long
-- recent videos took, and a cancel asked for while a job was being sent.

-- Who asked to cancel a job while it was being sent (SUBMITTING); NULL: nobody.
ALTER TABLE jobs ADD COLUMN cancel_requested_by TEXT;

-- The group whose admins govern the job (ChatRef.group_key: `<platform>:<group or chat id>`,
-- NULL for private chats), written with the requester like platform, chat_id and user_key.
ALTER TABLE jobs ADD COLUMN group_key TEXT;
UPDATE jobs SET group_key = CASE
    WHEN json_extract(requester, '$.chat.is_private') THEN NULL
    ELSE platform || ':' || COALESCE(json_extract(requester, '$.chat.group_id'), chat_id)
END;

-- A user's and a group's jobs not finished yet, oldest first (few, whatever the history).
CREATE INDEX jobs_unfinished_by_user ON jobs (user_key, created_at, id)
    WHERE state IN ('queued', 'submitting', 'submitted', 'generating');
CREATE INDEX jobs_unfinished_by_group ON jobs (group_key, created_at, id)
    WHERE group_key IS NOT NULL AND state IN ('queued', 'submitting', 'submitted', 'generating');

-- The newest videos made, for the time estimate (a median of how long they took).
CREATE INDEX jobs_completed_by_finish ON jobs (finished_at) WHERE outcome = 'completed';
