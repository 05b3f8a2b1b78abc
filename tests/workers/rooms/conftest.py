"""Fixtures for room tests: a TestClient app and users made straight in D1 (no bcrypt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from starlette.testclient import TestClient

from d1.accounts import insert_user
from d1.tokens import insert_access_token
from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.auth import hash_token

SERVER = "hs.test"
V3 = "/_matrix/client/v3"


class Harness:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]

    def user(self, name: str) -> dict[str, str]:
        user_id = f"@{name}:{SERVER}"

        async def make() -> None:
            await self.env.DB.batch(
                insert_user(self.env.DB, user_id, name, None, 1)
                + [insert_access_token(self.env.DB, hash_token("tok_" + name), user_id, "DEV_" + name, 1)]
            )

        self.client.portal.call(make)  # type: ignore[union-attr]
        return {"Authorization": f"Bearer tok_{name}"}

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def create_room(self, headers: dict[str, str], **body: Any) -> str:
        response = self.client.post(f"{V3}/createRoom", headers=headers, json=body)
        assert response.status_code == 200, response.text
        return response.json()["room_id"]

    def send(self, headers: dict[str, str], room_id: str, body: dict[str, Any], txn: str,
             event_type: str = "m.room.message") -> Any:
        return self.client.put(f"{V3}/rooms/{room_id}/send/{event_type}/{txn}", headers=headers, json=body)

    def state_put(self, headers: dict[str, str], room_id: str, event_type: str, content: dict[str, Any],
                  state_key: str = "") -> Any:
        return self.client.put(f"{V3}/rooms/{room_id}/state/{event_type}/{state_key}", headers=headers, json=content)

    def post(self, headers: dict[str, str], path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(f"{V3}{path}", headers=headers, json=body or {})

    def summary(self, room_id: str) -> dict[str, Any]:
        stub = self.env.ROOMS.get(self.env.ROOMS.id_from_name(room_id))
        return self.call(stub.summary)

    def state_content(self, room_id: str, event_type: str, state_key: str = "") -> Any:
        stub = self.env.ROOMS.get(self.env.ROOMS.id_from_name(room_id))
        return self.call(stub.state_event_content, event_type, state_key)


def make_app(data_dir: Path) -> Any:
    return build_app(load_config(data_dir=str(data_dir), server_name=SERVER))


@pytest.fixture
def hs(tmp_path: Path) -> Iterator[Harness]:
    with TestClient(make_app(tmp_path)) as client:
        yield Harness(client)
