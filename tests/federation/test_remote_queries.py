"""Client look-ups answered by another server: GET /profile of a remote user
(query/profile) and GET /directory/room of a remote alias (query/directory), with the
remote server's errors mapped to our own (a remote 404 stays 404, anything else is 502)."""

from __future__ import annotations

import httpx

from tests.federation.conftest import FedApp
from tests.federation.peers import ForgedPeer

V3 = "/_matrix/client/v3"


def _token(fed: FedApp, username: str) -> dict[str, str]:
    body = {"username": username, "password": "pw pw pw 1", "auth": {"type": "m.login.dummy"}}
    response = fed.client.post(f"{V3}/register", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_remote_profile(fed: FedApp, peer: ForgedPeer) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params["user_id"] == "@bob:remote.test":
            return httpx.Response(200, json={"displayname": "Bob", "avatar_url": "mxc://remote.test/a",
                                             "m.other": 5})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "secret remote text"})

    fed.network.handlers[("remote.test", "/_matrix/federation/v1/query/profile")] = answer
    assert fed.client.get(f"{V3}/profile/@bob:remote.test").json() == {
        "displayname": "Bob", "avatar_url": "mxc://remote.test/a"}
    assert fed.client.get(f"{V3}/profile/@bob:remote.test/displayname").json() == {"displayname": "Bob"}
    assert seen[0].headers["authorization"].startswith("X-Matrix ")
    missing = fed.client.get(f"{V3}/profile/@ghost:remote.test")
    assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert "secret remote text" not in missing.text


def test_remote_profile_server_failure_is_502(fed: FedApp, peer: ForgedPeer) -> None:
    fed.network.handlers[("remote.test", "/_matrix/federation/v1/query/profile")] = (
        lambda request: httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "boom"}))
    response = fed.client.get(f"{V3}/profile/@bob:remote.test")
    assert (response.status_code, response.json()["errcode"]) == (502, "M_UNKNOWN")
    peer.reachable = False
    unreachable = fed.client.get(f"{V3}/profile/@carol:unknown.test")
    assert unreachable.status_code == 502


def test_remote_alias(fed: FedApp, peer: ForgedPeer) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["room_alias"] == "#room:remote.test":
            return httpx.Response(200, json={"room_id": "!abc:remote.test", "servers": ["remote.test", "x.test"]})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})

    fed.network.handlers[("remote.test", "/_matrix/federation/v1/query/directory")] = answer
    headers = _token(fed, "alice")
    found = fed.client.get(f"{V3}/directory/room/%23room:remote.test", headers=headers)
    assert found.json() == {"room_id": "!abc:remote.test", "servers": ["remote.test", "x.test"]}
    missing = fed.client.get(f"{V3}/directory/room/%23nope:remote.test", headers=headers)
    assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
