"""A TestClient homeserver with users and devices made straight in D1 (password
``PASSWORD``, cheap bcrypt), and helpers that build correctly signed E2E key objects with
signedjson."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from starlette.testclient import TestClient

from d1.accounts import insert_user
from d1.devices import upsert_device
from d1.tokens import insert_access_token
from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.auth import hash_token
from workers.client import passwords

SERVER = "hs.test"
V3 = "/_matrix/client/v3"
PASSWORD = "correct horse battery staple"


def make_client(data_dir: Path) -> TestClient:
    return TestClient(build_app(load_config(data_dir=str(data_dir), server_name=SERVER)))


@dataclass
class Device:
    """A user's device with its Ed25519 signing key (as a client holds it)."""

    harness: "Harness"
    user_id: str
    device_id: str
    token: str
    signing_key: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def ed25519(self) -> str:
        return encode_verify_key_base64(get_verify_key(self.signing_key))

    # --- raw requests -----------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return self.harness.client.request(
            method, f"{V3}{path}", headers=self.headers, json=body, params=params or None
        )

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.request(method, path, body, **params)
        assert response.status_code == 200, response.text
        return response.json()

    # --- keys -------------------------------------------------------------------------
    def device_keys(self, curve25519: str = "curve_" + "A" * 37) -> dict[str, Any]:
        keys = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": curve25519,
                f"ed25519:{self.device_id}": self.ed25519,
            },
        }
        return sign_json(keys, self.user_id, self.signing_key)

    def one_time_keys(self, start: int, count: int) -> dict[str, Any]:
        return {
            f"signed_curve25519:K{n:05d}": sign_json({"key": f"otk{n}"}, self.user_id, self.signing_key)
            for n in range(start, start + count)
        }

    def upload(self, **body: Any) -> Any:
        return self.ok("POST", "/keys/upload", body)

    # --- rooms and sync ---------------------------------------------------------------
    def create_room(self, **body: Any) -> str:
        return self.ok("POST", "/createRoom", body)["room_id"]

    def join(self, room_id: str) -> None:
        self.ok("POST", f"/rooms/{room_id}/join", {})

    def leave(self, room_id: str) -> None:
        self.ok("POST", f"/rooms/{room_id}/leave", {})

    def send(self, room_id: str, text: str) -> str:
        self.harness.txn += 1
        return self.ok(
            "PUT", f"/rooms/{room_id}/send/m.room.message/t{self.harness.txn}",
            {"msgtype": "m.text", "body": text},
        )["event_id"]

    def sync(self, since: str | None = None, **params: Any) -> Any:
        if since is not None:
            params["since"] = since
        params.setdefault("timeout", 0)
        return self.ok("GET", "/sync", **params)


class Harness:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]
        self.txn = 0
        self._password_hash: str | None = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def device(self, name: str, device_id: str = "DEV") -> Device:
        """A device of local user ``name`` (the user is created on first use)."""
        user_id = f"@{name}:{SERVER}"
        token = f"tok_{name}_{device_id}"

        async def make() -> None:
            db = self.env.DB
            exists = await db.prepare("SELECT 1 FROM users WHERE user_id = ?").bind(user_id).first()
            if self._password_hash is None:
                self._password_hash = await passwords.hash_password(PASSWORD)
            statements = [] if exists else insert_user(db, user_id, name, self._password_hash, 1)
            statements += [
                upsert_device(db, user_id, device_id, f"{name}'s {device_id}", 1),
                insert_access_token(db, hash_token(token), user_id, device_id, 1),
            ]
            await db.batch(statements)

        self.call(make)
        return Device(self, user_id, device_id, token, generate_signing_key(device_id))
