"""Reporting content, OpenID tokens, whois and the federation room directory."""

from __future__ import annotations

import time
from typing import Any

from d1.devices import upsert_device
from d1.reports import reports_by
from tests.federation.peers import ForgedPeer
from tests.workers.client_extras.conftest import SERVER, V3, ExtrasHarness
from workers.auth import hash_token

ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
USERINFO = "/_matrix/federation/v1/openid/userinfo"
FED_PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"


def post(hs: ExtrasHarness, headers: dict[str, str], path: str, body: Any) -> Any:
    return hs.client.post(f"{V3}{path}", headers=headers, json=body)


# --- reports ------------------------------------------------------------------------------


def test_event_report(hs: ExtrasHarness) -> None:
    alice, bob, eve = hs.user("alice"), hs.user("bob"), hs.user("eve")
    room = hs.create_room(alice, preset="public_chat")
    hs.join(bob, room)
    event = hs.message(alice, room, "rude", "r")
    ok = post(hs, bob, f"/rooms/{room}/report/{event}", {"reason": "this makes me sad"})
    assert ok.status_code == 200 and ok.json() == {}
    assert post(hs, bob, f"/rooms/{room}/report/{event}", {}).json() == {}  # reason is optional
    reports = hs.call(reports_by, hs.env.DB, BOB)
    assert reports[0] == {"room_id": room, "event_id": event, "reported_user_id": None, "reason": "this makes me sad"}
    assert reports[1]["reason"] is None
    for headers, path in ((eve, f"/rooms/{room}/report/{event}"),          # not joined
                          (bob, f"/rooms/{room}/report/$unknown"),          # unknown event
                          (bob, f"/rooms/!other:{SERVER}/report/{event}")):  # another room
        refused = post(hs, headers, path, {"reason": "x"})
        assert refused.status_code == 404 and refused.json()["errcode"] == "M_NOT_FOUND"
    assert post(hs, bob, f"/rooms/{room}/report/{event}", {"reason": 1}).json()["errcode"] == "M_BAD_JSON"


def test_room_and_user_reports(hs: ExtrasHarness) -> None:
    alice, eve = hs.user("alice"), hs.user("eve")
    room = hs.create_room(alice)
    # eve is in no room: room and user reports do not depend on membership
    assert post(hs, eve, f"/rooms/{room}/report", {"reason": ""}).json() == {}
    assert post(hs, eve, f"/users/{ALICE}/report", {"reason": "spam"}).json() == {}
    assert hs.call(reports_by, hs.env.DB, f"@eve:{SERVER}") == [
        {"room_id": room, "event_id": None, "reported_user_id": None, "reason": ""},
        {"room_id": None, "event_id": None, "reported_user_id": ALICE, "reason": "spam"},
    ]
    unknown_room = post(hs, eve, f"/rooms/!nope:{SERVER}/report", {"reason": "x"})
    assert unknown_room.status_code == 404 and unknown_room.json()["errcode"] == "M_NOT_FOUND"
    unknown_user = post(hs, eve, f"/users/@ghost:{SERVER}/report", {"reason": "x"})
    assert unknown_user.status_code == 404 and unknown_user.json()["errcode"] == "M_NOT_FOUND"
    assert post(hs, eve, f"/rooms/{room}/report", {}).json()["errcode"] == "M_MISSING_PARAM"
    assert post(hs, eve, f"/users/{ALICE}/report", {}).json()["errcode"] == "M_MISSING_PARAM"
    assert post(hs, {}, f"/users/{ALICE}/report", {"reason": "x"}).status_code == 401


# --- OpenID -------------------------------------------------------------------------------


