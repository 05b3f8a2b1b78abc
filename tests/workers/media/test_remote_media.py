"""Media over federation, with forged peers on a fake network (tests/federation/peers.py):

- our ``/_matrix/federation/v1/media/download|thumbnail`` answers (X-Matrix, multipart/mixed,
  read back with python-multipart and, independently, with the standard library's MIME
  parser);
- remote media fetched for a local user: signed request, multipart parsed, bytes cached and
  served from the cache, thumbnails rendered here, the size limit, the fallback to the
  deprecated endpoint, and every failure mapped without the remote's words;
- the multipart writer and reader on their own.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import os
from typing import Any, Callable, Iterator

import httpx
import pytest
from PIL import Image
from signedjson.key import get_verify_key
from signedjson.sign import verify_signed_json
from starlette.testclient import TestClient

from d1 import media as media_db
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for
from tests.workers.media.conftest import CLIENT_V1_MEDIA, MEDIA_V3, SERVER, User, make_image, upload
from workers.federation.x_matrix import parse_authorization, request_json
from workers.media import multipart
from workers.media.multipart import MultipartError, encode_media_answer, parse_media_answer

REMOTE = "remote.test"
FED_MEDIA = "/_matrix/federation/v1/media"
REMOTE_DOWNLOAD = f"{FED_MEDIA}/download/abc"


class Network(PeerNetwork):
    """The fake internet, plus the app under test for calls into its Env."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return await fn(*args, **kwargs)
        return self.client.portal.call(run)  # type: ignore[union-attr]

    def serve(self, path: str, respond: Callable[[httpx.Request], httpx.Response]) -> list[httpx.Request]:
        """Answer ``path`` on the remote server; the requests it got are returned (live)."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return respond(request)

        self.handlers[(REMOTE, path)] = handler
        return seen


@pytest.fixture
def network(client: TestClient) -> Iterator[Network]:
    net = Network(client)
    net.add(ForgedPeer(REMOTE))
    real = net.env.FEDERATION
    net.env.FEDERATION = client_for(net.env, net)
    client.portal.call(real.close)  # type: ignore[union-attr]
    yield net


@pytest.fixture
def peer(network: Network) -> ForgedPeer:
    return network.peers[REMOTE]


def multipart_answer(data: bytes, content_type: str = "image/png",
                     disposition: str = 'inline; filename="remote.png"') -> httpx.Response:
    header, body = encode_media_answer(data, {"Content-Type": content_type, "Content-Disposition": disposition})
    return httpx.Response(200, content=body, headers={"Content-Type": header})


def download_remote(client: TestClient, user: User, media_id: str = "abc", suffix: str = "") -> httpx.Response:
    return client.get(f"{CLIENT_V1_MEDIA}/download/{REMOTE}/{media_id}{suffix}", headers=user.headers)


def signed_get(client: TestClient, peer: ForgedPeer, path: str, query: dict[str, str] | None = None) -> httpx.Response:
    uri, headers = peer.signed_headers(SERVER, "GET", path, query)
    return client.get(uri, headers=headers)


def stdlib_parts(response: httpx.Response) -> list[Any]:
    """The parts of a multipart answer as the standard library's MIME parser reads them."""
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    return list(message.iter_parts())


# --- serving our media to other servers ------------------------------------------------------


