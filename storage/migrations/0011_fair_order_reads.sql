-- The fair order's reads at scale (issue 14): queue places (JobStore.fair_place, fair_slice)
-- are sums over queue_users, one row per user with queued work (some 10,000 at scale).
-- The fair-order index found those rows but not how many jobs each has queued, so every
-- sum looked each row up in the table (4-7 ms for 10,000 users, on the database thread,
-- with every unit queued behind it). Now the indexes answer alone:

-- 1. The fair order with each user's count: a walk in fair order (the scheduler's pages,
-- a round's users) and the sums over the users ahead read the index alone. Adding the
-- count costs no write: the old index was rewritten on every change of the count already
-- (its condition names the column).
DROP INDEX queue_users_fair;
CREATE INDEX queue_users_fair ON queue_users (last_served, oldest, user_key, queued) WHERE queued > 0;

-- 2. How many users have each number of queued jobs (fair_slice's rounds), in the order of
-- the count: a walk along this index, no sort of every user.
CREATE INDEX queue_users_by_length ON queue_users (queued) WHERE queued > 0;
