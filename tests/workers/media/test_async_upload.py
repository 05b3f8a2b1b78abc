"""Asynchronous upload: POST /_matrix/media/v1/create, then PUT the content; its refusals,
the pending limit, expiry, and a download that waits for the content."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from .conftest import CLIENT_V1_MEDIA, MEDIA_V3, SERVER, User

CREATE = "/_matrix/media/v1/create"


def create(client: TestClient, user: User) -> str:
    response = client.post(CREATE, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_uri"].startswith(f"mxc://{SERVER}/")
    assert body["unused_expires_at"] > time.time() * 1000
    return body["content_uri"].rsplit("/", 1)[1]


def put(client: TestClient, user: User, media_id: str, data: bytes, server: str = SERVER, **params: Any):
    return client.put(
        f"{MEDIA_V3}/upload/{server}/{media_id}", content=data, params=params,
        headers={**user.headers, "Content-Type": "text/plain"},
    )


def get(client: TestClient, user: User, media_id: str, timeout_ms: int = 0):
    return client.get(
        f"{CLIENT_V1_MEDIA}/download/{SERVER}/{media_id}", headers=user.headers,
        params={"timeout_ms": timeout_ms},
    )


def test_create_then_upload(client: TestClient, alice: User) -> None:
    media_id = create(client, alice)
    pending = get(client, alice, media_id)
    assert pending.status_code == 504
    assert pending.json()["errcode"] == "M_NOT_YET_UPLOADED"
    response = put(client, alice, media_id, b"later", filename="l.txt")
    assert (response.status_code, response.json()) == (200, {})
    done = get(client, alice, media_id)
    assert done.status_code == 200
    assert done.content == b"later"
    assert done.headers["content-disposition"] == 'inline; filename="l.txt"'


def test_second_upload_cannot_overwrite(client: TestClient, alice: User) -> None:
    media_id = create(client, alice)
    assert put(client, alice, media_id, b"first").status_code == 200
    again = put(client, alice, media_id, b"second")
    assert again.status_code == 409
    assert again.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    assert get(client, alice, media_id).content == b"first"


def test_media_from_plain_upload_cannot_be_overwritten(client: TestClient, alice: User) -> None:
    response = client.post(f"{MEDIA_V3}/upload", content=b"a", headers=alice.headers)
    media_id = response.json()["content_uri"].rsplit("/", 1)[1]
    assert put(client, alice, media_id, b"b").json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"


def test_another_users_media_id_is_forbidden(client: TestClient, alice: User, bob: User) -> None:
    media_id = create(client, alice)
    response = put(client, bob, media_id, b"hijack")
    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert get(client, alice, media_id).status_code == 504


@pytest.mark.parametrize(("server", "media_id"), [(SERVER, "neverCreated"), ("other.test", "abc")])
def test_unknown_media_id_is_not_found(client: TestClient, alice: User, server: str, media_id: str) -> None:
    response = put(client, alice, media_id, b"x", server=server)
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


def test_pending_uploads_are_limited(client: TestClient, alice: User, bob: User) -> None:
    created = [create(client, alice) for _ in range(5)]
    refused = client.post(CREATE, headers=alice.headers)
    assert refused.status_code == 429
    assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert "retry_after_ms" in refused.json()
    create(client, bob)
    # Uploading one frees a slot.
    assert put(client, alice, created[0], b"x").status_code == 200
    create(client, alice)


def test_download_waits_for_the_upload(client: TestClient, alice: User) -> None:
    media_id = create(client, alice)
    result: dict[str, Any] = {}

    def waiting_download() -> None:
        started = time.monotonic()
        result["response"] = get(client, alice, media_id, timeout_ms=20_000)
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=waiting_download)
    thread.start()
    time.sleep(0.3)
    assert put(client, alice, media_id, b"arrived").status_code == 200
    thread.join(10)
    assert result["response"].status_code == 200
    assert result["response"].content == b"arrived"
    assert result["seconds"] < 5


class TestExpiry:
    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"unused_media_expiry_ms": 50}

    def test_expired_media_id_is_gone(self, client: TestClient, alice: User) -> None:
        media_id = create(client, alice)
        time.sleep(0.1)
        response = put(client, alice, media_id, b"late")
        assert response.status_code == 404
        assert response.json()["errcode"] == "M_NOT_FOUND"
        assert get(client, alice, media_id).json()["errcode"] == "M_NOT_FOUND"
        create(client, alice)  # an expired URI no longer counts as pending
