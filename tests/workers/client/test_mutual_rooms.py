"""``GET /_matrix/client/v1/mutual_rooms`` (client-server API, "Mutual Rooms"): rooms both
users are joined to, batched with ``next_batch``/``from``, and every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient
from unpaddedbase64 import encode_base64

from tests.workers.rooms.conftest import SERVER, V3, Harness, make_app
from workers.client import mutual_rooms

PATH = "/_matrix/client/v1/mutual_rooms"
BOB = f"@bob:{SERVER}"
ALICE = f"@alice:{SERVER}"


@pytest.fixture
def hs(tmp_path: Path) -> Iterator[Harness]:
    with TestClient(make_app(tmp_path)) as client:
        yield Harness(client)


def _ok(response: Any) -> None:
    assert response.status_code == 200, response.text


def _public_room(hs: Harness, creator: dict[str, str], *joiners: dict[str, str]) -> str:
    room_id = hs.create_room(creator, preset="public_chat")
    for headers in joiners:
        _ok(hs.post(headers, f"/join/{room_id}"))
    return room_id


def _mutual(hs: Harness, headers: dict[str, str], **params: str) -> Any:
    return hs.client.get(PATH, headers=headers, params=params)


def test_lists_only_rooms_both_users_are_joined_to(hs: Harness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    shared = _public_room(hs, alice, bob)
    shared_by_bob = _public_room(hs, bob, alice)
    left = _public_room(hs, alice, bob)
    _ok(hs.post(bob, f"/rooms/{left}/leave"))
    invited = _public_room(hs, alice)
    _ok(hs.post(alice, f"/rooms/{invited}/invite", {"user_id": BOB}))
    _public_room(hs, alice, carol)
    _public_room(hs, bob, carol)

    expected = {"joined": sorted([shared, shared_by_bob]), "count": 2}
    response = _mutual(hs, alice, user_id=BOB)
    assert response.status_code == 200
    assert response.json() == expected
    assert _mutual(hs, bob, user_id=ALICE).json() == expected
    assert _mutual(hs, carol, user_id=ALICE).json()["count"] == 1


def test_a_valid_but_unknown_user_shares_no_rooms(hs: Harness) -> None:
    alice = hs.user("alice")
    _public_room(hs, alice)
    for user_id in (f"@nobody:{SERVER}", "@someone:elsewhere.example", "@Historical_Caps:elsewhere.example"):
        response = _mutual(hs, alice, user_id=user_id)
        assert response.status_code == 200, user_id
        assert response.json() == {"joined": [], "count": 0}


def test_batches_follow_room_ids_with_next_batch(hs: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    rooms = sorted(_public_room(hs, alice, bob) for _ in range(5))
    _public_room(hs, alice)  # not shared: never listed, never counted
    monkeypatch.setattr(mutual_rooms, "BATCH_SIZE", 2)

    seen: list[str] = []
    params: dict[str, str] = {"user_id": BOB}
    batches = 0
    while True:
        response = _mutual(hs, alice, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        batches += 1
        assert body["count"] == 5
        assert len(body["joined"]) == (2 if batches < 3 else 1)
        seen.extend(body["joined"])
        if "next_batch" not in body:
            break
        params["from"] = body["next_batch"]
    assert batches == 3
    assert seen == rooms

    # A last batch exactly full has no next_batch.
    monkeypatch.setattr(mutual_rooms, "BATCH_SIZE", 5)
    assert _mutual(hs, alice, user_id=BOB).json() == {"joined": rooms, "count": 5}


def test_rooms_left_between_batches_are_skipped(hs: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    rooms = sorted(_public_room(hs, alice, bob) for _ in range(3))
    monkeypatch.setattr(mutual_rooms, "BATCH_SIZE", 1)
    first = _mutual(hs, alice, user_id=BOB).json()
    assert first["joined"] == rooms[:1]
    _ok(hs.post(bob, f"/rooms/{rooms[1]}/leave"))
    second = _mutual(hs, alice, user_id=BOB, **{"from": first["next_batch"]}).json()
    assert second == {"joined": rooms[2:], "count": 2}


def test_no_access_token_is_401(hs: Harness) -> None:
    response = hs.client.get(PATH, params={"user_id": BOB})
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"
    response = hs.client.get(PATH, params={"user_id": BOB}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"user_id": ""},
        {"user_id": "bob"},
        {"user_id": "#bob:hs.test"},
        {"user_id": "@bob"},
        {"user_id": "@:hs.test"},
        {"user_id": "@bob smith:hs.test"},
        {"user_id": "@b\u00f6b:hs.test"},
        {"user_id": ALICE},
    ],
    ids=["missing", "empty", "bare", "alias", "no-server", "empty-localpart", "space", "non-ascii", "self"],
)
def test_bad_user_id_is_400(hs: Harness, params: dict[str, str]) -> None:
    alice = hs.user("alice")
    response = _mutual(hs, alice, **params)
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "not a token",
        encode_base64(b"abc", urlsafe=True),  # decodes, but not to a room ID
        encode_base64(b"!abc:hs.test") + "==",  # padded: not the token the server gives
        encode_base64(b"\xff\xfe!", urlsafe=True),  # not UTF-8
        encode_base64(b"!" + b"a" * 300, urlsafe=True),  # longer than any room ID
    ],
)
def test_invalid_from_token_is_400(hs: Harness, token: str) -> None:
    alice = hs.user("alice")
    hs.user("bob")
    response = _mutual(hs, alice, user_id=BOB, **{"from": token})
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


def test_only_under_client_v1(hs: Harness) -> None:
    alice = hs.user("alice")
    response = hs.client.get(f"{V3}/mutual_rooms", headers=alice, params={"user_id": BOB})
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
