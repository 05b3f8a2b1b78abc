"""Our users' devices and keys served to other servers (spec: server-server "Device
Management", "End-to-End Encryption"): /user/devices, /user/keys/query, /user/keys/claim,
each behind X-Matrix, each for our users only."""

from __future__ import annotations

import pytest
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from tests.federation.conftest import OURS, FedApp
from tests.federation.e2ee_support import LocalUser, federation_request, q
from tests.federation.peers import ForgedPeer

FED = "/_matrix/federation/v1"


@pytest.fixture
def alice(fed: FedApp) -> LocalUser:
    user = LocalUser(fed, "alice")
    user.upload_keys(otk_count=2)
    return user


def _key(usage: str) -> tuple[object, str]:
    """A signing key whose version is its public key, as cross-signing key IDs are."""
    key = generate_signing_key("v")
    public = encode_verify_key_base64(get_verify_key(key))
    key.version = public
    return key, public


def _cross_signing(alice: LocalUser) -> dict[str, dict[str, object]]:
    """Master, self-signing and user-signing keys of alice, the latter two signed by the master."""
    master, master_pub = _key("master")
    out: dict[str, dict[str, object]] = {
        "master_key": {"user_id": alice.user_id, "usage": ["master"], "keys": {f"ed25519:{master_pub}": master_pub}},
    }
    for usage in ("self_signing", "user_signing"):
        _, public = _key(usage)
        out[f"{usage}_key"] = sign_json(
            {"user_id": alice.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}, alice.user_id, master
        )
    return out


def test_user_devices(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    response = federation_request(fed, peer, "GET", f"{FED}/user/devices/{q(alice.user_id)}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == alice.user_id
    assert isinstance(body["stream_id"], int)
    assert body["devices"] == [{"device_id": alice.device_id, "keys": alice.device_keys()}]
    assert "master_key" not in body

    keys = _cross_signing(alice)
    alice.ok("POST", "/keys/device_signing/upload", keys)
    body = federation_request(fed, peer, "GET", f"{FED}/user/devices/{q(alice.user_id)}").json()
    assert body["master_key"] == keys["master_key"]
    assert body["self_signing_key"] == keys["self_signing_key"]
    assert "user_signing_key" not in body  # private to its owner


def test_user_devices_refusals(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    unsigned = fed.client.get(f"{FED}/user/devices/{q(alice.user_id)}")
    assert (unsigned.status_code, unsigned.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    foreign = federation_request(fed, peer, "GET", f"{FED}/user/devices/{q('@bob:remote.test')}")
    assert (foreign.status_code, foreign.json()["errcode"]) == (403, "M_FORBIDDEN")
    unknown = federation_request(fed, peer, "GET", f"{FED}/user/devices/{q('@nobody:' + OURS)}")
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")


def test_user_keys_query(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    keys = _cross_signing(alice)
    alice.ok("POST", "/keys/device_signing/upload", keys)
    body = {"device_keys": {alice.user_id: [], "@bob:remote.test": []}}
    response = federation_request(fed, peer, "POST", f"{FED}/user/keys/query", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["device_keys"] == {alice.user_id: {alice.device_id: alice.device_keys()}}
    assert answer["master_keys"] == {alice.user_id: keys["master_key"]}
    assert answer["self_signing_keys"] == {alice.user_id: keys["self_signing_key"]}
    assert "user_signing_keys" not in answer

    only = federation_request(fed, peer, "POST", f"{FED}/user/keys/query",
                              {"device_keys": {alice.user_id: ["OTHER"]}}).json()
    assert only["device_keys"] == {alice.user_id: {}}
    unsigned = fed.client.post(f"{FED}/user/keys/query", json=body)
    assert unsigned.status_code == 401
    bad = federation_request(fed, peer, "POST", f"{FED}/user/keys/query", {"device_keys": []})
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_BAD_JSON")


def test_user_keys_claim_hands_each_key_out_once(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    body = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"},
                              "@bob:remote.test": {"X": "signed_curve25519"}}}
    claimed = []
    for _ in range(3):
        response = federation_request(fed, peer, "POST", f"{FED}/user/keys/claim", body)
        assert response.status_code == 200, response.text
        claimed.append(response.json()["one_time_keys"])
    first, second = (c[alice.user_id][alice.device_id] for c in claimed[:2])
    assert len(first) == len(second) == 1 and first != second
    assert claimed[2] == {}  # both keys are gone and there is no fallback key
    assert "@bob:remote.test" not in claimed[0]
    counts = alice.ok("POST", "/keys/upload", {})["one_time_key_counts"]
    assert counts["signed_curve25519"] == 0
    assert fed.client.post(f"{FED}/user/keys/claim", json=body).status_code == 401
