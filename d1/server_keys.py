"""The server's own signing keys (table ``server_signing_keys``)."""

from __future__ import annotations

import logging
import os
import time

from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import decode_signing_key_base64, encode_signing_key_base64, get_verify_key
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from d1.database import D1Database

log = logging.getLogger(__name__)


async def load_or_create_signing_key(db: D1Database) -> SigningKey:
    """The current Ed25519 signing key; generated and stored on first start."""
    row = await db.prepare(
        "SELECT key_id, secret FROM server_signing_keys WHERE expired_ts IS NULL"
        " ORDER BY created_ts DESC LIMIT 1"
    ).first()
    if row is not None:
        version = row["key_id"].split(":", 1)[1]
        return decode_signing_key_base64("ed25519", version, row["secret"])
    version = "a_" + os.urandom(4).hex()  # key versions are [a-zA-Z0-9_]
    seed = NaclSigningKey.generate()
    key = decode_signing_key_base64("ed25519", version, encode_base64(bytes(seed)))
    await db.prepare(
        "INSERT INTO server_signing_keys (key_id, secret, public_key, created_ts)"
        " VALUES (?, ?, ?, ?)"
    ).bind(
        f"ed25519:{version}",
        encode_signing_key_base64(key),
        encode_base64(get_verify_key(key).encode()),
        int(time.time() * 1000),
    ).run()
    log.info("generated signing key ed25519:%s", version)
    return key
