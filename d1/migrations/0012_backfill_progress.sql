-- Backfill bookkeeping per room joined over federation (workers/federation/backfill.py), so
-- that paging to the top of a room does not ask other servers again and again for history
-- they do not have.
CREATE TABLE backfill_progress (
    room_id         TEXT PRIMARY KEY,
    -- The room's create event is in our timeline: there is no older history to fetch.
    reached_start   INTEGER NOT NULL DEFAULT 0,
    -- The backward extremities (JSON list, sorted) of the last attempts that stored nothing,
    -- how many such attempts in a row, and when the next one for them may be made (ms).
    extremities     TEXT,
    empty_attempts  INTEGER NOT NULL DEFAULT 0,
    retry_after_ms  INTEGER NOT NULL DEFAULT 0
);
