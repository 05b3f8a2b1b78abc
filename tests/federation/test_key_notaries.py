"""Remote server keys through notaries (``trusted_key_servers``): spec server-server API
"Querying Keys Through Another Server". The origin is unreachable or unhelpful; a notary
answers ``POST /_matrix/key/v2/query`` with the origin's self-signed response, countersigned."""

from __future__ import annotations

import copy
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from signedjson.key import get_verify_key as public_of
from signedjson.sign import sign_json
from signedjson.types import SigningKey
from starlette.testclient import TestClient
from unpaddedbase64 import encode_base64

from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.federation.conftest import OURS, FedApp
from tests.federation.peers import DAY_MS, ForgedPeer, PeerNetwork, client_for, json_body, make_signing_key
from workers.federation.key_store import (
    NOTARY_QUERY_PATH,
    KeyNotFound,
    KeyResponseError,
    get_verify_key,
    verify_notary_response,
)

ORIGIN = "remote.test"


def now() -> int:
    return int(time.time() * 1000)


def b64(key: SigningKey) -> str:
    return encode_base64(public_of(key).encode())


class ForgedNotary:
    """A notary on the fake network: answers key queries with the origin's own response
    (``network.peers``), countersigned with its key. ``entry`` rewrites the origin's
    response before the notary signs it; ``sign`` replaces the countersigning."""

    def __init__(self, network: PeerNetwork, name: str) -> None:
        self.network = network
        self.peer = network.add(ForgedPeer(name, "notary"))
        self.name = name
        self.status = 200
        self.entry: Callable[[ForgedPeer], dict[str, Any]] = lambda origin: origin.key_response()
        self.sign: Callable[[dict[str, Any]], dict[str, Any]] = lambda entry: sign_json(
            entry, self.name, self.peer.signing_key
        )
        self.queries: list[Any] = []
        network.handlers[(name, NOTARY_QUERY_PATH)] = self.handle

    @property
    def config(self) -> dict[str, Any]:
        return {"server_name": self.name, "verify_keys": {self.peer.key_id: b64(self.peer.signing_key)}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        self.queries.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"errcode": "M_UNKNOWN", "error": "down"})
        entries = [
            self.sign(self.entry(self.network.peers[server]))
            for server in body["server_keys"]
            if server in self.network.peers
        ]
        return httpx.Response(200, json={"server_keys": entries})


@pytest.fixture
def origin(network: PeerNetwork) -> ForgedPeer:
    peer = network.add(ForgedPeer(ORIGIN))
    peer.reachable = False
    return peer


@pytest.fixture
def notary(network: PeerNetwork) -> ForgedNotary:
    return ForgedNotary(network, "notary-a.test")


@pytest.fixture
def second(network: PeerNetwork) -> ForgedNotary:
    return ForgedNotary(network, "notary-b.test")


@contextmanager
def app_with(tmp_path: Path, network: PeerNetwork, notaries: list[dict[str, Any]]) -> Iterator[FedApp]:
    config = load_config(data_dir=str(tmp_path), server_name=OURS, trusted_key_servers=notaries)
    with TestClient(build_app(config)) as client:
        app = FedApp(client, network)
        real = app.env.FEDERATION
        app.env.FEDERATION = client_for(app.env, network)
        app.call(real.close)
        yield app


def stored_keys(fed: FedApp, server: str) -> list[str]:
    rows = fed.call(
        fed.env.DB.prepare("SELECT key_id FROM remote_server_keys WHERE server_name = ?").bind(server).all
    ).results
    return sorted(row["key_id"] for row in rows)


def paths(network: PeerNetwork) -> list[tuple[str, str]]:
    """The key requests made (host, path), leaving out ``.well-known`` discovery."""
    return [
        (r.headers["host"], r.url.path) for r in network.requests
        if not r.url.path.startswith("/.well-known/")
    ]


# --- through one notary ---------------------------------------------------------------------

