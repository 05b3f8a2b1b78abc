-- Local accounts: users, profiles, devices, tokens, user-interactive auth sessions,
-- account data (with its stream), filters and push rules.

-- One row per local user. password_hash is bcrypt (NULL: no password login).
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    localpart      TEXT UNIQUE NOT NULL,
    password_hash  TEXT,
    is_guest       INTEGER NOT NULL DEFAULT 0,
    deactivated    INTEGER NOT NULL DEFAULT 0,
    created_ts     INTEGER NOT NULL
);

-- Global profile (displayname / avatar_url); a row exists for every local user.
CREATE TABLE profiles (
    user_id      TEXT PRIMARY KEY REFERENCES users(user_id),
    displayname  TEXT,
    avatar_url   TEXT
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL REFERENCES users(user_id),
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    created_ts    INTEGER NOT NULL,
    last_seen_ts  INTEGER,
    last_seen_ip  TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Access tokens are stored as the SHA-256 (hex) of the token, never in clear.
-- expires_ts NULL: never expires. refresh_token_id links a token to the refresh token that
-- can replace it; used is set the first time the token authenticates a request.
CREATE TABLE access_tokens (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash        TEXT UNIQUE NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(user_id),
    device_id         TEXT,
    created_ts        INTEGER NOT NULL,
    expires_ts        INTEGER,
    refresh_token_id  INTEGER,
    used              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_by_device ON access_tokens(user_id, device_id);

-- Refresh tokens (SHA-256 hex too). next_id: the refresh token issued when this one was
-- used; the old one stays usable until the new pair is used (spec: "Refreshing access tokens").
CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT UNIQUE NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(user_id),
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    next_id     INTEGER
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens(user_id, device_id);

-- User-interactive authentication sessions. completed: JSON list of finished stage types.
-- user_id is set for sessions started by an authenticated request; operation names the
-- endpoint the session belongs to so a session cannot be replayed on another endpoint.
CREATE TABLE ui_auth_sessions (
    session_id  TEXT PRIMARY KEY,
    operation   TEXT NOT NULL,
    user_id     TEXT,
    completed   TEXT NOT NULL DEFAULT '[]',
    created_ts  INTEGER NOT NULL
);

-- Monotonic positions of the streams sync reads. Allocate by
-- UPDATE ... SET position = position + 1 and read the new value in the same batch.
CREATE TABLE stream_positions (
    stream    TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
);
INSERT INTO stream_positions (stream, position) VALUES ('account_data', 0);

-- Global (room_id = '') and per-room account data. content is a JSON object;
-- stream_id is the 'account_data' stream position of the latest change.
CREATE TABLE account_data (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    stream_id  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_stream ON account_data(user_id, stream_id);

CREATE TABLE filters (
    user_id      TEXT NOT NULL,
    filter_id    INTEGER NOT NULL,
    filter_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Push rules a user added (kind override/content/room/sender/underride) and the user's
-- enabled/actions changes to server-default rules (is_default = 1, definition NULL).
-- priority orders user rules within a kind: higher first.
CREATE TABLE push_rules (
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    priority    INTEGER NOT NULL DEFAULT 0,
    definition  TEXT,
    enabled     INTEGER,
    actions     TEXT,
    PRIMARY KEY (user_id, kind, rule_id)
);
