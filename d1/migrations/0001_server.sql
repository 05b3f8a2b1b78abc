-- The server's own Ed25519 signing keys. The current key has expired_ts NULL;
-- old keys stay for /_matrix/key/v2/server `old_verify_keys`.
CREATE TABLE server_signing_keys (
    key_id      TEXT PRIMARY KEY,
    secret      TEXT NOT NULL,          -- unpadded base64 seed; never logged
    public_key  TEXT NOT NULL,          -- unpadded base64
    created_ts  INTEGER NOT NULL,
    expired_ts  INTEGER
);
