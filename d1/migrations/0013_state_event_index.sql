-- Only state events need the (state_key, type) index: every query through it names a
-- state_key (which implies NOT NULL), so message events (most rows) skip one index insert.
DROP INDEX events_membership;
CREATE INDEX events_membership ON events (state_key, type, stream_ordering) WHERE state_key IS NOT NULL;
