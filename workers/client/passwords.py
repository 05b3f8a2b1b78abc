"""Password hashing with bcrypt, off the event loop.

bcrypt reads at most 72 bytes, so the password is first reduced to the base64 of its
SHA-256 digest (44 bytes): every byte of a long password counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import bcrypt

from workers.errors import Codes, MatrixError

MAX_PASSWORD_BYTES = 512
BCRYPT_ROUNDS = 12


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def check_password_shape(password: object) -> str:
    """The password if it is a usable string; 400 otherwise."""
    if not isinstance(password, str):
        raise MatrixError(400, Codes.BAD_JSON, "password must be a string")
    if not password:
        raise MatrixError(400, Codes.WEAK_PASSWORD, "password must not be empty")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise MatrixError(400, Codes.INVALID_PARAM, "password is too long")
    return password


async def hash_password(password: str) -> str:
    rounds = BCRYPT_ROUNDS  # read at call time so tests can lower the cost

    def work() -> str:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")

    return await asyncio.to_thread(work)


async def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None or not isinstance(password, str):
        return False

    def work() -> bool:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))

    return await asyncio.to_thread(work)
