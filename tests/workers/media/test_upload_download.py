"""Upload and download: byte-identical round trips, kept type and filename, safety headers,
size limit, rate limit, authentication, the legacy endpoints and their freeze."""

from __future__ import annotations

import os
from typing import Any

import pytest
from starlette.testclient import TestClient

from d1 import media as media_db
from workers.media.headers import CONTENT_SECURITY_POLICY

from .conftest import CLIENT_V1_MEDIA, MEDIA_V3, SERVER, User, upload


def download(client: TestClient, user: User | None, media_id: str, suffix: str = "", **params: Any):
    headers = user.headers if user else {}
    return client.get(
        f"{CLIENT_V1_MEDIA}/download/{SERVER}/{media_id}{suffix}", headers=headers, params=params
    )


@pytest.mark.parametrize("size", [0, 1, 1000, 5 * 1024 * 1024 + 7])
def test_round_trip_is_byte_identical(client: TestClient, alice: User, size: int) -> None:
    data = os.urandom(size)
    media_id = upload(client, alice, data)
    response = download(client, alice, media_id)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(size)


def test_content_type_and_filename_are_kept(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"\x89PNG...", "image/png", filename="cat.png")
    response = download(client, alice, media_id)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="cat.png"'


def test_path_filename_overrides_the_uploaded_one(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"x", "text/plain", filename="a.txt")
    response = download(client, alice, media_id, "/other name.txt")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'inline; filename="other name.txt"'


def test_without_filename_the_header_has_none(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"x", None)
    response = download(client, alice, media_id)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == "attachment"


def test_non_ascii_and_hostile_filenames(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"x", "image/png", filename='../ré"sumé\r\n.png')
    disposition = download(client, alice, media_id).headers["content-disposition"]
    # Path separators and control characters are gone; the rest is percent-encoded.
    assert disposition == "inline; filename*=utf-8''.._r%C3%A9%22sum%C3%A9.png"


@pytest.mark.parametrize(
    ("content_type", "disposition"),
    [
        ("image/png", "inline"),
        ("video/mp4", "inline"),
        ("text/plain; charset=utf-8", "inline"),
        ("text/html", "attachment"),
        ("image/svg+xml", "attachment"),
        ("application/javascript", "attachment"),
        ("application/pdf", "attachment"),
    ],
)
def test_only_safe_types_are_inline_and_all_are_sandboxed(
    client: TestClient, alice: User, content_type: str, disposition: str
) -> None:
    media_id = upload(client, alice, b"<script>alert(1)</script>", content_type, filename="f")
    response = download(client, alice, media_id)
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == f'{disposition}; filename="f"'
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"


def test_metadata_in_d1(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"hello", "text/plain", filename="h.txt")
    env = client.app.state.env  # type: ignore[attr-defined]
    row = client.portal.call(media_db.get_media, env.DB, SERVER, media_id)  # type: ignore[union-attr]
    assert row["user_id"] == alice.user_id
    assert (row["size"], row["upload_name"], row["content_type"]) == (5, "h.txt", "text/plain")
    assert row["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{MEDIA_V3}/upload"),
        ("POST", "/_matrix/media/v1/create"),
        ("PUT", f"{MEDIA_V3}/upload/{SERVER}/abc"),
        ("GET", f"{CLIENT_V1_MEDIA}/download/{SERVER}/abc"),
        ("GET", f"{CLIENT_V1_MEDIA}/download/{SERVER}/abc/f.txt"),
        ("GET", f"{CLIENT_V1_MEDIA}/thumbnail/{SERVER}/abc?width=32&height=32"),
        ("GET", f"{CLIENT_V1_MEDIA}/config"),
        ("GET", f"{CLIENT_V1_MEDIA}/preview_url?url=https://example.org"),
        ("GET", f"{MEDIA_V3}/config"),
    ],
)
def test_authenticated_endpoints_refuse_without_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, content=b"x")
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


def test_a_bad_token_is_unknown(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"x")
    response = download(client, User("@x:y", "nope"), media_id)
    assert (response.status_code, response.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


def test_config(client: TestClient, alice: User) -> None:
    for path in (f"{CLIENT_V1_MEDIA}/config", f"{MEDIA_V3}/config"):
        assert client.get(path, headers=alice.headers).json() == {"m.upload.size": 50 * 1024 * 1024}


@pytest.mark.parametrize(
    "media_id", ["nope", "a..b", "a.b", "%2E%2E%2Fetc", "a%2Fb", "x%00"]
)
def test_unknown_or_malformed_media_is_not_found(client: TestClient, alice: User, media_id: str) -> None:
    response = download(client, alice, media_id)
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


def test_legacy_download_needs_no_token(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, b"old school", "text/plain", filename="o.txt")
    for prefix in (MEDIA_V3, "/_matrix/media/r0"):
        response = client.get(f"{prefix}/download/{SERVER}/{media_id}")
        assert response.status_code == 200
        assert response.content == b"old school"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["content-disposition"] == 'inline; filename="o.txt"'


class TestLimits:
    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"max_upload_size": 1000, "enable_legacy_media": False}

    def test_upload_over_the_limit_is_too_large(self, client: TestClient, alice: User) -> None:
        response = client.post(f"{MEDIA_V3}/upload", content=b"x" * 1001, headers=alice.headers)
        assert response.status_code == 413
        assert response.json()["errcode"] == "M_TOO_LARGE"
        assert upload(client, alice, b"x" * 1000)

    def test_streamed_body_over_the_limit_is_too_large(self, client: TestClient, alice: User) -> None:
        def body():
            for _ in range(5):
                yield b"y" * 300

        # A chunked body has no Content-Length: the limit is enforced while reading.
        response = client.post(f"{MEDIA_V3}/upload", content=body(), headers=alice.headers)
        assert response.status_code == 413
        env = client.app.state.env  # type: ignore[attr-defined]
        listing = client.portal.call(env.MEDIA.list)  # type: ignore[union-attr]
        assert listing.objects == []

    def test_config_reports_the_limit(self, client: TestClient, alice: User) -> None:
        assert client.get(f"{CLIENT_V1_MEDIA}/config", headers=alice.headers).json() == {
            "m.upload.size": 1000
        }

    def test_frozen_legacy_endpoints_answer_not_found(self, client: TestClient, alice: User) -> None:
        media_id = upload(client, alice, b"x", "image/png")
        for path in (
            f"{MEDIA_V3}/download/{SERVER}/{media_id}",
            f"{MEDIA_V3}/download/{SERVER}/{media_id}/x.png",
            f"{MEDIA_V3}/thumbnail/{SERVER}/{media_id}?width=32&height=32",
        ):
            response = client.get(path)
            assert response.status_code == 404
            assert response.json()["errcode"] == "M_NOT_FOUND"
        assert download(client, alice, media_id).status_code == 200


class TestRateLimit:
    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"media_upload_per_second": 0.01, "media_upload_burst": 3}

    def test_fourth_upload_is_limited_per_user(self, client: TestClient, alice: User, bob: User) -> None:
        for _ in range(3):
            upload(client, alice, b"x")
        response = client.post(f"{MEDIA_V3}/upload", content=b"x", headers=alice.headers)
        assert response.status_code == 429
        body = response.json()
        assert body["errcode"] == "M_LIMIT_EXCEEDED"
        assert 0 < body["retry_after_ms"] <= 100_000
        assert upload(client, bob, b"x")  # other users keep their own budget
