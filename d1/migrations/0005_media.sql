-- Media repository metadata; the bytes live in the MEDIA bucket under blob_key.

-- One row per mxc://server_name/media_id known here. For local media, user_id is the
-- uploader. A row made by POST /_matrix/media/v1/create has uploaded_ts NULL (pending)
-- until its content is PUT, and may be used until unused_expires_ts.
CREATE TABLE media (
    server_name        TEXT NOT NULL,
    media_id           TEXT NOT NULL,
    user_id            TEXT,
    content_type       TEXT,
    upload_name        TEXT,
    size               INTEGER,
    sha256             TEXT,
    blob_key           TEXT,
    created_ts         INTEGER NOT NULL,
    uploaded_ts        INTEGER,
    unused_expires_ts  INTEGER,
    quarantined        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_name, media_id)
);
CREATE INDEX media_pending_by_user ON media(user_id, unused_expires_ts) WHERE uploaded_ts IS NULL;

-- Thumbnails, generated once per (media, requested size, method, animated) and kept.
-- width/height/method name the size asked for (a preset or the request itself);
-- actual_width/actual_height are the image's.
CREATE TABLE media_thumbnails (
    server_name    TEXT NOT NULL,
    media_id       TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    method         TEXT NOT NULL,
    animated       INTEGER NOT NULL,
    content_type   TEXT NOT NULL,
    actual_width   INTEGER NOT NULL,
    actual_height  INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    blob_key       TEXT NOT NULL,
    created_ts     INTEGER NOT NULL,
    PRIMARY KEY (server_name, media_id, width, height, method, animated),
    FOREIGN KEY (server_name, media_id) REFERENCES media(server_name, media_id) ON DELETE CASCADE
);