def test_openid_token_exchange(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    response = post(hs, alice, f"/user/{ALICE}/openid/request_token", {})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["matrix_server_name"] == SERVER
    assert body["expires_in"] == 3600
    info = hs.client.get(USERINFO, params={"access_token": body["access_token"]})
    assert info.status_code == 200 and info.json() == {"sub": ALICE}
    # the OpenID token is no access token
    assert hs.client.get(f"{V3}/account/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401


def test_openid_refusals(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    hs.user("bob")
    other = post(hs, alice, f"/user/{BOB}/openid/request_token", {})
    assert other.status_code == 403 and other.json()["errcode"] == "M_FORBIDDEN"
    for params in ({"access_token": "made-up"}, {}):
        refused = hs.client.get(USERINFO, params=params)
        assert refused.status_code == 401 and refused.json()["errcode"] == "M_UNKNOWN_TOKEN"
    token = post(hs, alice, f"/user/{ALICE}/openid/request_token", {}).json()["access_token"]

    async def expire() -> None:
        await hs.env.DB.prepare("UPDATE openid_tokens SET expires_ts = ? WHERE token_hash = ?").bind(
            int(time.time() * 1000) - 1, hash_token(token)
        ).run()

    hs.call(expire)
    expired = hs.client.get(USERINFO, params={"access_token": token})
    assert expired.status_code == 401 and expired.json()["errcode"] == "M_UNKNOWN_TOKEN"


# --- whois --------------------------------------------------------------------------------


def test_whois_self_only(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    hs.user("bob")
    hs.call(hs.env.DB.batch, [upsert_device(hs.env.DB, ALICE, "DEV_alice", "phone", 1_000, "10.0.0.2")])
    mine = hs.get(alice, f"{V3}/admin/whois/{ALICE}")
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["user_id"] == ALICE and list(body["devices"]) == ["DEV_alice"]
    connections = body["devices"]["DEV_alice"]["sessions"][0]["connections"]
    assert len(connections) == 1 and connections[0]["last_seen"] >= 1_000 and connections[0]["ip"]
    other = hs.get(alice, f"{V3}/admin/whois/{BOB}")
    assert other.status_code == 403 and other.json()["errcode"] == "M_FORBIDDEN"


# --- federation public rooms --------------------------------------------------------------


def test_federation_public_rooms(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    alice = hs.user("alice")
    first = hs.create_room(alice, preset="public_chat", visibility="public", name="Gardening")
    second = hs.create_room(alice, preset="public_chat", visibility="public", name="Cooking")
    hs.create_room(alice, name="Hidden")
    listed = hs.federation_get(peer, FED_PUBLIC_ROOMS)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert sorted(r["room_id"] for r in body["chunk"]) == sorted([first, second])
    assert body["total_room_count_estimate"] == 2
    # the same answer as the client directory
    client = hs.client.get(f"{V3}/publicRooms").json()
    assert client == body
    page = hs.federation_get(peer, FED_PUBLIC_ROOMS, {"limit": "1"}).json()
    assert len(page["chunk"]) == 1 and page["next_batch"]
    rest = hs.federation_get(peer, FED_PUBLIC_ROOMS, {"limit": "1", "since": page["next_batch"]}).json()
    assert {page["chunk"][0]["room_id"], rest["chunk"][0]["room_id"]} == {first, second}
    searched = hs.federation_post(peer, FED_PUBLIC_ROOMS, {"filter": {"generic_search_term": "garden"}}).json()
    assert [r["room_id"] for r in searched["chunk"]] == [first]
    bridged = hs.federation_get(peer, FED_PUBLIC_ROOMS, {"third_party_instance_id": "irc-libera"}).json()
    assert bridged["chunk"] == []


def test_federation_public_rooms_refusals(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    assert hs.client.get(FED_PUBLIC_ROOMS).status_code == 401
    assert hs.client.post(FED_PUBLIC_ROOMS, json={}).status_code == 401
    bad = hs.federation_post(peer, FED_PUBLIC_ROOMS, {"filter": {"generic_search_term": 5}})
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_BAD_JSON"
    bad_limit = hs.federation_get(peer, FED_PUBLIC_ROOMS, {"limit": "many"})
    assert bad_limit.status_code == 400 and bad_limit.json()["errcode"] == "M_INVALID_PARAM"
