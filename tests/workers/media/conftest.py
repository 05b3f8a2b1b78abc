"""Fixtures for the media repository: an app per test (config overridable through the
``media_config`` fixture) and accounts registered through /register."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from PIL import Image
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from workers.client import passwords

SERVER = "media.test"
MEDIA_V3 = "/_matrix/media/v3"
CLIENT_V1_MEDIA = "/_matrix/client/v1/media"


@dataclass
class User:
    user_id: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register(client: TestClient, username: str) -> User:
    body = {"username": username, "password": "a long enough password"}
    first = client.post("/_matrix/client/v3/register", json=body)
    assert first.status_code == 401, first.text
    done = client.post(
        "/_matrix/client/v3/register",
        json={**body, "auth": {"type": "m.login.dummy", "session": first.json()["session"]}},
    )
    assert done.status_code == 200, done.text
    return User(done.json()["user_id"], done.json()["access_token"])


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def media_config() -> dict[str, Any]:
    """Config overrides for the ``client`` fixture; override this fixture in a module."""
    return {}


@pytest.fixture
def client(tmp_path: Path, media_config: dict[str, Any]) -> Iterator[TestClient]:
    config = load_config(data_dir=str(tmp_path / "data"), server_name=SERVER, **media_config)
    with TestClient(build_app(config)) as test_client:
        yield test_client


@pytest.fixture
def alice(client: TestClient) -> User:
    return register(client, "alice")


@pytest.fixture
def bob(client: TestClient) -> User:
    return register(client, "bob")


def upload(
    client: TestClient, user: User, data: bytes, content_type: str | None = "application/octet-stream",
    filename: str | None = None,
) -> str:
    """Upload through POST /_matrix/media/v3/upload; the media ID of the new mxc:// URI."""
    headers = dict(user.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    params = {"filename": filename} if filename is not None else {}
    response = client.post(f"{MEDIA_V3}/upload", content=data, headers=headers, params=params)
    assert response.status_code == 200, response.text
    uri = response.json()["content_uri"]
    assert uri.startswith(f"mxc://{SERVER}/")
    return uri.rsplit("/", 1)[1]


def make_image(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    """An image with a gradient, so that resizing has real work to do."""
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    bands = [across, down, Image.new("L", size, 128)]
    if mode == "RGBA":
        bands.append(Image.new("L", size, 200))
    image = Image.merge(mode, bands)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()
