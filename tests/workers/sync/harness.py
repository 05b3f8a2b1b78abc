"""A TestClient app with users made straight in D1, and helpers that drive the real
client API (rooms and events go through the room actor's write path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from starlette.testclient import TestClient

from d1.accounts import insert_user
from d1.tokens import insert_access_token
from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.auth import hash_token

SERVER = "hs.test"
V3 = "/_matrix/client/v3"


def make_client(data_dir: Path) -> TestClient:
    return TestClient(build_app(load_config(data_dir=str(data_dir), server_name=SERVER)))


class User:
    def __init__(self, harness: "Harness", name: str, device: str) -> None:
        self.harness = harness
        self.user_id = f"@{name}:{SERVER}"
        self.device = device
        self.headers = {"Authorization": f"Bearer tok_{name}_{device}"}

    # --- raw requests -----------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        return self.harness.client.get(f"{V3}{path}", headers=self.headers, params=params)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.harness.client.post(f"{V3}{path}", headers=self.headers, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def put(self, path: str, body: dict[str, Any]) -> Any:
        response = self.harness.client.put(f"{V3}{path}", headers=self.headers, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    # --- room writes --------------------------------------------------------------------
    def create_room(self, **body: Any) -> str:
        return self.post("/createRoom", body)["room_id"]

    def send(self, room_id: str, body: str, txn: str | None = None) -> str:
        self.harness.txn += 1
        txn = txn or f"t{self.harness.txn}"
        return self.put(
            f"/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body}
        )["event_id"]

    def state(self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> str:
        return self.put(f"/rooms/{room_id}/state/{event_type}/{state_key}", content)["event_id"]

    def join(self, room_id: str) -> None:
        self.post(f"/rooms/{room_id}/join")

    def leave(self, room_id: str) -> None:
        self.post(f"/rooms/{room_id}/leave")

    def invite(self, room_id: str, user: "User") -> None:
        self.post(f"/rooms/{room_id}/invite", {"user_id": user.user_id})

    def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        self.harness.txn += 1
        body = {} if reason is None else {"reason": reason}
        return self.put(f"/rooms/{room_id}/redact/{event_id}/r{self.harness.txn}", body)["event_id"]

    # --- sync ---------------------------------------------------------------------------
    def sync(self, since: str | None = None, **params: Any) -> Any:
        if since is not None:
            params["since"] = since
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        return self.ok("/sync", **params)


class Harness:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]
        self.txn = 0

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def user(self, name: str, device: str = "DEV") -> User:
        user = User(self, name, device)

        async def make() -> None:
            exists = await self.env.DB.prepare("SELECT 1 FROM users WHERE user_id = ?").bind(
                user.user_id
            ).first()
            statements = [] if exists else insert_user(self.env.DB, user.user_id, name, None, 1)
            statements.append(
                insert_access_token(
                    self.env.DB, hash_token(f"tok_{name}_{device}"), user.user_id, device, 1
                )
            )
            await self.env.DB.batch(statements)

        self.call(make)
        return user
