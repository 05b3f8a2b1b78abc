-- Push: evaluated push actions per (user, event), how far each user's rooms have been
-- evaluated, and pushers (spec: client-server "Push Notifications").

-- The events a user's push rules said notify, one row per (user, event). Filled lazily by
-- workers/push/unread.py (at /sync, /notifications or by the user's pusher actor), so each
-- event is evaluated once per user. actions: the JSON of the matching rule's actions.
-- thread_id: the thread root of an event in a thread (one m.thread hop), else 'main'.
CREATE TABLE event_push_actions (
    user_id          TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    room_id          TEXT NOT NULL,
    stream_ordering  INTEGER NOT NULL,
    highlight        INTEGER NOT NULL,
    actions          TEXT NOT NULL,
    thread_id        TEXT NOT NULL DEFAULT 'main',
    ts               INTEGER NOT NULL,               -- origin_server_ts of the event
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_id, stream_ordering);
CREATE INDEX event_push_actions_stream ON event_push_actions (user_id, stream_ordering);

-- Every timeline event of the room with stream_ordering <= evaluated_upto has been evaluated
-- for the user (those that notify have a row above).
CREATE TABLE push_evaluated (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    evaluated_upto  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

-- HTTP pushers (POST /pushers/set), one per (user, app_id, pushkey). data: the JSON of the
-- client's `data` object (with `url`). pushkey_ts: when the pushkey was last set (seconds).
CREATE TABLE pushers (
    user_id              TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 TEXT NOT NULL,
    device_id            TEXT,                       -- the device whose token set it
    pushkey_ts           INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
