"""/keys/upload, /keys/query, /keys/claim: signatures, identity keys that must not change,
one-time keys handed out exactly once, fallback keys."""

from __future__ import annotations

import asyncio
from typing import Any

from signedjson.sign import sign_json

from d1 import e2e_keys
from tests.workers.e2ee.harness import Harness


def test_upload_device_keys_and_count_one_time_keys(hs: Harness) -> None:
    alice = hs.device("alice")
    body = alice.upload(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(0, 5))
    assert body == {"one_time_key_counts": {"signed_curve25519": 5}}
    body = alice.upload(one_time_keys={"curve25519:U1": "plainkey", **alice.one_time_keys(5, 2)})
    assert body["one_time_key_counts"] == {"signed_curve25519": 7, "curve25519": 1}
    # An empty upload reports the counts (signed_curve25519 always present).
    assert hs.device("bob").upload() == {"one_time_key_counts": {"signed_curve25519": 0}}


def test_query_returns_signed_keys_with_display_name(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    keys = alice.device_keys()
    alice.upload(device_keys=keys)
    result = bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    got = result["device_keys"][alice.user_id]["DEV"]
    assert got["unsigned"] == {"device_display_name": "alice's DEV"}
    assert {k: v for k, v in got.items() if k != "unsigned"} == keys
    assert result["failures"] == {}
    # Asking for a device that has no keys, or one device by ID.
    result = bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: ["NOPE"], bob.user_id: []}})
    assert result["device_keys"] == {alice.user_id: {}, bob.user_id: {}}


def test_query_remote_user_is_a_failure_until_federation(hs: Harness) -> None:
    alice = hs.device("alice")
    result = alice.ok("POST", "/keys/query", {"device_keys": {"@x:remote.example": []}})
    assert "remote.example" in result["failures"]
    assert result["device_keys"] == {}


def test_bad_self_signature_is_refused(hs: Harness) -> None:
    alice = hs.device("alice")
    keys = alice.device_keys()
    keys["algorithms"] = ["m.megolm.v1.aes-sha2"]  # changed after signing
    response = alice.request("POST", "/keys/upload", {"device_keys": keys})
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_SIGNATURE"
    unsigned = alice.device_keys()
    del unsigned["signatures"][alice.user_id]
    unsigned["signatures"] = {}
    response = alice.request("POST", "/keys/upload", {"device_keys": unsigned})
    assert response.json()["errcode"] == "M_INVALID_SIGNATURE"


def test_keys_for_another_device_or_user_are_refused(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    other = hs.device("alice", "OTHER")
    for keys in (other.device_keys(), bob.device_keys()):
        response = alice.request("POST", "/keys/upload", {"device_keys": keys})
        assert response.status_code == 400
        assert response.json()["errcode"] == "M_INVALID_PARAM"


def test_identity_keys_cannot_change(hs: Harness) -> None:
    alice = hs.device("alice")
    alice.upload(device_keys=alice.device_keys())
    alice.upload(device_keys=alice.device_keys())  # the same keys again are fine
    response = alice.request("POST", "/keys/upload", {"device_keys": alice.device_keys("curve_" + "B" * 37)})
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"
    stored = hs.call(e2e_keys.get_device_keys, hs.env.DB, alice.user_id, "DEV")
    assert stored["keys"][f"curve25519:DEV"] == "curve_" + "A" * 37


def test_one_time_key_ids_cannot_be_reused_with_another_key(hs: Harness) -> None:
    alice = hs.device("alice")
    alice.upload(one_time_keys={"curve25519:K1": "a"})
    assert alice.upload(one_time_keys={"curve25519:K1": "a"})["one_time_key_counts"]["curve25519"] == 1
    response = alice.request("POST", "/keys/upload", {"one_time_keys": {"curve25519:K1": "b"}})
    assert response.status_code == 400
    response = alice.request("POST", "/keys/upload", {"one_time_keys": {"nocolon": "b"}})
    assert response.status_code == 400


def _claim(device: Any, user_id: str, device_id: str, algorithm: str = "signed_curve25519") -> dict[str, Any]:
    body = device.ok("POST", "/keys/claim", {"one_time_keys": {user_id: {device_id: algorithm}}})
    return body["one_time_keys"].get(user_id, {}).get(device_id, {})


def test_claim_hands_out_each_key_once_then_the_fallback_key(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    otks = alice.one_time_keys(0, 2)
    fallback = {"signed_curve25519:FB1": sign_json({"key": "fb", "fallback": True}, alice.user_id, alice.signing_key)}
    alice.upload(one_time_keys=otks, fallback_keys=fallback)
    assert alice.sync()["device_unused_fallback_key_types"] == ["signed_curve25519"]
    first, second = _claim(bob, alice.user_id, "DEV"), _claim(bob, alice.user_id, "DEV")
    assert first != second and {**first, **second} == otks
    assert alice.sync()["device_one_time_keys_count"]["signed_curve25519"] == 0
    # None left: the fallback key, as often as asked, now marked used.
    assert _claim(bob, alice.user_id, "DEV") == fallback
    assert _claim(bob, alice.user_id, "DEV") == fallback
    assert alice.sync()["device_unused_fallback_key_types"] == []
    # Re-uploading the same fallback key keeps it used; a new one is unused.
    alice.upload(fallback_keys=fallback)
    assert alice.sync()["device_unused_fallback_key_types"] == []
    alice.upload(fallback_keys={"signed_curve25519:FB2": {"key": "fb2", "fallback": True}})
    assert alice.sync()["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # Unknown device or algorithm: nothing, no failure.
    assert _claim(bob, alice.user_id, "NOPE") == {}
    assert _claim(bob, alice.user_id, "DEV", "curve25519") == {}


def test_claim_remote_user_is_a_failure(hs: Harness) -> None:
    alice = hs.device("alice")
    body = alice.ok("POST", "/keys/claim", {"one_time_keys": {"@x:remote.example": {"D": "signed_curve25519"}}})
    assert body["one_time_keys"] == {} and "remote.example" in body["failures"]


def test_concurrent_claims_never_share_a_key(hs: Harness) -> None:
    alice = hs.device("alice")
    alice.upload(one_time_keys=alice.one_time_keys(0, 60))
    db = hs.env.DB

    async def race() -> list[dict[str, Any]]:
        claims = [e2e_keys.claim_keys(db, [(alice.user_id, "DEV", "signed_curve25519")]) for _ in range(100)]
        return await asyncio.gather(*claims)

    results = hs.call(race)
    handed = [key_id for r in results for key_id in r.get(alice.user_id, {}).get("DEV", {})]
    assert len(handed) == 60 and len(set(handed)) == 60
    assert sum(1 for r in results if not r) == 40


def test_malformed_requests(hs: Harness) -> None:
    alice = hs.device("alice")
    assert alice.request("POST", "/keys/query", {"device_keys": []}).status_code == 400
    assert alice.request("POST", "/keys/query", {"device_keys": {alice.user_id: "x"}}).status_code == 400
    assert alice.request("POST", "/keys/claim", {}).status_code == 400
    assert alice.request("POST", "/keys/upload", {"one_time_keys": []}).status_code == 400
    assert hs.client.post("/_matrix/client/v3/keys/upload", json={}).status_code == 401
