"""Fixtures for the account endpoints: a TestClient app and users registered through the API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.client import passwords

SERVER = "example.test"
V3 = "/_matrix/client/v3"
PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    user_id: str
    device_id: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]

    def register(self, username: str | None = None, **extra: Any) -> Any:
        """POST /register through the m.login.dummy flow; returns the final response."""
        body: dict[str, Any] = {"password": PASSWORD, **extra}
        if username is not None:
            body["username"] = username
        first = self.client.post(f"{V3}/register", json=body)
        if first.status_code != 401:
            return first
        session = first.json()["session"]
        return self.client.post(
            f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
        )

    def account(self, username: str, **extra: Any) -> Account:
        response = self.register(username, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        return Account(body["user_id"], body["device_id"], body["access_token"])

    def login(self, username: str, password: str = PASSWORD, **extra: Any) -> Any:
        return self.client.post(
            f"{V3}/login",
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": username},
                  "password": password, **extra},
        )

    def call(self, fn: Any, *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


def make_client(tmp_path: Path, **config: Any) -> TestClient:
    return TestClient(
        build_app(load_config(data_dir=str(tmp_path), server_name=SERVER, **config))
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_client(tmp_path) as client:
        yield Api(client)


@pytest.fixture
def alice(api: Api) -> Account:
    return api.account("alice")


@pytest.fixture
def bob(api: Api) -> Account:
    return api.account("bob")