def test_federation_download_answers_multipart(client: TestClient, alice: User, peer: ForgedPeer) -> None:
    data = os.urandom(200_000) + b"\r\n--" + b"\r\n"
    media_id = upload(client, alice, data, "application/pdf", filename="report.pdf")
    response = signed_get(client, peer, f"{FED_MEDIA}/download/{media_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
    answer = parse_media_answer(response.headers["content-type"], response.content)
    assert answer.metadata == {}
    assert answer.media.body == data
    assert answer.media.content_type == "application/pdf"
    assert answer.media.content_disposition == 'attachment; filename="report.pdf"'
    assert answer.media.filename == "report.pdf"
    # an independent MIME parser reads the same two parts
    meta, media = stdlib_parts(response)
    assert meta.get_content_type() == "application/json" and meta.get_payload(decode=True) == b"{}"
    assert media.get_content_type() == "application/pdf"
    assert media.get_filename() == "report.pdf"
    assert media.get_payload(decode=True) == data


def test_federation_download_of_a_unicode_filename(client: TestClient, alice: User, peer: ForgedPeer) -> None:
    media_id = upload(client, alice, b"hello", "text/plain", filename="caf\u00e9 \u2615.txt")
    response = signed_get(client, peer, f"{FED_MEDIA}/download/{media_id}")
    answer = parse_media_answer(response.headers["content-type"], response.content)
    assert answer.media.content_disposition == "inline; filename*=utf-8''caf%C3%A9%20%E2%98%95.txt"
    assert answer.media.filename == "caf\u00e9 \u2615.txt"


def test_federation_thumbnail_answers_multipart(client: TestClient, alice: User, peer: ForgedPeer) -> None:
    media_id = upload(client, alice, make_image("PNG", (400, 300)), "image/png")
    response = signed_get(client, peer, f"{FED_MEDIA}/thumbnail/{media_id}",
                          {"width": "32", "height": "32", "method": "crop"})
    assert response.status_code == 200, response.text
    answer = parse_media_answer(response.headers["content-type"], response.content)
    assert answer.metadata == {}
    assert answer.media.content_type == "image/png"
    assert answer.media.filename == "thumbnail.png"
    assert Image.open(io.BytesIO(answer.media.body)).size == (32, 32)
    # the client endpoint serves the very same stored thumbnail
    local = client.get(f"{CLIENT_V1_MEDIA}/thumbnail/{SERVER}/{media_id}",
                       params={"width": 32, "height": 32, "method": "crop"}, headers=alice.headers)
    assert local.content == answer.media.body


@pytest.mark.parametrize("path", ["/download/abc", "/thumbnail/abc?width=32&height=32"])
def test_federation_media_needs_x_matrix(client: TestClient, alice: User, path: str) -> None:
    for headers in ({}, alice.headers):
        response = client.get(FED_MEDIA + path, headers=headers)
        assert response.status_code == 401
        assert response.json()["errcode"] == "M_UNAUTHORIZED"


def test_federation_media_refuses_a_signature_for_another_uri(client: TestClient, alice: User, peer: ForgedPeer) -> None:
    media_id = upload(client, alice, b"secret", "text/plain")
    _, headers = peer.signed_headers(SERVER, "GET", f"{FED_MEDIA}/download/other")
    response = client.get(f"{FED_MEDIA}/download/{media_id}", headers=headers)
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


def test_federation_media_refusals(client: TestClient, alice: User, peer: ForgedPeer) -> None:
    missing = signed_get(client, peer, f"{FED_MEDIA}/download/unknown")
    assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
    malformed = signed_get(client, peer, f"{FED_MEDIA}/download/a.b")
    assert (malformed.status_code, malformed.json()["errcode"]) == (404, "M_NOT_FOUND")

    created = client.post("/_matrix/media/v1/create", headers=alice.headers)
    pending_id = created.json()["content_uri"].rsplit("/", 1)[1]
    pending = signed_get(client, peer, f"{FED_MEDIA}/download/{pending_id}", {"timeout_ms": "0"})
    assert (pending.status_code, pending.json()["errcode"]) == (504, "M_NOT_YET_UPLOADED")

    text_id = upload(client, alice, b"not an image", "text/plain")
    no_width = signed_get(client, peer, f"{FED_MEDIA}/thumbnail/{text_id}", {"height": "32"})
    assert (no_width.status_code, no_width.json()["errcode"]) == (400, "M_MISSING_PARAM")
    not_image = signed_get(client, peer, f"{FED_MEDIA}/thumbnail/{text_id}", {"width": "32", "height": "32"})
    assert not_image.status_code == 400


# --- fetching remote media for local users ---------------------------------------------------


def test_remote_media_is_fetched_signed_cached_and_served(client: TestClient, alice: User, bob: User,
                                                          network: Network) -> None:
    data = os.urandom(3 * 1024 * 1024)
    seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(data, "application/zip", 'attachment; filename="a.zip"'))
    first = download_remote(client, alice)
    assert first.status_code == 200, first.text
    assert first.content == data
    assert first.headers["content-type"] == "application/zip"
    assert first.headers["content-disposition"] == 'attachment; filename="a.zip"'
    assert first.headers["content-security-policy"].startswith("sandbox")

    # the request was signed by us, for the remote server, over the path it asked for
    (request,) = seen
    auth = parse_authorization(request.headers["authorization"])
    assert (auth.origin, auth.destination) == (SERVER, REMOTE)
    uri = request.url.raw_path.decode("ascii")
    assert uri == f"{REMOTE_DOWNLOAD}?timeout_ms=20000"
    signed = request_json("GET", uri, SERVER, REMOTE, None)
    signed["signatures"] = {SERVER: {auth.key: auth.sig}}
    verify_signed_json(signed, SERVER, get_verify_key(network.env.signing_key))

    # later downloads (any user, any filename) come from the cache
    again = download_remote(client, bob, suffix="/renamed.zip")
    assert again.content == data
    assert again.headers["content-disposition"] == 'attachment; filename="renamed.zip"'
    assert len(seen) == 1
    row = network.call(media_db.get_cached_remote, network.env.DB, REMOTE, "abc")
    assert row["size"] == len(data) and row["upload_name"] == "a.zip" and row["user_id"] is None
    assert row["blob_key"].startswith(f"remote/{REMOTE}/abc/")


