"""Pure checks on uploaded key objects: shapes and Ed25519 signatures.

Spec: appendices "Signing JSON" (a signature covers the object without ``signatures`` and
``unsigned``) and client-server API "Device keys" / "Cross-signing". Signatures are checked
with signedjson; nothing here does I/O.
"""

from __future__ import annotations

import binascii
from typing import Any

import nacl.exceptions
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from workers.errors import Codes, MatrixError

INVALID_SIGNATURE = "M_INVALID_SIGNATURE"
CROSS_SIGNING_USAGES = ("master", "self_signing", "user_signing")

JsonDict = dict[str, Any]


def invalid(message: str) -> MatrixError:
    return MatrixError(400, Codes.INVALID_PARAM, message)


def bad_signature(message: str) -> MatrixError:
    return MatrixError(400, INVALID_SIGNATURE, message)


def strip_signed(obj: JsonDict) -> JsonDict:
    """The part of a signed object its signatures cover."""
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def verify_signature(obj: JsonDict, signer: str, key_id: str, public_key: str) -> bool:
    """True when ``obj`` carries a valid signature by ``signer`` with the Ed25519 key
    ``key_id`` ("ed25519:<version>") whose public half is ``public_key`` (unpadded base64)."""
    algorithm, _, version = key_id.partition(":")
    if algorithm != "ed25519" or not version:
        return False
    try:
        verify_key = decode_verify_key_bytes(key_id, decode_base64(public_key))
        verify_signed_json(obj, signer, verify_key)
    except (SignatureVerifyException, ValueError, binascii.Error, nacl.exceptions.CryptoError):
        return False
    return True


def check_device_keys(keys: Any, user_id: str, device_id: str) -> JsonDict:
    """The device keys to store (without ``unsigned``), after checking their shape, that they
    belong to this user and device, and that the device's Ed25519 key signed them."""
    if not isinstance(keys, dict):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys must be an object")
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        raise invalid("device_keys.user_id and device_id must be those of the uploading device")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys.algorithms must be a list of strings")
    key_map = keys.get("keys")
    if not isinstance(key_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in key_map.items()
    ):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys.keys must map key IDs to strings")
    if not isinstance(keys.get("signatures"), dict):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys.signatures must be an object")
    ed25519_id = f"ed25519:{device_id}"
    if ed25519_id not in key_map:
        raise invalid(f"device_keys.keys has no {ed25519_id} key")
    stored = {k: v for k, v in keys.items() if k != "unsigned"}
    if not verify_signature(stored, user_id, ed25519_id, key_map[ed25519_id]):
        raise bad_signature("device_keys are not signed by the device's own Ed25519 key")
    return stored


def split_key_id(algorithm_and_id: Any) -> tuple[str, str]:
    """("signed_curve25519", "AAAAHQ") from "signed_curve25519:AAAAHQ"."""
    if not isinstance(algorithm_and_id, str):
        raise invalid("key IDs must be strings")
    algorithm, sep, key_id = algorithm_and_id.partition(":")
    if not sep or not algorithm or not key_id:
        raise invalid(f"key ID {algorithm_and_id!r} is not <algorithm>:<key_id>")
    return algorithm, key_id


def cross_signing_public_key(key: Any, user_id: str, usage: str) -> str:
    """The unpadded base64 public key of an uploaded cross-signing key, after checking that
    it is the user's, declares ``usage`` and holds exactly one Ed25519 key."""
    if not isinstance(key, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{usage} key must be an object")
    if key.get("user_id") != user_id:
        raise invalid(f"{usage} key must belong to {user_id}")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise invalid(f"{usage} key must list {usage!r} in usage")
    key_map = key.get("keys")
    if not isinstance(key_map, dict) or len(key_map) != 1:
        raise invalid(f"{usage} key must hold exactly one key")
    ((key_id, public_key),) = key_map.items()
    if key_id != f"ed25519:{public_key}" or not isinstance(public_key, str):
        raise invalid(f"{usage} key must be ed25519:<public key> -> <public key>")
    try:
        if len(decode_base64(public_key)) != 32:
            raise invalid(f"{usage} key is not a 32-byte Ed25519 key")
    except (ValueError, binascii.Error):
        raise invalid(f"{usage} key is not unpadded base64") from None
    signatures = key.get("signatures", {})
    if not isinstance(signatures, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{usage} key signatures must be an object")
    return public_key


def merge_signatures(obj: JsonDict, extra: dict[str, dict[str, str]]) -> JsonDict:
    """A copy of ``obj`` with ``extra`` (signer -> key ID -> signature) added to its
    signatures."""
    if not extra:
        return obj
    merged = {signer: dict(sigs) for signer, sigs in obj.get("signatures", {}).items()}
    for signer, sigs in extra.items():
        merged.setdefault(signer, {}).update(sigs)
    return {**obj, "signatures": merged}
