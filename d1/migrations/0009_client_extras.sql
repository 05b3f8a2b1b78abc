-- Client-server extras: the relations index, the full-text search index, content reports
-- and OpenID tokens.

-- One row per accepted timeline event whose content has an `m.relates_to` with a
-- `rel_type` and an `event_id` (spec: "Forming relationships between events"). Written by
-- the room actor in the event's own batch (durable/room_persist.py insert_event).
CREATE TABLE event_relations (
    event_id    TEXT PRIMARY KEY,                -- the child
    relates_to  TEXT NOT NULL,                   -- the parent
    rel_type    TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    type        TEXT NOT NULL
);
CREATE INDEX event_relations_parent ON event_relations (relates_to, rel_type);
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, relates_to);

-- Full-text index of the searchable keys (spec: "Server Side Search", `room_events`):
-- `content.body` of m.room.message, `content.name` of m.room.name, `content.topic` (and the
-- text/plain `m.topic` body) of m.room.topic. The rowid is the event's stream_ordering.
CREATE VIRTUAL TABLE event_search USING fts5 (
    body, name, topic,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Reports of events, rooms and users (spec: "Reporting Content"); event_id and
-- reported_user_id are NULL for the kinds of report that have none.
CREATE TABLE content_reports (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter          TEXT NOT NULL,
    room_id           TEXT,
    event_id          TEXT,
    reported_user_id  TEXT,
    reason            TEXT,
    received_ts       INTEGER NOT NULL
);

-- OpenID access tokens (spec: client-server "OpenID", server-server "OpenID"), stored as
-- the SHA-256 hex of the token.
CREATE TABLE openid_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_ts  INTEGER NOT NULL
);
