-- Media of other servers, fetched over federation and cached here.

-- A cached copy lives in the `media` table under its origin's server name (the key
-- (server_name, media_id) is already the mxc:// URI), with user_id NULL. fetched_ts marks
-- it as remote: when its bytes were fetched from the origin (NULL for local media).
-- Its thumbnails are rendered here from the cached bytes and kept in media_thumbnails.
ALTER TABLE media ADD COLUMN fetched_ts INTEGER;
