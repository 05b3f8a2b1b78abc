-- Rooms, their event graphs and their state. Written only by each room's actor
-- (durable/room.py); workers read these tables for sync, history and state queries.

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    created_ts    INTEGER NOT NULL,
    is_public     INTEGER NOT NULL DEFAULT 0,    -- published in the room directory
    state_group   TEXT                           -- the group of the current state
);

-- Every event the server knows, with its outcome. The timeline of a room is the rows with
-- outlier = 0, soft_failed = 0 and rejected_reason IS NULL, in stream_ordering.
CREATE TABLE events (
    stream_ordering   INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          TEXT NOT NULL UNIQUE,
    room_id           TEXT NOT NULL,
    type              TEXT NOT NULL,
    state_key         TEXT,                      -- NULL for message events
    sender            TEXT NOT NULL,
    membership        TEXT,                      -- content.membership of m.room.member
    depth             INTEGER NOT NULL,
    origin_server_ts  INTEGER NOT NULL,
    json              TEXT NOT NULL,             -- the PDU (federation format), never changed
    rejected_reason   TEXT,                      -- failed the auth rules: never served or used
    soft_failed       INTEGER NOT NULL DEFAULT 0,
    outlier           INTEGER NOT NULL DEFAULT 0,  -- known (auth chain, invite) but not in the DAG
    state_group       TEXT,                      -- the state after this event
    redacted_by       TEXT,                      -- an accepted redaction of this event
    local_unsigned    TEXT                       -- JSON merged into `unsigned` when served
                                                 -- (invite_room_state, knock_room_state)
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_topo ON events (room_id, depth, stream_ordering);
CREATE INDEX events_membership ON events (state_key, type, stream_ordering);

-- (device, room, txnId) -> event, so a repeated PUT /send or /redact returns the first event ID.
CREATE TABLE event_txn_ids (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, room_id, txn_id)
);
CREATE INDEX event_txn_ids_event ON event_txn_ids (event_id);

-- State snapshots, delta-encoded: the state of a group is the state of prev_group with
-- `delta` ([[type, state_key, event_id], ...]) applied. prev_group NULL: delta is the full state.
CREATE TABLE state_groups (
    id          TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    prev_group  TEXT,
    chain_len   INTEGER NOT NULL,
    delta       TEXT NOT NULL
);

-- The room's current state (the state after its forward extremities, resolved).
CREATE TABLE current_state (
    room_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    membership  TEXT,                            -- for m.room.member
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_members ON current_state (type, state_key, membership);

CREATE TABLE forward_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE room_aliases (
    alias       TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    created_ts  INTEGER NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE room_forgotten (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
