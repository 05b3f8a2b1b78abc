"""The requests matrix-js-sdk (and so Element Web in a browser) makes on start-up, replayed
with httpx against a real ``matrix-edge serve``.

Each request carries an ``Origin`` header as a browser's would, and every response must carry
``Access-Control-Allow-Origin``. Preflights (``OPTIONS`` with ``Access-Control-Request-*``)
must answer 2xx naming ``Authorization`` in ``Access-Control-Allow-Headers`` explicitly,
because browsers never let the ``*`` wildcard cover ``Authorization``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.clients.edge_process import EdgeProcess

pytestmark = pytest.mark.slow

ORIGIN = "https://app.element.example"
PASSWORD = "js sdk password"
V3 = "/_matrix/client/v3"

# The filter matrix-js-sdk uploads on start-up (lazy-loaded members) and sends inline too.
JS_SDK_FILTER: dict[str, Any] = {
    "room": {
        "timeline": {"limit": 20, "unread_thread_notifications": True},
        "state": {"lazy_load_members": True},
    },
}


@dataclass
class Browser:
    """One logged-in user's httpx client, sending what Element Web sends."""

    http: httpx.Client
    user_id: str
    device_id: str

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        assert response.headers.get("access-control-allow-origin") in ("*", ORIGIN), (
            f"{method} {path} answered without Access-Control-Allow-Origin"
        )
        return response

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


@dataclass
class Scene:
    server: EdgeProcess
    alice: Browser
    bob: Browser
    room_id: str
    login: dict[str, Any]


def _browser_client(base_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Origin": ORIGIN}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def _register_like_js_sdk(base_url: str, localpart: str) -> None:
    """matrix-js-sdk first posts without ``auth`` to get the flows and a session, then
    completes ``m.login.dummy`` within that session."""
    with _browser_client(base_url) as http:
        body = {"username": localpart, "password": PASSWORD, "initial_device_display_name": "Element"}
        first = http.post(f"{V3}/register", json=body)
        assert first.status_code == 401, first.text
        flows = first.json()
        assert any(f["stages"] == ["m.login.dummy"] for f in flows["flows"]), flows
        done = http.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": flows["session"]}})
        assert done.status_code == 200, done.text


def _log_in(base_url: str, localpart: str) -> tuple[Browser, dict[str, Any]]:
    with _browser_client(base_url) as http:
        flows = http.get(f"{V3}/login").json()
        assert {"type": "m.login.password"} in flows["flows"]
        response = http.post(f"{V3}/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart},
            "password": PASSWORD, "initial_device_display_name": "app.element.example: Firefox",
        })
        assert response.status_code == 200, response.text
        login = response.json()
    # Element switches to the base URL /login hands back.
    well_known_base = login["well_known"]["m.homeserver"]["base_url"]
    http = _browser_client(well_known_base, login["access_token"])
    return Browser(http, login["user_id"], login["device_id"]), login


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = EdgeProcess(tmp_path_factory.mktemp("js_startup"))
    server.start()
    browsers: list[Browser] = []
    try:
        names = [f"alice{secrets.token_hex(3)}", f"bob{secrets.token_hex(3)}"]
        for name in names:
            _register_like_js_sdk(server.base_url, name)
        alice, login = _log_in(server.base_url, names[0])
        bob, _ = _log_in(server.base_url, names[1])
        browsers += [alice, bob]
        bob.ok("PUT", f"{V3}/profile/{quote(bob.user_id)}/displayname", json={"displayname": "Bobby Tables"})
        room_id = alice.ok("POST", f"{V3}/createRoom", json={
            "name": "startup room", "preset": "private_chat", "invite": [bob.user_id],
        })["room_id"]
        bob.ok("POST", f"{V3}/join/{quote(room_id)}", json={})
        yield Scene(server, alice, bob, room_id, login)
    finally:
        for browser in browsers:
            browser.http.close()
        server.terminate()


