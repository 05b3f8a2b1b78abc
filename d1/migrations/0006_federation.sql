-- Remote servers' signing keys (spec: server-server API "Retrieving server keys").
-- D1 is the truth; KV only caches rows of this table.
-- valid_until_ts is the effective limit: for a current key the lesser of the published
-- valid_until_ts and fetch time + 7 days; for an old key its expired_ts.
CREATE TABLE remote_server_keys (
    server_name     TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    verify_key      TEXT NOT NULL,      -- unpadded base64 public key
    valid_until_ts  INTEGER NOT NULL,
    expired_ts      INTEGER,            -- set when listed in old_verify_keys
    fetched_ts      INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- The latest self-signed /_matrix/key/v2/server response of each remote server, served
-- (countersigned) when we act as a notary.
CREATE TABLE remote_server_key_responses (
    server_name     TEXT PRIMARY KEY,
    response_json   TEXT NOT NULL,
    valid_until_ts  INTEGER NOT NULL,   -- as published
    fetched_ts      INTEGER NOT NULL
);
