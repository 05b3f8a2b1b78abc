"""Inbound request authentication (spec: "Request Authentication"), tested with forged peers
whose keys exist only in the test, over the query endpoints."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request

from d1 import accounts as accounts_db
from tests.federation.conftest import OURS, FedApp
from tests.federation.peers import ForgedPeer, PeerNetwork, make_signing_key
from workers.errors import MatrixError
from workers.federation.auth import verify_request

PROFILE = "/_matrix/federation/v1/query/profile"


@pytest.fixture
def alice(fed: FedApp) -> str:
    user_id = f"@alice:{OURS}"
    fed.call(fed.env.DB.batch, accounts_db.insert_user(fed.env.DB, user_id, "alice", None, int(time.time() * 1000)))
    fed.call(accounts_db.set_profile_field, fed.env.DB, user_id, "avatar_url", "mxc://ours.test/a")
    return user_id


def get_profile(fed: FedApp, peer: ForgedPeer, user_id: str, *, destination: str | None = OURS, **query: str):  # type: ignore[no-untyped-def]
    uri, headers = peer.signed_headers(destination, "GET", PROFILE, {"user_id": user_id, **query})
    return fed.client.get(uri, headers=headers)


def test_a_forged_peer_with_its_own_key_can_sign_valid_requests(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    response = get_profile(fed, peer, alice)
    assert response.status_code == 200, response.text
    assert response.json() == {"displayname": "alice", "avatar_url": "mxc://ours.test/a"}
    assert peer.key_requests == 1
    # the key is now known (D1 and KV): a second request does not fetch it again
    assert get_profile(fed, peer, alice, field="displayname").json() == {"displayname": "alice"}
    assert peer.key_requests == 1


def test_requests_without_destination_are_accepted(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    assert get_profile(fed, peer, alice, destination=None).status_code == 200


def test_missing_header_is_401(fed: FedApp, alice: str) -> None:
    response = fed.client.get(PROFILE, params={"user_id": alice})
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        'X-Matrix origin="remote.test",key="ed25519:forged"',
        'X-Matrix origin="not a server name",key="ed25519:forged",sig="abc"',
    ],
)
def test_malformed_headers_are_401(fed: FedApp, alice: str, header: str) -> None:
    response = fed.client.get(PROFILE, params={"user_id": alice}, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


def test_wrong_destination_is_401(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    response = get_profile(fed, peer, alice, destination="someone-else.test")
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"
    assert peer.key_requests == 0  # refused before any key look-up


def test_signature_by_another_key_is_401(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    uri = f"{PROFILE}?user_id=%40alice%3Aours.test"
    header = peer.authorization(OURS, "GET", uri, signing_key=make_signing_key("forged"))
    response = fed.client.get(uri, headers={"Authorization": header})
    assert response.status_code == 401
    assert "Invalid signature" in response.json()["error"]


def test_signature_over_another_uri_is_401(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    header = peer.authorization(OURS, "GET", f"{PROFILE}?user_id=%40bob%3Aours.test")
    response = fed.client.get(f"{PROFILE}?user_id=%40alice%3Aours.test", headers={"Authorization": header})
    assert response.status_code == 401


def test_signature_over_other_content_is_401(fed: FedApp, peer: ForgedPeer) -> None:
    uri = "/_matrix/key/v2/query"
    header = peer.authorization(OURS, "POST", uri, {"server_keys": {}})
    # checked below the routes, since no endpoint here takes a POST body yet
    body = b'{"server_keys": {"x": {}}}'

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http", "method": "POST", "path": uri, "raw_path": uri.encode(), "query_string": b"",
        "headers": [(b"authorization", header.encode())],
    }

    async def check() -> None:
        await verify_request(Request(scope, receive), fed.env)

    with pytest.raises(MatrixError) as info:
        fed.call(check)
    assert (info.value.status, info.value.errcode) == (401, "M_UNAUTHORIZED")


def test_unknown_key_is_401(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    other = make_signing_key("unknown")
    uri = f"{PROFILE}?user_id=%40alice%3Aours.test"
    response = fed.client.get(uri, headers={"Authorization": peer.authorization(OURS, "GET", uri, signing_key=other)})
    assert response.status_code == 401
    assert "unknown key ed25519:unknown" in response.json()["error"]


def test_unreachable_origin_is_401(fed: FedApp, network: PeerNetwork, alice: str) -> None:
    ghost = ForgedPeer("ghost.test")  # not on the network: its keys cannot be fetched
    response = get_profile(fed, ghost, alice)
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


def test_expired_key_is_refused_for_requests(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    peer.valid_for_ms = -1000  # the peer publishes keys that are already past valid_until_ts
    assert get_profile(fed, peer, alice).status_code == 401


def test_profile_query_refusals(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    assert get_profile(fed, peer, "@bob:ours.test").status_code == 404
    response = get_profile(fed, peer, "@carol:elsewhere.test")
    assert (response.status_code, response.json()["errcode"]) == (400, "M_INVALID_PARAM")
    uri, headers = peer.signed_headers(OURS, "GET", PROFILE)
    assert fed.client.get(uri, headers=headers).json()["errcode"] == "M_MISSING_PARAM"


def test_directory_query(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    db = fed.env.DB
    fed.call(
        db.batch,
        [
            db.prepare("INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, 0)").bind(
                "#room:ours.test", "!r:ours.test", alice
            ),
            db.prepare(
                "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
                " VALUES ('!r:ours.test', 'm.room.member', ?, ?, 'join')"
            ).bind("@zed:remote.test", "$e1"),
            db.prepare(
                "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
                " VALUES ('!r:ours.test', 'm.room.member', ?, ?, 'leave')"
            ).bind("@gone:left.test", "$e2"),
        ],
    )
    path = "/_matrix/federation/v1/query/directory"
    uri, headers = peer.signed_headers(OURS, "GET", path, {"room_alias": "#room:ours.test"})
    assert fed.client.get(uri, headers=headers).json() == {"room_id": "!r:ours.test", "servers": [OURS, "remote.test"]}
    uri, headers = peer.signed_headers(OURS, "GET", path, {"room_alias": "#nope:ours.test"})
    assert fed.client.get(uri, headers=headers).json()["errcode"] == "M_NOT_FOUND"
    assert fed.client.get(f"{path}?room_alias=%23room%3Aours.test").status_code == 401


def test_version_needs_no_auth(fed: FedApp) -> None:
    body = fed.client.get("/_matrix/federation/v1/version").json()
    assert body["server"]["name"] == "matrix-edge"


def test_a_request_from_a_backed_off_destination_wakes_its_queue(fed: FedApp, peer: ForgedPeer, alice: str) -> None:
    stub = fed.env.DESTINATIONS.get_by_name("remote.test")
    peer.reachable = False
    fed.call(stub.enqueue_pdu, {"type": "m.room.message", "content": {}})
    deadline = time.monotonic() + 5
    while fed.call(stub.status)["retry"] is None:
        assert time.monotonic() < deadline, "the send never failed"
        time.sleep(0.02)
    assert fed.call(stub.status)["alarm_ms"] > time.time() * 1000 + 1000  # backing off for seconds
    peer.reachable = True
    assert get_profile(fed, peer, alice).status_code == 200  # the peer shows it is back
    deadline = time.monotonic() + 5
    while fed.call(stub.status)["sent_transactions"] != 1:
        assert time.monotonic() < deadline, "the queue was not woken"
        time.sleep(0.02)
    assert len(peer.transactions) == 1 and peer.transactions[0]["origin"] == OURS
