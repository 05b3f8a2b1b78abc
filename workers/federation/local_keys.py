"""Our users' device and cross-signing keys in the form other servers get them, for
``/user/devices``, ``/user/keys/query`` and the ``m.device_list_update`` and
``m.signing_key_update`` EDUs.

Spec: server-server API "Device Management" and "End-to-End Encryption". The keys are those
``/keys/query`` serves (uploaded signatures merged in), minus what stays local: our
``unsigned`` additions (device display names), the user-signing key, and signatures on the
master key by anyone but its owner.
"""

from __future__ import annotations

from typing import Any

from d1 import e2e_keys
from workers.client.key_checks import merge_signatures

JsonDict = dict[str, Any]


async def device_keys(db: Any, user_id: str, device_ids: list[str] | None = None) -> dict[str, JsonDict]:
    """device_id -> signed device keys of a local user's devices (all when ``device_ids``
    is empty or None); devices without keys are absent."""
    devices = await e2e_keys.device_keys_of_user(db, user_id)
    if device_ids:
        devices = {d: k for d, k in devices.items() if d in device_ids}
    signatures = await e2e_keys.signatures_for(db, user_id)
    return {
        d: {k: v for k, v in merge_signatures(keys, signatures.get(d, {})).items() if k != "unsigned"}
        for d, keys in devices.items()
    }


async def cross_signing_keys(db: Any, user_id: str) -> dict[str, JsonDict]:
    """``{"master_key": ..., "self_signing_key": ...}`` of a local user, the ones it has."""
    cross = await e2e_keys.cross_signing_keys(db, user_id)
    out: dict[str, JsonDict] = {}
    if "master" in cross:
        master = cross["master"]
        signatures = (await e2e_keys.signatures_for(db, user_id)).get(master["public_key"], {})
        out["master_key"] = merge_signatures(
            master["key"], {s: v for s, v in signatures.items() if s == user_id}
        )
    if "self_signing" in cross:
        out["self_signing_key"] = cross["self_signing"]["key"]
    return out
