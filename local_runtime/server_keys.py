"""``env.server_keys``: the verify keys of servers, for checking event signatures.

Our own keys come from memory; other servers' keys come from the federation key store
(workers/federation/key_store.py: KV as a cache, D1 as the truth, the origin or a notary
as the source), honouring ``valid_until_ts`` for room versions that enforce it.
"""

from __future__ import annotations

from typing import Any

from nacl.signing import VerifyKey
from signedjson.key import get_verify_key


class ServerKeys:
    def __init__(self, env: Any) -> None:
        self._env = env

    async def get_verify_key(self, server_name: str, key_id: str, at_ts: int | None) -> VerifyKey:
        """The key, or LookupError when it cannot be found or was not valid at ``at_ts``."""
        env = self._env
        if server_name == env.config.server_name:
            key = env.signing_key
            if key is None or f"{key.alg}:{key.version}" != key_id:
                raise LookupError(f"{key_id} is not one of our current keys")
            return get_verify_key(key)
        from workers.federation import key_store

        return await key_store.get_verify_key(env, server_name, key_id, at_ts)
