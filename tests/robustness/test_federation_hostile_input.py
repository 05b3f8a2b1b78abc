"""Hostile input from a federating server: signed requests whose bodies or parameters are
malformed get a Matrix error (spec: server-server API, errors as in the client-server
"Standard error response") and change nothing; a transaction's malformed EDU is skipped
without failing the transaction."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.federation.conftest import OURS, FedApp, fed, network, peer  # noqa: F401 (fixtures)
from tests.federation.e2ee_support import LocalUser, peer_joins, send_edus
from tests.federation.forged_rooms import federation_request, room_summary
from tests.federation.peers import ForgedPeer

BOB = "@bob:remote.test"


@pytest.fixture
def alice(fed: FedApp) -> LocalUser:  # noqa: F811
    user = LocalUser(fed, "alice")
    user.sync()
    return user


@pytest.fixture
def room_id(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> str:  # noqa: F811
    room = alice.create_room()
    peer_joins(fed, peer, room, BOB)
    alice.sync()
    return room


def _raw_request(fed: FedApp, peer: ForgedPeer, method: str, path: str, raw: bytes) -> Any:  # noqa: F811
    """A request signed over no content, carrying ``raw`` (refused before the signature is
    checked when the body is not JSON)."""
    uri, headers = peer.signed_headers(OURS, method, path, None, None)
    return fed.client.request(method, uri, content=raw, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "errcode"),
    [
        ("PUT", "/_matrix/federation/v1/send/t1", b'{"pdus": [], "edus": [], "x": NaN}', 400, "M_NOT_JSON"),
        ("PUT", "/_matrix/federation/v1/send/t2", b'{"a":' * 3000 + b"1" + b"}" * 3000, 400, "M_NOT_JSON"),
        ("PUT", "/_matrix/federation/v1/send/t4", b'{"pdus": [], "edus": [], "x": "\\udfff"}', 400, "M_NOT_JSON"),
        ("POST", "/_matrix/federation/v1/user/keys/query", b"[" * 5000 + b"]" * 5000, 400, "M_NOT_JSON"),
    ],
)
def test_bodies_that_are_not_strict_json(
    fed: FedApp, peer: ForgedPeer, room_id: str, method: str, path: str, raw: bytes,  # noqa: F811
    status: int, errcode: str,
) -> None:
    before = room_summary(fed, room_id)
    answer = _raw_request(fed, peer, method, path, raw)
    assert answer.status_code == status, answer.text
    assert answer.json()["errcode"] == errcode
    assert room_summary(fed, room_id) == before


@pytest.mark.parametrize(
    ("ts", "status", "errcode"),
    [("321441921194061050413056", 400, "M_INVALID_PARAM"), ("-9223372036854775809", 400, "M_INVALID_PARAM"),
     ("abc", 400, "M_INVALID_PARAM"), ("9223372036854775807", 404, "M_NOT_FOUND")],
)
def test_timestamp_to_event_ts_out_of_range(
    fed: FedApp, peer: ForgedPeer, room_id: str, ts: str, status: int, errcode: str,  # noqa: F811
) -> None:
    path = f"/_matrix/federation/v1/timestamp_to_event/{urllib.parse.quote(room_id, safe='')}"
    answer = federation_request(fed, peer, "GET", path, query={"ts": ts, "dir": "f"})
    assert answer.status_code == status, answer.text
    assert answer.json()["errcode"] == errcode


@pytest.mark.parametrize("ago", [10**19, 2**63, 10**30])
def test_presence_with_an_absurd_last_active_ago(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str, ago: int,  # noqa: F811
) -> None:
    """``last_active_ago`` past what a timestamp can hold used to fail the transaction (500);
    the presence is taken as active now."""
    send_edus(fed, peer, [{"edu_type": "m.presence", "content": {"push": [  # asserts a 200
        {"user_id": BOB, "presence": "online", "last_active_ago": ago, "currently_active": True}]}}])
    [event] = alice.sync()["presence"]["events"]
    assert event["sender"] == BOB and event["content"]["presence"] == "online"
    assert event["content"]["last_active_ago"] < 60_000


def test_deep_json_is_taken_over_federation(fed: FedApp, peer: ForgedPeer, room_id: str) -> None:  # noqa: F811
    """The client depth limit is not applied to other servers' requests: their events may
    nest as deep as the spec allows."""
    body = {"device_keys": {"@alice:ours.test": []}, "x": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}
    for _ in range(200):
        body = {"device_keys": {"@alice:ours.test": []}, "x": body}
    answer = federation_request(fed, peer, "POST", "/_matrix/federation/v1/user/keys/query", body)
    assert answer.status_code == 200, answer.text
