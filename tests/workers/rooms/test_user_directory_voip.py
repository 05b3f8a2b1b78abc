"""User directory search, TURN credentials and the (empty) third-party lookups."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

from tests.workers.rooms.conftest import SERVER, V3, Harness


def test_user_directory_finds_users_sharing_a_room_or_in_public_rooms(hs: Harness) -> None:
    alice, bob, carol, dave = hs.user("alice"), hs.user("bob"), hs.user("carol"), hs.user("dave")
    private = hs.create_room(alice, preset="private_chat", invite=[f"@bob:{SERVER}"])
    hs.post(bob, f"/rooms/{private}/join")
    public = hs.create_room(carol, preset="public_chat")
    hs.client.put(f"{V3}/profile/@carol:{SERVER}/displayname", headers=carol, json={"displayname": "Caroline"})
    hs.create_room(dave, preset="private_chat")  # dave shares nothing with alice

    def search(term: str, **extra: object) -> dict:
        response = hs.client.post(f"{V3}/user_directory/search", headers=alice, json={"search_term": term, **extra})
        assert response.status_code == 200
        return response.json()

    assert [r["user_id"] for r in search("bob")["results"]] == [f"@bob:{SERVER}"]
    found = search("carol")["results"]
    assert found == [{"user_id": f"@carol:{SERVER}", "display_name": "Caroline"}]
    assert search("CAROLINE")["results"][0]["user_id"] == f"@carol:{SERVER}"
    assert search("dave")["results"] == []
    limited = search(SERVER, limit=1)
    assert len(limited["results"]) == 1 and limited["limited"] is True
    assert public


def test_user_directory_refusals(hs: Harness) -> None:
    alice = hs.user("alice")
    assert hs.client.post(f"{V3}/user_directory/search", json={"search_term": "x"}).status_code == 401
    bad = hs.client.post(f"{V3}/user_directory/search", headers=alice, json={"search_term": 3})
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_BAD_JSON"


def test_turn_server(hs: Harness) -> None:
    alice = hs.user("alice")
    assert hs.client.get(f"{V3}/voip/turnServer", headers=alice).json() == {}
    hs.env.config = replace(hs.env.config, turn_uris=("turn:turn.example:3478?transport=udp",),
                            turn_shared_secret="s3cret")
    body = hs.client.get(f"{V3}/voip/turnServer", headers=alice).json()
    assert body["uris"] == ["turn:turn.example:3478?transport=udp"] and body["ttl"] == 86400
    expected = base64.b64encode(hmac.new(b"s3cret", body["username"].encode(), hashlib.sha1).digest()).decode()
    assert body["password"] == expected and body["username"].endswith(f":@alice:{SERVER}")
    assert hs.client.get(f"{V3}/voip/turnServer").status_code == 401


def test_thirdparty_is_empty(hs: Harness) -> None:
    alice = hs.user("alice")
    assert hs.client.get(f"{V3}/thirdparty/protocols", headers=alice).json() == {}
    assert hs.client.get(f"{V3}/thirdparty/protocol/irc", headers=alice).status_code == 404
    assert hs.client.get(f"{V3}/thirdparty/user?x=1", headers=alice).json() == []
