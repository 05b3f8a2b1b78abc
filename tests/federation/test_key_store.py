"""Remote server keys: response checks, validity (per room version), D1 truth and KV cache,
and the notary endpoints."""

from __future__ import annotations

import copy
import time

import pytest
from signedjson.key import get_verify_key as public_of
from signedjson.sign import verify_signed_json
from unpaddedbase64 import encode_base64

from durable.room_versions import get_room_version
from tests.federation.conftest import OURS, FedApp
from tests.federation.peers import DAY_MS, ForgedPeer, PeerNetwork
from workers.federation.key_store import (
    SEVEN_DAYS_MS,
    KeyNotFound,
    KeyResponseError,
    get_verify_key,
    keys_for_pdu,
    verify_server_keys_response,
)


def now() -> int:
    return int(time.time() * 1000)


def test_response_checks_pass_for_a_self_signed_response() -> None:
    peer = ForgedPeer("remote.test")
    response = peer.key_response(
        old_verify_keys={"ed25519:old": {"key": "VGhpcyBzaG91bGQgYmUgeW91ciBvbGQga2V5J3MgZWQyNTUxOSBwYXlsb2FkLg", "expired_ts": 1000}}
    )
    keys = {k.key_id: k for k in verify_server_keys_response(response, "remote.test", now())}
    assert keys[peer.key_id].expired_ts is None
    assert keys["ed25519:old"].valid_until_ts == 1000 and keys["ed25519:old"].expired_ts == 1000


def test_valid_until_is_capped_at_seven_days() -> None:
    peer = ForgedPeer("remote.test")
    peer.valid_for_ms = 365 * DAY_MS
    t = now()
    (key,) = verify_server_keys_response(peer.key_response(), "remote.test", t)
    assert key.valid_until_ts == t + SEVEN_DAYS_MS


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r.update(server_name="other.test"),
        lambda r: r.pop("signatures"),
        lambda r: r.update(verify_keys={}),
        lambda r: r.pop("valid_until_ts"),
        lambda r: r.update(valid_until_ts=r["valid_until_ts"] + 1),  # signed content changed
        lambda r: r["signatures"].update({"remote.test": {"ed25519:elsewhere": "AAAA"}}),  # not by a listed key
        lambda r: r["verify_keys"][next(iter(r["verify_keys"]))].update(key="short"),
    ],
)
def test_bad_responses_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    response = copy.deepcopy(ForgedPeer("remote.test").key_response())
    mangle(response)
    with pytest.raises(KeyResponseError):
        verify_server_keys_response(response, "remote.test", now())


def test_keys_are_fetched_once_then_served_from_d1(fed: FedApp, peer: ForgedPeer) -> None:
    key = fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, now())
    assert key.encode() == public_of(peer.signing_key).encode()
    assert peer.key_requests == 1
    row = fed.call(
        fed.env.DB.prepare("SELECT verify_key, expired_ts FROM remote_server_keys WHERE server_name = ?").bind("remote.test").first
    )
    assert row["expired_ts"] is None
    # losing the KV cache loses nothing: D1 answers
    fed.call(fed.env.CACHE.delete, f"fed:key:remote.test|{peer.key_id}")
    peer.reachable = False
    assert fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, now()).encode() == key.encode()
    assert peer.key_requests == 1


def test_validity_is_checked_against_the_time_asked(fed: FedApp, peer: ForgedPeer) -> None:
    fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, None)
    far = now() + 30 * DAY_MS
    with pytest.raises(KeyNotFound):
        fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, far)
    # a refetch was not attempted again within the minute (one fetch in all)
    assert peer.key_requests == 1
    # without a time (room versions 1-4) validity is ignored
    fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, None)


def test_unknown_key_triggers_one_fetch_per_minute(fed: FedApp, peer: ForgedPeer) -> None:
    for _ in range(3):
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, "remote.test", "ed25519:nope", now())
    assert peer.key_requests == 1


