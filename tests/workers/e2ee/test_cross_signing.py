"""/keys/device_signing/upload (UIA only when replacing keys) and /keys/signatures/upload
(each signature verified, failures per key), as seen through /keys/query."""

from __future__ import annotations

from typing import Any

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from tests.workers.e2ee.harness import PASSWORD, Device, Harness


class CrossSigning:
    """A user's master, self-signing and user-signing keys, as a client makes them."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.secret = {usage: generate_signing_key("x") for usage in ("master", "self_signing", "user_signing")}

    def public(self, usage: str) -> str:
        return encode_verify_key_base64(get_verify_key(self.secret[usage]))

    def key(self, usage: str) -> dict[str, Any]:
        public = self.public(usage)
        key = {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
        if usage != "master":
            key = self.sign(key, "master")
        return key

    def sign(self, obj: dict[str, Any], usage: str) -> dict[str, Any]:
        signing_key = self.secret[usage]
        signing_key.version = self.public(usage)
        return sign_json(obj, self.user_id, signing_key)

    def upload_body(self) -> dict[str, Any]:
        return {f"{u}_key": self.key(u) for u in ("master", "self_signing", "user_signing")}


def _query(device: Device, *user_ids: str) -> Any:
    return device.ok("POST", "/keys/query", {"device_keys": {u: [] for u in user_ids}})


def test_first_upload_needs_no_uia_and_keys_show_in_query(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    cs = CrossSigning(alice.user_id)
    assert alice.ok("POST", "/keys/device_signing/upload", cs.upload_body()) == {}
    # Uploading exactly the same keys again (a retry) needs no UIA either.
    assert alice.ok("POST", "/keys/device_signing/upload", cs.upload_body()) == {}
    own = _query(alice, alice.user_id)
    assert own["master_keys"][alice.user_id] == cs.key("master")
    assert own["self_signing_keys"][alice.user_id] == cs.key("self_signing")
    assert own["user_signing_keys"][alice.user_id] == cs.key("user_signing")
    theirs = _query(bob, alice.user_id)
    assert alice.user_id in theirs["master_keys"] and alice.user_id in theirs["self_signing_keys"]
    assert theirs["user_signing_keys"] == {}


def test_replacing_keys_needs_the_password(hs: Harness) -> None:
    alice = hs.device("alice")
    alice.ok("POST", "/keys/device_signing/upload", CrossSigning(alice.user_id).upload_body())
    new = CrossSigning(alice.user_id).upload_body()
    challenge = alice.request("POST", "/keys/device_signing/upload", new)
    assert challenge.status_code == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    auth = {"type": "m.login.password", "session": challenge.json()["session"],
            "identifier": {"type": "m.id.user", "user": "alice"}, "password": "wrong"}
    assert alice.request("POST", "/keys/device_signing/upload", {**new, "auth": auth}).status_code == 401
    auth["password"] = PASSWORD
    assert alice.ok("POST", "/keys/device_signing/upload", {**new, "auth": auth}) == {}
    assert _query(alice, alice.user_id)["master_keys"][alice.user_id] == new["master_key"]


def test_keys_must_be_signed_by_the_master_key(hs: Harness) -> None:
    alice = hs.device("alice")
    cs, other = CrossSigning(alice.user_id), CrossSigning(alice.user_id)
    body = cs.upload_body()
    body["self_signing_key"] = other.key("self_signing")  # signed by another master
    response = alice.request("POST", "/keys/device_signing/upload", body)
    assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_SIGNATURE"
    # No master key anywhere.
    response = alice.request("POST", "/keys/device_signing/upload", {"self_signing_key": cs.key("self_signing")})
    assert response.status_code == 400 and response.json()["errcode"] == "M_MISSING_PARAM"


def test_malformed_cross_signing_keys(hs: Harness) -> None:
    alice = hs.device("alice")
    cs = CrossSigning(alice.user_id)
    for broken in (
        {**cs.key("master"), "user_id": "@bob:hs.test"},
        {**cs.key("master"), "usage": ["self_signing"]},
        {**cs.key("master"), "keys": {}},
        {**cs.key("master"), "keys": {"ed25519:abc": "def"}},
    ):
        response = alice.request("POST", "/keys/device_signing/upload", {"master_key": broken})
        assert response.status_code == 400, broken


def test_a_key_id_equal_to_a_device_id_is_forbidden(hs: Harness) -> None:
    alice = hs.device("alice")
    cs = CrossSigning(alice.user_id)
    hs.device("alice", cs.public("master"))
    response = alice.request("POST", "/keys/device_signing/upload", {"master_key": cs.key("master")})
    assert response.status_code == 403


def test_self_signing_a_device(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    cs = CrossSigning(alice.user_id)
    alice.ok("POST", "/keys/device_signing/upload", cs.upload_body())
    alice.upload(device_keys=alice.device_keys())
    signed = cs.sign(alice.device_keys(), "self_signing")
    assert alice.ok("POST", "/keys/signatures/upload", {alice.user_id: {"DEV": signed}}) == {"failures": {}}
    seen = _query(bob, alice.user_id)["device_keys"][alice.user_id]["DEV"]
    assert seen["signatures"][alice.user_id][f"ed25519:{cs.public('self_signing')}"] == (
        signed["signatures"][alice.user_id][f"ed25519:{cs.public('self_signing')}"]
    )
    assert f"ed25519:DEV" in seen["signatures"][alice.user_id]


def test_bad_signatures_are_reported_per_key(hs: Harness) -> None:
    alice = hs.device("alice")
    cs = CrossSigning(alice.user_id)
    alice.ok("POST", "/keys/device_signing/upload", cs.upload_body())
    alice.upload(device_keys=alice.device_keys())
    forged = CrossSigning(alice.user_id)
    forged.secret["self_signing"] = generate_signing_key("x")
    bad = alice.device_keys()
    ssk_id = f"ed25519:{cs.public('self_signing')}"
    bad["signatures"][alice.user_id][ssk_id] = forged.sign(alice.device_keys(), "self_signing")[
        "signatures"][alice.user_id][f"ed25519:{forged.public('self_signing')}"]
    tampered = cs.sign({**alice.device_keys(), "algorithms": ["x"]}, "self_signing")
    body = {alice.user_id: {"DEV": bad, "NODEVICE": cs.sign(alice.device_keys(), "self_signing")},
            "@bob:hs.test": {"whatever": tampered}}
    failures = alice.ok("POST", "/keys/signatures/upload", body)["failures"]
    assert failures[alice.user_id]["DEV"]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["NODEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures["@bob:hs.test"]["whatever"]["errcode"] == "M_NOT_FOUND"
    # An object that is not the stored key.
    failures = alice.ok("POST", "/keys/signatures/upload", {alice.user_id: {"DEV": tampered}})["failures"]
    assert failures[alice.user_id]["DEV"]["errcode"] == "M_INVALID_PARAM"
    seen = _query(alice, alice.user_id)["device_keys"][alice.user_id]["DEV"]
    assert ssk_id not in seen["signatures"][alice.user_id]


def test_user_signing_another_users_master_key_is_seen_only_by_the_signer(hs: Harness) -> None:
    alice, bob, carol = hs.device("alice"), hs.device("bob"), hs.device("carol")
    alice_cs, bob_cs = CrossSigning(alice.user_id), CrossSigning(bob.user_id)
    alice.ok("POST", "/keys/device_signing/upload", alice_cs.upload_body())
    bob.ok("POST", "/keys/device_signing/upload", bob_cs.upload_body())
    signed = alice_cs.sign(bob_cs.key("master"), "user_signing")
    result = alice.ok("POST", "/keys/signatures/upload", {bob.user_id: {bob_cs.public("master"): signed}})
    assert result == {"failures": {}}
    usk_id = f"ed25519:{alice_cs.public('user_signing')}"
    as_alice = _query(alice, bob.user_id)["master_keys"][bob.user_id]
    assert as_alice["signatures"][alice.user_id][usk_id]
    for viewer in (bob, carol):
        assert alice.user_id not in _query(viewer, bob.user_id)["master_keys"][bob.user_id].get("signatures", {})
    # Signing with the self-signing key instead is not allowed for another user's key.
    wrong = alice_cs.sign(bob_cs.key("master"), "self_signing")
    failures = alice.ok("POST", "/keys/signatures/upload", {bob.user_id: {bob_cs.public("master"): wrong}})
    assert failures["failures"][bob.user_id][bob_cs.public("master")]["errcode"] == "M_INVALID_SIGNATURE"


def test_device_signs_own_master_key(hs: Harness) -> None:
    alice = hs.device("alice")
    cs = CrossSigning(alice.user_id)
    alice.ok("POST", "/keys/device_signing/upload", cs.upload_body())
    alice.upload(device_keys=alice.device_keys())
    signed = sign_json(cs.key("master"), alice.user_id, alice.signing_key)
    assert alice.ok("POST", "/keys/signatures/upload", {alice.user_id: {cs.public("master"): signed}}) == {"failures": {}}
    master = _query(alice, alice.user_id)["master_keys"][alice.user_id]
    assert "ed25519:DEV" in master["signatures"][alice.user_id]