def test_login_hands_back_the_servers_own_base_url(scene: Scene) -> None:
    base_url = scene.login["well_known"]["m.homeserver"]["base_url"]
    assert base_url.rstrip("/") == scene.server.base_url
    assert httpx.get(f"{base_url}/_matrix/client/versions").status_code == 200


def test_start_up_sequence(scene: Scene) -> None:
    alice = scene.alice
    versions = alice.ok("GET", "/_matrix/client/versions")
    assert "v1.1" in versions["versions"]

    capabilities = alice.ok("GET", f"{V3}/capabilities")["capabilities"]
    assert capabilities["m.room_versions"]["default"] in capabilities["m.room_versions"]["available"]

    rules = alice.ok("GET", f"{V3}/pushrules/")
    assert set(rules["global"]) >= {"override", "content", "room", "sender", "underride"}
    assert any(r["rule_id"] == ".m.rule.master" for r in rules["global"]["override"])

    filter_id = alice.ok("POST", f"{V3}/user/{quote(alice.user_id)}/filter", json=JS_SDK_FILTER)["filter_id"]
    stored = alice.ok("GET", f"{V3}/user/{quote(alice.user_id)}/filter/{filter_id}")
    assert stored["room"]["state"]["lazy_load_members"] is True

    # The inline JSON filter and query parameters the spec does not define (ignored).
    params = {
        "filter": json.dumps(JS_SDK_FILTER), "timeout": "0", "set_presence": "online",
        "_cacheBuster": "1732712345678", "org.example.unknown": "yes", "full_state": "false",
    }
    first = alice.ok("GET", f"{V3}/sync", params=params)
    assert first["next_batch"]
    joined = first["rooms"]["join"][scene.room_id]
    assert any(e["type"] == "m.room.create" for e in joined["state"]["events"] + joined["timeline"]["events"])

    # The stored filter id works the same way, and an incremental sync follows.
    alice.ok("PUT", f"{V3}/rooms/{quote(scene.room_id)}/send/m.room.message/js{secrets.token_hex(4)}",
             json={"msgtype": "m.text", "body": "after start-up"})
    again = alice.ok("GET", f"{V3}/sync", params={
        "filter": filter_id, "since": first["next_batch"], "timeout": "0", "_cacheBuster": "2",
    })
    bodies = [e["content"].get("body") for e in again["rooms"]["join"][scene.room_id]["timeline"]["events"]]
    assert bodies == ["after start-up"]

    devices = alice.ok("GET", f"{V3}/devices")["devices"]
    assert alice.device_id in {d["device_id"] for d in devices}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{V3}/sync"),
        ("PUT", f"{V3}/rooms/!room:example/send/m.room.message/txn1"),
        ("POST", f"{V3}/user_directory/search"),
        ("GET", f"{V3}/pushrules/"),
        ("POST", f"{V3}/login"),
    ],
)
def test_preflight_names_authorization(scene: Scene, method: str, path: str) -> None:
    response = httpx.options(f"{scene.server.base_url}{path}", headers={
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert 200 <= response.status_code < 300, response.text
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert method in methods
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


def test_access_token_query_parameter(scene: Scene) -> None:
    token = scene.login["access_token"]
    response = httpx.get(f"{scene.server.base_url}{V3}/account/whoami", params={"access_token": token})
    assert response.status_code == 200 and response.json()["user_id"] == scene.alice.user_id


def test_members_at_a_sync_token_without_leaves(scene: Scene) -> None:
    alice, bob = scene.alice, scene.bob
    carol_name = f"carol{secrets.token_hex(3)}"
    _register_like_js_sdk(scene.server.base_url, carol_name)
    carol, _ = _log_in(scene.server.base_url, carol_name)
    try:
        room = quote(scene.room_id)
        alice.ok("POST", f"{V3}/rooms/{room}/invite", json={"user_id": carol.user_id})
        carol.ok("POST", f"{V3}/rooms/{room}/join", json={})
        while_in = alice.ok("GET", f"{V3}/sync", params={"timeout": "0"})["next_batch"]
        carol.ok("POST", f"{V3}/rooms/{room}/leave", json={})

        def members(**params: str) -> dict[str, str]:
            chunk = alice.ok("GET", f"{V3}/rooms/{room}/members", params=params)["chunk"]
            return {e["state_key"]: e["content"]["membership"] for e in chunk}

        assert members(at=while_in, not_membership="leave") == {
            alice.user_id: "join", bob.user_id: "join", carol.user_id: "join",
        }
        assert members(not_membership="leave") == {alice.user_id: "join", bob.user_id: "join"}
        assert members()[carol.user_id] == "leave"
        assert members(membership="leave") == {carol.user_id: "leave"}
        joined = alice.ok("GET", f"{V3}/rooms/{room}/joined_members")["joined"]
        assert joined[bob.user_id]["display_name"] == "Bobby Tables"
    finally:
        carol.http.close()


def test_account_data_put_then_seen_in_sync(scene: Scene) -> None:
    alice = scene.alice
    since = alice.ok("GET", f"{V3}/sync", params={"timeout": "0"})["next_batch"]
    path = f"{V3}/user/{quote(alice.user_id)}/account_data/im.vector.setting.breadcrumbs"
    alice.ok("PUT", path, json={"recent_rooms": [scene.room_id]})
    assert alice.ok("GET", path) == {"recent_rooms": [scene.room_id]}
    later = alice.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "5000", "_cacheBuster": "3"})
    events = {e["type"]: e["content"] for e in later["account_data"]["events"]}
    assert events["im.vector.setting.breadcrumbs"] == {"recent_rooms": [scene.room_id]}


