-- PostgreSQL's twin of ../0011_fair_order_reads.sql (see there): the fair-order index
-- carries each user's count, and an index in the order of the count, so that queue places
-- are sums read from the indexes alone.
DROP INDEX queue_users_fair;
CREATE INDEX queue_users_fair ON queue_users (last_served, oldest, user_key) INCLUDE (queued) WHERE queued > 0;
CREATE INDEX queue_users_by_length ON queue_users (queued) WHERE queued > 0;