def test_remote_thumbnails_are_rendered_here_from_one_fetch(client: TestClient, alice: User, network: Network) -> None:
    image = make_image("JPEG", (640, 480))
    seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(image, "image/jpeg", "inline"))
    for width, height, method, size in ((32, 32, "crop", (32, 32)), (320, 240, "scale", (320, 240))):
        response = client.get(f"{CLIENT_V1_MEDIA}/thumbnail/{REMOTE}/abc",
                              params={"width": width, "height": height, "method": method}, headers=alice.headers)
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == size
    assert download_remote(client, alice).content == image
    assert len(seen) == 1
    assert all(r.url.path == REMOTE_DOWNLOAD for r in network.requests if r.headers["host"] == REMOTE
               and r.url.path.startswith("/_matrix/federation"))
    thumb = network.call(media_db.get_thumbnail, network.env.DB, REMOTE, "abc", 32, 32, "crop", False)
    assert thumb["blob_key"].startswith(f"remote/{REMOTE}/abc/thumbnails/")


def test_remote_media_of_the_same_id_as_local_media_stays_apart(client: TestClient, alice: User,
                                                                 network: Network) -> None:
    local_id = upload(client, alice, make_image("PNG", (100, 100)), "image/png")
    remote_image = make_image("PNG", (300, 200))
    network.serve(f"{FED_MEDIA}/download/{local_id}", lambda r: multipart_answer(remote_image))
    params = {"width": 32, "height": 32, "method": "crop"}
    local = client.get(f"{CLIENT_V1_MEDIA}/thumbnail/{SERVER}/{local_id}", params=params, headers=alice.headers)
    remote = client.get(f"{CLIENT_V1_MEDIA}/thumbnail/{REMOTE}/{local_id}", params=params, headers=alice.headers)
    assert local.status_code == remote.status_code == 200
    assert local.content != remote.content
    assert download_remote(client, alice, local_id).content == remote_image


def test_remote_media_needs_a_token_and_legacy_endpoints_do_not_fetch(client: TestClient, alice: User,
                                                                       network: Network) -> None:
    seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(b"x"))
    assert client.get(f"{CLIENT_V1_MEDIA}/download/{REMOTE}/abc").status_code == 401
    for path in (f"{MEDIA_V3}/download/{REMOTE}/abc", f"{MEDIA_V3}/thumbnail/{REMOTE}/abc?width=32&height=32"):
        response = client.get(path)
        assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert seen == []
    # not even once it is cached: the legacy endpoints are frozen for remote media
    assert download_remote(client, alice).content == b"x"
    assert client.get(f"{MEDIA_V3}/download/{REMOTE}/abc").status_code == 404


def test_an_origin_without_federation_media_is_asked_on_the_legacy_endpoint(client: TestClient, alice: User,
                                                                              network: Network) -> None:
    legacy = network.serve(
        f"{MEDIA_V3}/download/{REMOTE}/abc",
        lambda r: httpx.Response(200, content=b"old bytes", headers={
            "Content-Type": "text/plain", "Content-Disposition": 'inline; filename="old.txt"'}),
    )
    response = download_remote(client, alice)
    assert response.status_code == 200, response.text
    assert response.content == b"old bytes"
    assert response.headers["content-disposition"] == 'inline; filename="old.txt"'
    (request,) = legacy
    assert request.url.params["allow_remote"] == "false"
    assert "authorization" not in request.headers
    # the federation endpoint was tried first (the network answers it 404 M_UNRECOGNIZED)
    paths = [r.url.path for r in network.requests if r.headers["host"] == REMOTE]
    assert paths.index(REMOTE_DOWNLOAD) < paths.index(f"{MEDIA_V3}/download/{REMOTE}/abc")


