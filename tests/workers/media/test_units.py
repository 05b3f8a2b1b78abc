"""Pure helpers of the media repository: IDs, headers, size choice and geometry, previews."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from workers.media import headers, ids, thumbnailer
from workers.media.preview import is_public_address, open_graph

from .conftest import CLIENT_V1_MEDIA, MEDIA_V3, User


@pytest.mark.parametrize(
    ("media_id", "valid"),
    [("abcXYZ09_-", True), ("a.b", False), ("../x", False), ("", False), ("a b", False),
     ("é", False), ("a" * 255, True), ("a" * 256, False)],
)
def test_media_id_charset(media_id: str, valid: bool) -> None:
    assert ids.is_valid_media_id(media_id) is valid


@pytest.mark.parametrize(
    ("server", "valid"),
    [("example.org", True), ("example.org:8448", True), ("1.2.3.4", True), ("[::1]:80", True),
     ("ex/ample", False), ("a@b", False), ("", False), ("x:port", False)],
)
def test_server_name_grammar(server: str, valid: bool) -> None:
    assert ids.is_valid_server_name(server) is valid


def test_new_media_ids_are_valid_and_distinct() -> None:
    made = {ids.new_media_id() for _ in range(200)}
    assert len(made) == 200 and all(ids.is_valid_media_id(m) for m in made)


@pytest.mark.parametrize(
    ("name", "kept"),
    [("cat.png", "cat.png"), ("a/b\\c.txt", "a_b_c.txt"), ("bad\x00\r\nname", "badname"),
     ("\u202eevil.exe", "evil.exe"), ("   ", None), (None, None), ("x" * 300, "x" * 255)],
)
def test_sanitise_filename(name: str | None, kept: str | None) -> None:
    assert headers.sanitise_filename(name) == kept


@pytest.mark.parametrize(
    ("value", "kept"),
    [("image/png", "image/png"), ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
     ("nonsense", None), ("", None), (None, None), ("text/html\r\nX-Evil: 1", None)],
)
def test_sanitise_content_type(value: str | None, kept: str | None) -> None:
    assert headers.sanitise_content_type(value) == kept


@pytest.mark.parametrize(
    ("disposition", "filename", "header"),
    [
        ("inline", None, "inline"),
        ("inline", "a b.png", 'inline; filename="a b.png"'),
        ("attachment", 'q"uote', "attachment; filename*=utf-8''q%22uote"),
        ("attachment", "100%.txt", "attachment; filename*=utf-8''100%25.txt"),
        ("inline", "日本.png", "inline; filename*=utf-8''%E6%97%A5%E6%9C%AC.png"),
    ],
)
def test_content_disposition(disposition: str, filename: str | None, header: str) -> None:
    assert headers.content_disposition(disposition, filename) == header


@pytest.mark.parametrize(
    ("request_size", "target"),
    [
        ((1, 1, "crop"), (32, 32)), ((32, 32, "crop"), (32, 32)), ((33, 10, "crop"), (96, 96)),
        ((97, 96, "crop"), (97, 96)), ((1, 1, "scale"), (320, 240)), ((321, 10, "scale"), (640, 480)),
        ((640, 481, "scale"), (800, 600)), ((801, 600, "scale"), (801, 600)),
    ],
)
def test_choose_target(request_size: tuple[int, int, str], target: tuple[int, int]) -> None:
    chosen = thumbnailer.choose_target(*request_size)
    assert (chosen.width, chosen.height, chosen.method) == (*target, request_size[2])


@pytest.mark.parametrize(
    ("orig", "box", "size"),
    [((1000, 800), (320, 240), (300, 240)), ((800, 1000), (320, 240), (192, 240)),
     ((100, 50), (320, 240), (100, 50)), ((3000, 10), (320, 240), (320, 1))],
)
def test_scaled_size(orig: tuple[int, int], box: tuple[int, int], size: tuple[int, int]) -> None:
    assert thumbnailer.scaled_size(*orig, *box) == size


@pytest.mark.parametrize(
    ("orig", "box", "crop"),
    [((400, 100), (96, 96), (150, 0, 250, 100)), ((100, 400), (96, 96), (0, 150, 100, 250)),
     ((1000, 800), (32, 32), (100, 0, 900, 800)), ((640, 480), (320, 240), (0, 0, 640, 480))],
)
def test_crop_box(orig: tuple[int, int], box: tuple[int, int], crop: tuple[int, int, int, int]) -> None:
    assert thumbnailer.crop_box(*orig, *box) == crop


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
     ("192.168.0.1", False), ("172.16.5.5", False), ("169.254.169.254", False), ("::1", False),
     ("fe80::1", False), ("fc00::1", False), ("0.0.0.0", False), ("224.0.0.1", False),
     ("::ffff:127.0.0.1", False), ("100.64.0.1", False)],
)
def test_only_public_addresses_are_fetched(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_open_graph_from_html() -> None:
    html = """<html><head><title> Fallback </title>
      <meta property="og:title" content="Matrix Blog Post">
      <meta property="og:image" content="https://example.org/i.png">
      <meta name="description" content="Plain description">
      <meta property="og:type" content="article"></head></html>"""
    assert open_graph(html) == {
        "og:title": "Matrix Blog Post", "og:type": "article", "og:description": "Plain description",
    }
    assert open_graph("<title>Only a title</title>") == {"og:title": "Only a title"}


def test_previews_are_off_by_default(client: TestClient, alice: User) -> None:
    for prefix in (CLIENT_V1_MEDIA, MEDIA_V3):
        response = client.get(f"{prefix}/preview_url", params={"url": "https://matrix.org"}, headers=alice.headers)
        assert response.status_code == 404
        assert response.json()["errcode"] == "M_UNRECOGNIZED"


class TestPreviewsOn:
    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"url_previews": True}

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:1/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/",
                "http://169.254.169.254/latest/meta-data"],
    )
    def test_private_and_loopback_addresses_are_refused(self, client: TestClient, alice: User, url: str) -> None:
        response = client.get(f"{CLIENT_V1_MEDIA}/preview_url", params={"url": url}, headers=alice.headers)
        assert response.status_code == 403
        assert response.json()["errcode"] == "M_FORBIDDEN"

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "not a url"])
    def test_other_schemes_are_refused(self, client: TestClient, alice: User, url: str) -> None:
        response = client.get(f"{CLIENT_V1_MEDIA}/preview_url", params={"url": url}, headers=alice.headers)
        assert response.status_code == 400

    def test_url_is_required(self, client: TestClient, alice: User) -> None:
        response = client.get(f"{CLIENT_V1_MEDIA}/preview_url", headers=alice.headers)
        assert (response.status_code, response.json()["errcode"]) == (400, "M_MISSING_PARAM")