def test_our_own_keys(fed: FedApp) -> None:
    env = fed.env
    key_id = f"ed25519:{env.signing_key.version}"
    assert fed.call(get_verify_key, env, OURS, key_id, now()).encode() == public_of(env.signing_key).encode()
    with pytest.raises(KeyNotFound):
        fed.call(get_verify_key, env, OURS, "ed25519:other", now())


def test_keys_for_pdu_honours_key_validity_per_room_version(fed: FedApp, peer: ForgedPeer) -> None:
    fed.call(get_verify_key, fed.env, "remote.test", peer.key_id, None)
    pdu = {"origin_server_ts": now() + 30 * DAY_MS, "signatures": {"remote.test": {peer.key_id: "sig"}}}
    assert fed.call(keys_for_pdu, fed.env, pdu, get_room_version("4")) == {
        "remote.test": {peer.key_id: encode_base64(public_of(peer.signing_key).encode())}
    }
    assert fed.call(keys_for_pdu, fed.env, pdu, get_room_version("10")) == {}
    pdu["origin_server_ts"] = now()
    assert list(fed.call(keys_for_pdu, fed.env, pdu, get_room_version("10"))) == ["remote.test"]


# --- publishing and the notary --------------------------------------------------------------

def test_own_keys_are_published_signed_and_valid_in_the_future(fed: FedApp) -> None:
    body = fed.client.get("/_matrix/key/v2/server").json()
    key_id = f"ed25519:{fed.env.signing_key.version}"
    assert body["server_name"] == OURS and list(body["verify_keys"]) == [key_id]
    assert body["valid_until_ts"] > now() + 3600 * 1000
    verify_signed_json(body, OURS, public_of(fed.env.signing_key))
    assert fed.client.get(f"/_matrix/key/v2/server/{key_id}").json()["verify_keys"] == body["verify_keys"]


def test_old_keys_are_published_with_their_expiry(fed: FedApp) -> None:
    db = fed.env.DB
    fed.call(
        db.prepare(
            "INSERT INTO server_signing_keys (key_id, secret, public_key, created_ts, expired_ts)"
            " VALUES ('ed25519:old', 's', 'cHVibGlj', 1, 5000)"
        ).run
    )
    body = fed.client.get("/_matrix/key/v2/server").json()
    assert body["old_verify_keys"] == {"ed25519:old": {"key": "cHVibGlj", "expired_ts": 5000}}


def test_notary_countersigns_the_servers_own_response(fed: FedApp, peer: ForgedPeer) -> None:
    body = fed.client.get("/_matrix/key/v2/query/remote.test").json()
    (response,) = body["server_keys"]
    verify_signed_json(response, "remote.test", public_of(peer.signing_key))
    verify_signed_json(response, OURS, public_of(fed.env.signing_key))
    # offline now: the cached response is still served while it is valid
    peer.reachable = False
    assert len(fed.client.get("/_matrix/key/v2/query/remote.test").json()["server_keys"]) == 1
    # asked for validity beyond it: a refetch fails, the cached response is served anyway
    later = now() + 30 * DAY_MS
    assert len(fed.client.get(f"/_matrix/key/v2/query/remote.test?minimum_valid_until_ts={later}").json()["server_keys"]) == 1
    assert peer.key_requests == 1


def test_notary_bulk_query(fed: FedApp, network: PeerNetwork, peer: ForgedPeer) -> None:
    network.add(ForgedPeer("second.test"))
    body = fed.client.post(
        "/_matrix/key/v2/query",
        json={"server_keys": {"remote.test": {}, "second.test": {"ed25519:forged": {}}, "ghost.test": {}, OURS: {}}},
    ).json()
    assert sorted(r["server_name"] for r in body["server_keys"]) == sorted([OURS, "remote.test", "second.test"])
    assert fed.client.post("/_matrix/key/v2/query", json={"server_keys": {}}).json() == {"server_keys": []}
    assert fed.client.post("/_matrix/key/v2/query", json={}).status_code == 400
    assert fed.client.get("/_matrix/key/v2/query/bad%20name").status_code == 400
