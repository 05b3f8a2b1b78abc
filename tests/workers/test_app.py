"""The app shell: discovery endpoints and Matrix errors for unknown paths and wrong methods."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app


@pytest.fixture
def client(tmp_path: Path):
    app = build_app(load_config(data_dir=str(tmp_path), server_name="example.test"))
    with TestClient(app) as test_client:
        yield test_client


def test_versions(client: TestClient) -> None:
    body = client.get("/_matrix/client/versions").json()
    assert "v1.1" in body["versions"]


def test_well_known(client: TestClient) -> None:
    assert client.get("/.well-known/matrix/server").json() == {"m.server": "example.test"}
    assert client.get("/.well-known/matrix/client").json()["m.homeserver"]["base_url"].startswith("http")


@pytest.mark.parametrize(
    "path", ["/_matrix/client/v3/no_such_thing", "/_matrix/federation/v1/nope", "/_matrix/"]
)
def test_unknown_path_is_unrecognized(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.delete("/_matrix/client/versions")
    assert response.status_code == 405
    assert response.json()["errcode"] == "M_UNRECOGNIZED"


def test_cors_and_options(client: TestClient) -> None:
    response = client.options("/_matrix/client/v3/login")
    assert response.status_code == 200
    preflight = client.options(
        "/_matrix/client/versions",
        headers={"Origin": "https://app.element.io", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