@pytest.mark.parametrize(
    ("remote_answer", "status", "errcode"),
    [
        (httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "remote secret words"}), 404, "M_NOT_FOUND"),
        (httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "remote secret words"}), 502, "M_UNKNOWN"),
        (httpx.Response(403, text="remote secret words"), 502, "M_UNKNOWN"),
        (httpx.Response(504, json={"errcode": "M_NOT_YET_UPLOADED", "error": "remote secret words"}), 504,
         "M_NOT_YET_UPLOADED"),
        (httpx.Response(502, json={"errcode": "M_TOO_LARGE", "error": "remote secret words"}), 502, "M_TOO_LARGE"),
        (httpx.Response(200, content=b"remote secret words", headers={"Content-Type": "image/png"}), 502, "M_UNKNOWN"),
        (httpx.Response(200, content=b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\n\r\nremote",
                        headers={"Content-Type": "multipart/mixed; boundary=b"}), 502, "M_UNKNOWN"),
        (httpx.Response(200, content=b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n",
                        headers={"Content-Type": "multipart/mixed; boundary=b"}), 502, "M_UNKNOWN"),
        (httpx.Response(200, content=b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\n"
                        b"Location: https://cdn.remote.test/x\r\n\r\n\r\n--b--\r\n",
                        headers={"Content-Type": "multipart/mixed; boundary=b"}), 502, "M_UNKNOWN"),
    ],
    ids=["404", "500", "403-text", "not-yet-uploaded", "remote-too-large", "not-multipart", "truncated",
         "one-part", "location"],
)
def test_remote_failures_are_ours_to_tell(client: TestClient, alice: User, network: Network,
                                          remote_answer: httpx.Response, status: int, errcode: str) -> None:
    network.serve(REMOTE_DOWNLOAD, lambda r: remote_answer)
    response = download_remote(client, alice)
    assert (response.status_code, response.json()["errcode"]) == (status, errcode)
    assert "secret" not in response.text
    assert network.call(media_db.get_cached_remote, network.env.DB, REMOTE, "abc") is None


def test_unreachable_origin_is_502(client: TestClient, alice: User, network: Network, peer: ForgedPeer) -> None:
    peer.reachable = False
    response = download_remote(client, alice)
    assert (response.status_code, response.json()["errcode"]) == (502, "M_UNKNOWN")
    thumb = client.get(f"{CLIENT_V1_MEDIA}/thumbnail/{REMOTE}/abc", params={"width": 32, "height": 32},
                       headers=alice.headers)
    assert (thumb.status_code, thumb.json()["errcode"]) == (502, "M_UNKNOWN")


def test_unknown_remote_media_is_404(client: TestClient, alice: User, network: Network) -> None:
    # Neither endpoint exists on the fake remote: both answer 404 M_UNRECOGNIZED.
    response = download_remote(client, alice)
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")


class TestSizeLimit:
    LIMIT = 10_000

    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"max_upload_size": self.LIMIT}

    def test_remote_media_at_the_limit_is_kept(self, client: TestClient, alice: User, network: Network) -> None:
        data = os.urandom(self.LIMIT)
        network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(data))
        assert download_remote(client, alice).content == data

    @pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 200_000])
    def test_remote_media_over_the_limit_is_refused_and_not_kept(self, client: TestClient, alice: User,
                                                                 network: Network, size: int) -> None:
        seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(os.urandom(size)))
        response = download_remote(client, alice)
        assert (response.status_code, response.json()["errcode"]) == (502, "M_TOO_LARGE")
        assert network.call(media_db.get_cached_remote, network.env.DB, REMOTE, "abc") is None
        assert network.call(network.env.MEDIA.list, prefix="remote/").objects == []
        assert len(seen) == 1

    def test_legacy_fallback_over_the_limit_is_refused(self, client: TestClient, alice: User,
                                                       network: Network) -> None:
        network.serve(f"{MEDIA_V3}/download/{REMOTE}/abc",
                      lambda r: httpx.Response(200, content=os.urandom(self.LIMIT + 1)))
        response = download_remote(client, alice)
        assert (response.status_code, response.json()["errcode"]) == (502, "M_TOO_LARGE")


