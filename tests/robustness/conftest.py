"""Fixtures for the hostile-input tests: one app per module with a registered user (two
devices), a room with one message, and a snapshot of everything a refusal must leave alone."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.client import passwords

SERVER = "hostile.test"
V3 = "/_matrix/client/v3"
PASSWORD = "a long enough password"

# Tables a refused request must not change (presence is left out: any /sync marks its user
# online, as the spec's set_presence default says).
STATE_TABLES = (
    "users", "profiles", "devices", "rooms", "events", "current_state", "room_aliases",
    "account_data", "filters", "push_rules", "to_device_inbox", "to_device_txns",
    "e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys", "room_key_backup_versions",
    "room_key_backup_sessions", "pushers", "content_reports",
)


@dataclass
class Hostile:
    client: TestClient
    user_id: str = ""
    device_id: str = ""
    second_device: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    room_id: str = ""
    event_id: str = ""
    backup_version: str = ""

    @property
    def env(self) -> Any:
        return self.client.app.state.env  # type: ignore[attr-defined]

    def call(self, fn: Any, *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def fill(self, template: str) -> str:
        """``template`` with {room}, {event}, {me}, {device} and {version} put in (quoted)."""
        q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
        return (
            template.replace("{room}", q(self.room_id)).replace("{event}", q(self.event_id))
            .replace("{me}", q(self.user_id)).replace("{device}", q(self.device_id))
            .replace("{version}", self.backup_version)
        )

    def snapshot(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            db = self.env.DB
            out: dict[str, Any] = {}
            for table in STATE_TABLES:
                out[table] = await db.prepare(f"SELECT count(*) AS n FROM {table}").first("n")
            rows = (await db.prepare(
                "SELECT * FROM stream_positions WHERE stream != 'presence' ORDER BY stream"
            ).all()).results
            out["streams"] = [tuple(r.values()) for r in rows]
            out["max_event"] = await db.prepare("SELECT max(stream_ordering) AS m FROM events").first("m")
            return out

        return self.call(read)


def _register(client: TestClient, username: str) -> dict[str, Any]:
    body = {"username": username, "password": PASSWORD}
    session = client.post(f"{V3}/register", json=body).json()["session"]
    answer = client.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    data_dir: Path = tmp_path_factory.mktemp("hostile")
    rounds = passwords.BCRYPT_ROUNDS
    passwords.BCRYPT_ROUNDS = 4
    try:
        config = load_config(
            data_dir=str(data_dir), server_name=SERVER, rc_message_per_second=0,
            rc_login_per_second=0, rc_registration_per_second=0,
        )
        with TestClient(build_app(config), raise_server_exceptions=False) as client:
            h = Hostile(client)
            account = _register(client, "hostile")
            h.user_id, h.device_id = account["user_id"], account["device_id"]
            h.headers = {"Authorization": f"Bearer {account['access_token']}"}
            login = client.post(f"{V3}/login", json={
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "hostile"},
                "password": PASSWORD,
            })
            assert login.status_code == 200, login.text
            h.second_device = login.json()["device_id"]
            created = client.post(f"{V3}/createRoom", json={"name": "r", "room_alias_name": "hostile"}, headers=h.headers)
            assert created.status_code == 200, created.text
            h.room_id = created.json()["room_id"]
            sent = client.put(
                f"{V3}/rooms/{urllib.parse.quote(h.room_id)}/send/m.room.message/t0",
                json={"msgtype": "m.text", "body": "hello"}, headers=h.headers,
            )
            assert sent.status_code == 200, sent.text
            h.event_id = sent.json()["event_id"]
            backup = client.post(f"{V3}/room_keys/version", headers=h.headers, json={
                "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "abc"},
            })
            assert backup.status_code == 200, backup.text
            h.backup_version = backup.json()["version"]
            yield h
    finally:
        passwords.BCRYPT_ROUNDS = rounds
