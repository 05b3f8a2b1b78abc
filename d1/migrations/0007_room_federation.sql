-- Room federation.

-- Transactions received from other servers: a repeated txnId from the same origin gets
-- the first answer again (spec: server-server "Transactions").
CREATE TABLE federation_inbound_txns (
    origin      TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    response    TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, txn_id)
);

-- Versions of rooms this server knows only through an invite or a knock over federation
-- (it has no `rooms` row for them until a local user joins).
CREATE TABLE remote_room_versions (
    room_id       TEXT PRIMARY KEY,
    room_version  TEXT NOT NULL
);