def test_a_lost_cached_object_is_fetched_again(client: TestClient, alice: User, network: Network) -> None:
    seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(b"precious"))
    assert download_remote(client, alice).content == b"precious"
    old = network.call(media_db.get_cached_remote, network.env.DB, REMOTE, "abc")
    network.call(network.env.MEDIA.delete, old["blob_key"])
    assert download_remote(client, alice).content == b"precious"
    assert len(seen) == 2
    new = network.call(media_db.get_cached_remote, network.env.DB, REMOTE, "abc")
    assert new["blob_key"] != old["blob_key"]


def test_quarantined_remote_media_is_not_served(client: TestClient, alice: User, network: Network) -> None:
    seen = network.serve(REMOTE_DOWNLOAD, lambda r: multipart_answer(b"bad"))
    assert download_remote(client, alice).status_code == 200
    network.call(network.env.DB.exec, "UPDATE media SET quarantined = 1 WHERE server_name = 'remote.test'")
    response = download_remote(client, alice)
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert len(seen) == 1


def test_store_remote_keeps_the_first_of_two_racing_fetches(client: TestClient, network: Network) -> None:
    db = network.env.DB

    def store(blob_key: str, **extra: Any) -> bool:
        return bool(network.call(
            media_db.store_remote, db, origin=REMOTE, media_id="m", content_type="text/plain",
            upload_name=None, size=1, sha256="00", blob_key=blob_key, now_ms=1, **extra,
        ))

    assert store("k1")
    assert not store("k2")
    assert network.call(media_db.get_cached_remote, db, REMOTE, "m")["blob_key"] == "k1"
    assert not store("k3", replaces_blob_key="k2")
    assert store("k3", replaces_blob_key="k1")
    assert network.call(media_db.get_cached_remote, db, REMOTE, "m")["blob_key"] == "k3"
    # local media of the same server name and ID is never taken for a cached copy
    assert network.call(media_db.get_cached_remote, db, SERVER, "m") is None


# --- the multipart body on its own ----------------------------------------------------------


def test_multipart_round_trip_of_awkward_bytes() -> None:
    data = b"\r\n--\r\n--x--\r\n" * 1000 + bytes(range(256))
    header, body = encode_media_answer(data, {"Content-Type": "application/octet-stream"}, {"k": 1})
    answer = parse_media_answer(header, body)
    assert answer.metadata == {"k": 1}
    assert answer.media.body == data
    assert answer.media.content_disposition is None and answer.media.filename is None


def test_new_boundary_never_occurs_in_the_content(monkeypatch: pytest.MonkeyPatch) -> None:
    choices = iter(["inside", "outside"])
    monkeypatch.setattr(multipart.secrets, "token_hex", lambda n: next(choices))
    assert multipart.new_boundary(b"data with inside it") == "outside"


def test_multipart_writer_refuses_header_injection() -> None:
    with pytest.raises(ValueError):
        encode_media_answer(b"x", {"Content-Type": "text/plain\r\nX-Evil: 1"})


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, b""),
        ("image/png", b"--b--\r\n"),
        ("multipart/mixed", b"--b--\r\n"),
        ("multipart/mixed; boundary=b", b"--b\r\nContent-Type: text/plain\r\n\r\n{}\r\n--b\r\n\r\nx\r\n--b--\r\n"),
        ("multipart/mixed; boundary=b", b"--b\r\nContent-Type: application/json\r\n\r\n[]\r\n--b\r\n\r\nx\r\n--b--\r\n"),
        ("multipart/mixed; boundary=b", b"--b\r\nContent-Type: application/json\r\n\r\n{\r\n--b\r\n\r\nx\r\n--b--\r\n"),
        ("multipart/mixed; boundary=b", b"no delimiter at all"),
    ],
    ids=["no-type", "not-multipart", "no-boundary", "metadata-not-json-type", "metadata-not-object",
         "metadata-broken", "garbage"],
)
def test_multipart_reader_refusals(content_type: str | None, body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_media_answer(content_type, body)


def test_multipart_reader_takes_a_quoted_boundary_and_a_preamble() -> None:
    body = (b"\r\n--a b\r\nContent-Type: application/json\r\n\r\n{}\r\n--a b\r\n"
            b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"x.txt\"\r\n\r\nhi\r\n--a b--\r\n")
    answer = parse_media_answer('multipart/mixed; boundary="a b"', body)
    assert (answer.media.body, answer.media.filename) == (b"hi", "x.txt")