def test_messages_with_a_filter_param(scene: Scene) -> None:
    alice, bob = scene.alice, scene.bob
    room = quote(scene.room_id)
    for i in range(3):
        bob.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/b{i}{secrets.token_hex(3)}",
               json={"msgtype": "m.text", "body": f"bob {i}"})
        alice.ok("PUT", f"{V3}/rooms/{room}/send/org.example.custom/a{i}{secrets.token_hex(3)}",
                 json={"n": i})
    token = alice.ok("GET", f"{V3}/sync", params={"timeout": "0"})["next_batch"]
    # Element's timeline filter: lazy-loaded members, only message events, no custom ones.
    event_filter = {"lazy_load_members": True, "types": ["m.room.message"], "not_senders": [alice.user_id]}
    page = alice.ok("GET", f"{V3}/rooms/{room}/messages", params={
        "dir": "b", "from": token, "limit": "10", "filter": json.dumps(event_filter),
    })
    assert [e["content"]["body"] for e in page["chunk"]][:3] == ["bob 2", "bob 1", "bob 0"]
    assert {e["type"] for e in page["chunk"]} == {"m.room.message"}
    assert {e["sender"] for e in page["chunk"]} == {bob.user_id}
    # Lazy loading sends the senders' member events along in ``state``.
    state_keys = {e["state_key"] for e in page.get("state", []) if e["type"] == "m.room.member"}
    assert bob.user_id in state_keys
    # Without the filter the custom events are there too.
    unfiltered = alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "from": token, "limit": "6"})
    assert [e["type"] for e in unfiltered["chunk"]].count("org.example.custom") == 3


def test_user_directory_search_finds_a_room_mate(scene: Scene) -> None:
    found = scene.alice.ok("POST", f"{V3}/user_directory/search", json={"search_term": "bobby", "limit": 10})
    assert found["limited"] is False
    assert [r["user_id"] for r in found["results"]] == [scene.bob.user_id]
    assert found["results"][0]["display_name"] == "Bobby Tables"


def test_thirdparty_protocols_is_empty_without_bridges(scene: Scene) -> None:
    assert scene.alice.ok("GET", f"{V3}/thirdparty/protocols") == {}


def test_turn_server_is_empty_when_unconfigured(scene: Scene) -> None:
    assert scene.alice.ok("GET", f"{V3}/voip/turnServer") == {}
