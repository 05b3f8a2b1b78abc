-- End-to-end encryption (device, one-time, fallback and cross-signing keys, signatures,
-- device-list changes, to-device inboxes, server-side key backups) and ephemeral data
-- (receipts, typing, presence). Sync reads each stream's position from stream_positions.

INSERT OR IGNORE INTO stream_positions (stream, position) VALUES
    ('to_device', 0), ('receipts', 0), ('typing', 0), ('device_lists', 0), ('presence', 0);

-- The signed device keys a device uploaded (the JSON as uploaded, without `unsigned`).
CREATE TABLE e2e_device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Unclaimed one-time keys; a claim deletes its row. key_json is the key object
-- (a string for unsigned algorithms, an object for signed ones).
CREATE TABLE e2e_one_time_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- At most one fallback key per device and algorithm; `used` is set when a claim hands it out.
CREATE TABLE e2e_fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- The current cross-signing keys of a user (usage: master, self_signing, user_signing).
-- public_key is the unpadded base64 ed25519 key (also the key's ID in /keys/signatures/upload).
CREATE TABLE e2e_cross_signing_keys (
    user_id     TEXT NOT NULL,
    usage       TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded through /keys/signatures/upload, merged into the signed objects when
-- served. target_key_id is a device ID or a cross-signing public key.
CREATE TABLE e2e_signatures (
    target_user_id  TEXT NOT NULL,
    target_key_id   TEXT NOT NULL,
    signer_user_id  TEXT NOT NULL,
    signer_key_id   TEXT NOT NULL,
    signature       TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

-- The latest 'device_lists' stream position at which a user's devices or keys changed.
CREATE TABLE device_list_changes (
    user_id    TEXT PRIMARY KEY,
    stream_id  INTEGER NOT NULL
);
CREATE INDEX device_list_changes_by_stream ON device_list_changes (stream_id);

-- To-device messages waiting for a device, in 'to_device' stream order. A row goes once the
-- device syncs with a since token at or past its stream_id.
CREATE TABLE to_device_inbox (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    stream_id  INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- Transaction IDs of /sendToDevice requests already processed (per sender and device).
CREATE TABLE to_device_txns (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Server-side key backup versions. Versions are never reused: a deleted one keeps its row.
-- etag grows whenever the version's keys change.
CREATE TABLE room_key_backup_versions (
    user_id    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    algorithm  TEXT NOT NULL,
    auth_data  TEXT NOT NULL,
    etag       INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE room_key_backup_sessions (
    user_id              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  INTEGER NOT NULL,
    forwarded_count      INTEGER NOT NULL,
    is_verified          INTEGER NOT NULL,
    session_data         TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- Receipts: one event per (room, type, user, thread); thread_id '' is unthreaded.
-- data is the receipt's JSON (ts, and thread_id when threaded).
CREATE TABLE receipts (
    room_id       TEXT NOT NULL,
    receipt_type  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL DEFAULT '',
    event_id      TEXT NOT NULL,
    data          TEXT NOT NULL,
    stream_id     INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_room_stream ON receipts (room_id, stream_id);

-- Who is typing where, until when (written by the room's typing actor, durable/typing.py).
CREATE TABLE typing (
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    expires_ts  INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- The 'typing' stream position of each room's latest change of typers.
CREATE TABLE typing_rooms (
    room_id    TEXT PRIMARY KEY,
    stream_id  INTEGER NOT NULL
);

-- Presence of local users. last_active_ts: the last time the user did something.
CREATE TABLE presence (
    user_id         TEXT PRIMARY KEY,
    state           TEXT NOT NULL,
    status_msg      TEXT,
    last_active_ts  INTEGER NOT NULL,
    stream_id       INTEGER NOT NULL
);
CREATE INDEX presence_by_stream ON presence (stream_id);