def test_key_of_unreachable_origin_comes_through_the_notary(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    with app_with(tmp_path, network, [notary.config]) as fed:
        at = now()
        key = fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, at)
        assert key.encode() == public_of(origin.signing_key).encode()
        # the origin was tried first, then the notary was asked for that key, signed (X-Matrix)
        assert paths(network) == [(ORIGIN, "/_matrix/key/v2/server"), (notary.name, NOTARY_QUERY_PATH)]
        assert notary.queries == [{"server_keys": {ORIGIN: {origin.key_id: {"minimum_valid_until_ts": at}}}}]
        (query,) = [r for r in network.requests if r.url.path == NOTARY_QUERY_PATH]
        assert query.headers["authorization"].startswith(f'X-Matrix origin="{OURS}"')
        assert stored_keys(fed, ORIGIN) == [origin.key_id]
        # the stored response is the origin's own: the notary's signature is not kept
        row = fed.call(
            fed.env.DB.prepare("SELECT response_json FROM remote_server_key_responses WHERE server_name = ?")
            .bind(ORIGIN).first
        )
        assert list(json.loads(row["response_json"])["signatures"]) == [ORIGIN]


def test_accepted_key_is_cached(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    with app_with(tmp_path, network, [notary.config]) as fed:
        fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        asked = len(paths(network))
        key = fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert key.encode() == public_of(origin.signing_key).encode()
        # losing KV loses nothing (D1 answers), and the refetch interval is over: still no request
        fed.call(fed.env.CACHE.delete, f"fed:key:{ORIGIN}|{origin.key_id}")
        fed.call(fed.env.CACHE.delete, f"fed:keyfetch:{ORIGIN}")
        fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert len(paths(network)) == asked
        assert len(notary.queries) == 1


def test_without_notaries_the_fetch_fails_as_before(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    with app_with(tmp_path, network, []) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert paths(network) == [(ORIGIN, "/_matrix/key/v2/server")]
        assert notary.queries == []


def test_notary_is_asked_when_the_origin_lacks_the_key(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    """The origin answers, but no longer lists the key; the notary still has a response that
    lists it as an old key, which verifies events from before its expiry."""
    origin.reachable = True
    retired = make_signing_key("retired")
    expired_ts = now() - DAY_MS
    notary.entry = lambda o: o.key_response(
        old_verify_keys={"ed25519:retired": {"key": b64(retired), "expired_ts": expired_ts}}
    )
    with app_with(tmp_path, network, [notary.config]) as fed:
        key = fed.call(get_verify_key, fed.env, ORIGIN, "ed25519:retired", expired_ts - 1000)
        assert key.encode() == public_of(retired).encode()
        assert origin.key_requests == 1 and len(notary.queries) == 1
        assert stored_keys(fed, ORIGIN) == sorted([origin.key_id, "ed25519:retired"])


def test_old_key_is_refused_for_a_time_after_its_expiry(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    retired = make_signing_key("retired")
    expired_ts = now() - DAY_MS
    notary.entry = lambda o: o.key_response(
        old_verify_keys={"ed25519:retired": {"key": b64(retired), "expired_ts": expired_ts}}
    )
    with app_with(tmp_path, network, [notary.config]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, "ed25519:retired", expired_ts + 1)
        assert stored_keys(fed, ORIGIN) == []


# --- refusals -------------------------------------------------------------------------------

def _origin_signed_by_another_key(origin: ForgedPeer) -> dict[str, Any]:
    entry = origin.key_response()
    forged = sign_json({k: v for k, v in entry.items() if k != "signatures"}, ORIGIN, make_signing_key("forged"))
    return forged  # lists the real key, signed under its ID with another key


def _unsigned_by_origin(origin: ForgedPeer) -> dict[str, Any]:
    return {k: v for k, v in origin.key_response().items() if k != "signatures"}


def _for_another_server(origin: ForgedPeer) -> dict[str, Any]:
    other = ForgedPeer("other.test", origin.signing_key.version)
    return other.key_response()


def _another_key_id(origin: ForgedPeer) -> dict[str, Any]:
    return ForgedPeer(ORIGIN, "rotated").key_response()


def _stale(origin: ForgedPeer) -> dict[str, Any]:
    return origin.key_response(valid_until_ts=now() - 1000)


REFUSED_ENTRIES = {
    "origin's self-signature missing": _unsigned_by_origin,
    "origin's self-signature by another key": _origin_signed_by_another_key,
    "entry for another server": _for_another_server,
    "wanted key not listed": _another_key_id,
    "entry no longer valid": _stale,
}


@pytest.mark.parametrize("make_entry", REFUSED_ENTRIES.values(), ids=list(REFUSED_ENTRIES))
def test_bad_entries_are_refused(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary,
    make_entry: Callable[[ForgedPeer], dict[str, Any]],
) -> None:
    notary.entry = make_entry
    with app_with(tmp_path, network, [notary.config]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert len(notary.queries) == 1
        assert stored_keys(fed, ORIGIN) == []


def _not_countersigned(notary: ForgedNotary) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda entry: entry


def _countersigned_with_another_key_id(notary: ForgedNotary) -> Callable[[dict[str, Any]], dict[str, Any]]:
    other = make_signing_key("other")
    return lambda entry: sign_json(entry, notary.name, other)


def _countersigned_with_another_key_same_id(notary: ForgedNotary) -> Callable[[dict[str, Any]], dict[str, Any]]:
    other = make_signing_key(notary.peer.signing_key.version)
    return lambda entry: sign_json(entry, notary.name, other)


def _countersigned_by_someone_else(notary: ForgedNotary) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda entry: sign_json(entry, "elsewhere.test", notary.peer.signing_key)


REFUSED_SIGNINGS = {
    "notary signature missing": _not_countersigned,
    "notary signed with an unconfigured key ID": _countersigned_with_another_key_id,
    "notary signed with another key under its key ID": _countersigned_with_another_key_same_id,
    "signed by a server that is not the notary": _countersigned_by_someone_else,
}


@pytest.mark.parametrize("make_sign", REFUSED_SIGNINGS.values(), ids=list(REFUSED_SIGNINGS))
def test_entries_not_signed_by_the_notary_are_refused(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary,
    make_sign: Callable[[ForgedNotary], Callable[[dict[str, Any]], dict[str, Any]]],
) -> None:
    notary.sign = make_sign(notary)
    with app_with(tmp_path, network, [notary.config]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert stored_keys(fed, ORIGIN) == []


def test_refusal_reasons_of_the_pure_check(origin: ForgedPeer) -> None:
    notary_key = make_signing_key("n")
    keys = {"ed25519:n": public_of(notary_key)}
    good = sign_json(origin.key_response(), "notary.test", notary_key)
    response, stored = verify_notary_response(
        {"server_keys": [good]}, ORIGIN, origin.key_id, now(), "notary.test", keys, now()
    )
    assert [k.key_id for k in stored] == [origin.key_id]
    assert list(response["signatures"]) == [ORIGIN]
    cases: list[tuple[Any, str]] = [
        ({}, "no server_keys list"),
        ({"server_keys": []}, "no entries"),
        ({"server_keys": [sign_json(ForgedPeer("other.test").key_response(), "notary.test", notary_key)]},
         "an entry is for 'other.test'"),
        ({"server_keys": [origin.key_response()]}, "not signed by notary.test"),
        ({"server_keys": [sign_json(_unsigned_by_origin(origin), "notary.test", notary_key)]},
         f"not signed by {ORIGIN}"),
        ({"server_keys": [sign_json(_another_key_id(origin), "notary.test", notary_key)]},
         f"no key {origin.key_id} usable"),
    ]
    for body, reason in cases:
        with pytest.raises(KeyResponseError, match=reason):
            verify_notary_response(body, ORIGIN, origin.key_id, now(), "notary.test", keys, now())
    # a changed countersigned entry fails the notary's signature
    tampered = copy.deepcopy(good)
    tampered["signatures"]["notary.test"]["ed25519:n"] = good["signatures"][ORIGIN][origin.key_id]
    with pytest.raises(KeyResponseError, match="signature of notary.test under ed25519:n does not verify"):
        verify_notary_response({"server_keys": [tampered]}, ORIGIN, origin.key_id, now(), "notary.test", keys, now())


def test_the_entry_valid_longest_is_kept(origin: ForgedPeer) -> None:
    notary_key = make_signing_key("n")
    keys = {"ed25519:n": public_of(notary_key)}
    t = now()
    short = sign_json(origin.key_response(valid_until_ts=t + 1000), "notary.test", notary_key)
    long = sign_json(origin.key_response(valid_until_ts=t + DAY_MS), "notary.test", notary_key)
    response, (key,) = verify_notary_response(
        {"server_keys": [short, long]}, ORIGIN, origin.key_id, t, "notary.test", keys, t
    )
    assert response["valid_until_ts"] == t + DAY_MS and key.valid_until_ts == t + DAY_MS


# --- several notaries, unconfigured notary keys -----------------------------------------------

@pytest.mark.parametrize("failure", ["error", "unreachable", "bad signature"])
def test_notaries_are_tried_in_order(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary,
    second: ForgedNotary, failure: str,
) -> None:
    if failure == "error":
        notary.status = 500
    elif failure == "unreachable":
        del network.handlers[(notary.name, NOTARY_QUERY_PATH)]
        notary.peer.reachable = False
    else:
        notary.sign = _countersigned_with_another_key_id(notary)
    with app_with(tmp_path, network, [notary.config, second.config]) as fed:
        key = fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert key.encode() == public_of(origin.signing_key).encode()
        assert paths(network) == [
            (ORIGIN, "/_matrix/key/v2/server"),
            (notary.name, NOTARY_QUERY_PATH),
            (second.name, NOTARY_QUERY_PATH),
        ]


def test_the_first_notary_that_answers_well_is_the_last_asked(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary, second: ForgedNotary
) -> None:
    with app_with(tmp_path, network, [notary.config, second.config]) as fed:
        fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert len(notary.queries) == 1 and second.queries == []


def test_all_notaries_failing_gives_key_not_found(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary, second: ForgedNotary
) -> None:
    notary.status = second.status = 502
    with app_with(tmp_path, network, [notary.config, second.config]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert len(notary.queries) == 1 and len(second.queries) == 1


def test_notary_without_configured_keys_is_checked_with_the_key_it_serves(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    with app_with(tmp_path, network, [{"server_name": notary.name}]) as fed:
        key = fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert key.encode() == public_of(origin.signing_key).encode()
        assert notary.peer.key_requests == 1  # its own key, fetched from it directly
        assert stored_keys(fed, notary.name) == [notary.peer.key_id]


def test_notary_without_configured_keys_signing_with_another_key_is_refused(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary
) -> None:
    notary.sign = _countersigned_with_another_key_same_id(notary)
    with app_with(tmp_path, network, [{"server_name": notary.name}]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        assert stored_keys(fed, ORIGIN) == []


def test_notary_keys_are_never_sought_through_notaries(
    tmp_path: Path, network: PeerNetwork, origin: ForgedPeer, notary: ForgedNotary, second: ForgedNotary
) -> None:
    """An unconfigured notary whose own key cannot be fetched is not vouched for by another."""
    notary.peer.reachable = False  # its query endpoint answers, its key endpoint does not
    second.status = 500
    with app_with(tmp_path, network, [{"server_name": notary.name}, second.config]) as fed:
        with pytest.raises(KeyNotFound):
            fed.call(get_verify_key, fed.env, ORIGIN, origin.key_id, now())
        # the second notary was asked about the origin only, never about the first notary
        assert [list(q["server_keys"]) for q in second.queries] == [[ORIGIN]]
