-- End-to-end encryption across servers (spec: server-server API "Device Management",
-- "End-to-End Encryption"). Remote receipts, typing, presence and to-device messages use the
-- tables of 0004 (they are keyed by user ID, local or not).

-- The version of each local user's device list as other servers know it: the stream_id of
-- the latest m.device_list_update EDU sent for the user (one per changed device), which
-- GET /_matrix/federation/v1/user/devices/{userId} answers with.
CREATE TABLE device_list_outbound (
    user_id    TEXT PRIMARY KEY,
    stream_id  INTEGER NOT NULL
);

-- Remote users whose device lists this server caches: users sharing a room with a local
-- user, fetched once with /user/devices and kept current by m.device_list_update and
-- m.signing_key_update EDUs. stream_id is the remote server's version of the cached list.
CREATE TABLE remote_device_lists (
    user_id           TEXT PRIMARY KEY,
    stream_id         INTEGER NOT NULL,
    master_key        TEXT,              -- JSON, NULL when the user has none
    self_signing_key  TEXT,              -- JSON, NULL when the user has none
    fetched_ts        INTEGER NOT NULL
);

-- The devices of each cached remote user. keys_json is NULL for a device without E2E keys.
CREATE TABLE remote_devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    keys_json     TEXT,
    PRIMARY KEY (user_id, device_id)
);
