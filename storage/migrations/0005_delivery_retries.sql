-- Delivery retries: how many tries to post a job's outcome have failed, and when the
-- next one may run. Kept with the job so a restart keeps the backoff.
ALTER TABLE jobs ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN deliver_after TEXT;
