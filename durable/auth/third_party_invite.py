"""The auth rule for an invite that redeems a third-party invite.

Spec: the `membership: invite` rule of each room version's authorisation rules, sub-rule
"If `content` has a `third_party_invite` property", and the `m.room.third_party_invite`
event in the Client-Server API (``public_key`` and ``public_keys``).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, Iterator

import nacl.exceptions
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from durable.errors import AuthError
from durable.events.event import Event, StateKey

_ED25519_PREFIX = "ed25519:"


def _public_keys(content: Mapping[str, Any]) -> Iterator[str]:
    """The keys of an ``m.room.third_party_invite``: ``public_key``, then each
    ``public_keys[].public_key``."""
    single = content.get("public_key")
    if isinstance(single, str):
        yield single
    many = content.get("public_keys")
    if isinstance(many, list):
        for entry in many:
            if isinstance(entry, Mapping):
                key = entry.get("public_key")
                if isinstance(key, str):
                    yield key


def signed_matches_any_key(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    """True if any ed25519 signature in ``signed`` verifies against any public key of the
    ``m.room.third_party_invite`` content (keys in standard or URL-safe unpadded base64)."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    keys = list(_public_keys(invite_content))
    if not keys:
        return False
    signed_object = dict(signed)
    for signer, by_key_id in signatures.items():
        if not isinstance(by_key_id, Mapping):
            continue
        for key_id in by_key_id:
            if not isinstance(key_id, str) or not key_id.startswith(_ED25519_PREFIX):
                continue
            for key_base64 in keys:
                try:
                    verify_key = decode_verify_key_bytes(key_id, decode_base64(key_base64))
                    verify_signed_json(signed_object, signer, verify_key)
                except (SignatureVerifyException, ValueError, binascii.Error, nacl.exceptions.CryptoError):
                    continue
                return True
    return False


def check_third_party_invite(
    event: Event, auth_state: Mapping[StateKey, Event], target_membership: str | None
) -> None:
    """Allow (return) or reject (raise) an invite carrying ``content.third_party_invite``.

    Reject if the target is banned; if ``signed`` is missing or lacks ``mxid``/``token``;
    if ``mxid`` is not the ``state_key``; if no ``m.room.third_party_invite`` with that token
    is in state; if the senders differ; or if no signature in ``signed`` verifies with one of
    that event's public keys.
    """
    if target_membership == "ban":
        raise AuthError("member invite (3pid): target user is banned")
    third_party_invite = event.content.get("third_party_invite")
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("member invite (3pid): third_party_invite has no 'signed' object")
    mxid = signed.get("mxid")
    token = signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("member invite (3pid): 'signed' lacks 'mxid' or 'token'")
    if mxid != event.state_key:
        raise AuthError("member invite (3pid): 'mxid' does not match state_key")
    invite_event = auth_state.get(("m.room.third_party_invite", token))
    if invite_event is None:
        raise AuthError("member invite (3pid): no m.room.third_party_invite for the token")
    if invite_event.sender != event.sender:
        raise AuthError("member invite (3pid): sender differs from the m.room.third_party_invite sender")
    if not signed_matches_any_key(signed, invite_event.content):
        raise AuthError("member invite (3pid): no signature in 'signed' matches a public key")
