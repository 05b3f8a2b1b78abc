"""Interop with a real Synapse: key exchange both ways and federation queries both ways.

Our server runs with its TLS federation listener (as ``matrix-edge serve --federation-port``
would) and Synapse with its own; each names itself ``localhost:<federation port>``.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest
from signedjson.key import get_verify_key
from signedjson.sign import verify_signed_json

from d1 import accounts as accounts_db
from tests.federation.local_server import LocalServer
from tests.federation.synapse_peer import SynapsePeer
from workers.federation.key_store import fetch_server_keys, get_verify_key as stored_key

# A real Synapse in another process: under CI load, propagation can miss a deadline now and
# then (seen once in many runs, not reproduced). One bounded rerun keeps such a miss from
# failing the suite; a real bug fails every run.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1, reruns_delay=2)]


@pytest.fixture(scope="module")
def alice(ours: LocalServer) -> str:
    user_id = f"@alice:{ours.server_name}"
    db = ours.env.DB
    ours.run(db.batch, accounts_db.insert_user(db, user_id, "alice", None, int(time.time() * 1000)))
    ours.run(accounts_db.set_profile_field, db, user_id, "displayname", "Alice on matrix-edge")
    return user_id


@pytest.fixture(scope="module")
def bob(synapse: SynapsePeer) -> dict[str, str]:
    account = synapse.register("bob")
    with synapse.client(account["access_token"]) as client:
        response = client.put(
            f"/profile/{urllib.parse.quote(account['user_id'])}/displayname",
            json={"displayname": "Bob on Synapse"},
        )
        response.raise_for_status()
    return account


def test_we_fetch_and_verify_synapse_keys(ours: LocalServer, synapse: SynapsePeer) -> None:
    response = ours.run(fetch_server_keys, ours.env, synapse.server_name)
    key_id = f"ed25519:{synapse.signing_key.version}"
    assert response["server_name"] == synapse.server_name and key_id in response["verify_keys"]
    key = ours.run(stored_key, ours.env, synapse.server_name, key_id, int(time.time() * 1000))
    assert key.encode() == get_verify_key(synapse.signing_key).encode()


def test_we_query_a_synapse_profile(ours: LocalServer, synapse: SynapsePeer, bob: dict[str, str]) -> None:
    # Synapse checks our X-Matrix signature, fetching our keys from our TLS listener.
    profile = ours.run(
        ours.env.FEDERATION.get_json, synapse.server_name, "/_matrix/federation/v1/query/profile",
        {"user_id": bob["user_id"]},
    )
    assert profile["displayname"] == "Bob on Synapse"


def test_synapse_queries_our_profile(
    ours: LocalServer, synapse: SynapsePeer, alice: str, bob: dict[str, str]
) -> None:
    # Bob asks Synapse; Synapse asks us over federation; we check Synapse's signature.
    with synapse.client(bob["access_token"]) as client:
        response = client.get(f"/profile/{urllib.parse.quote(alice)}")
    assert response.status_code == 200, response.text
    assert response.json()["displayname"] == "Alice on matrix-edge"
    with synapse.client(bob["access_token"]) as client:
        missing = client.get(f"/profile/{urllib.parse.quote('@nobody:' + ours.server_name)}")
    assert missing.status_code == 404


def test_synapse_resolves_our_alias(ours: LocalServer, synapse: SynapsePeer, alice: str, bob: dict[str, str]) -> None:
    alias = f"#lobby:{ours.server_name}"
    room_id = f"!lobby:{ours.server_name}"
    db = ours.env.DB
    ours.run(
        db.prepare("INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, 0)")
        .bind(alias, room_id, alice).run
    )
    with synapse.client(bob["access_token"]) as client:
        response = client.get(f"/directory/room/{urllib.parse.quote(alias)}")
    assert response.status_code == 200, response.text
    assert response.json() == {"room_id": room_id, "servers": [ours.server_name]}


def test_synapse_as_notary_serves_our_keys(ours: LocalServer, synapse: SynapsePeer) -> None:
    # Asked for our key by ID, Synapse fetches it from us if it has not yet (asked for all
    # keys, it answers only from its cache, which depends on what ran before).
    key_id = f"ed25519:{ours.env.signing_key.version}"
    body = ours.run(
        ours.env.FEDERATION.post_json, synapse.server_name, "/_matrix/key/v2/query",
        {"server_keys": {ours.server_name: {key_id: {"minimum_valid_until_ts": int(time.time() * 1000)}}}},
    )
    assert len(body["server_keys"]) == 1, body
    (keys,) = body["server_keys"]
    assert key_id in keys["verify_keys"]
    verify_signed_json(keys, ours.server_name, get_verify_key(ours.env.signing_key))
    verify_signed_json(keys, synapse.server_name, get_verify_key(synapse.signing_key))


def test_we_serve_synapse_keys_as_notary(ours: LocalServer, synapse: SynapsePeer) -> None:
    import httpx

    url = f"{ours.client_url}/_matrix/key/v2/query/{urllib.parse.quote(synapse.server_name)}"
    (keys,) = httpx.get(url, timeout=30).json()["server_keys"]
    verify_signed_json(keys, synapse.server_name, get_verify_key(synapse.signing_key))
    verify_signed_json(keys, ours.server_name, get_verify_key(ours.env.signing_key))
