"""Account data (global and per room), tags, filters and their stream positions."""

from __future__ import annotations

import pytest

from d1 import account_data as account_data_db
from tests.workers.client.conftest import V3, Account, Api

ROOM = "!room:example.test"


def test_global_account_data(api: Api, alice: Account) -> None:
    url = f"{V3}/user/{alice.user_id}/account_data/org.example.settings"
    missing = api.client.get(url, headers=alice.headers)
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    assert api.client.put(url, headers=alice.headers, json={"a": 1}).json() == {}
    assert api.client.get(url, headers=alice.headers).json() == {"a": 1}
    api.client.put(url, headers=alice.headers, json={"a": 2})
    assert api.client.get(url, headers=alice.headers).json() == {"a": 2}


def test_room_account_data_is_separate(api: Api, alice: Account) -> None:
    room_url = f"{V3}/user/{alice.user_id}/rooms/{ROOM}/account_data/org.example.x"
    global_url = f"{V3}/user/{alice.user_id}/account_data/org.example.x"
    api.client.put(room_url, headers=alice.headers, json={"room": True})
    assert api.client.get(room_url, headers=alice.headers).json() == {"room": True}
    assert api.client.get(global_url, headers=alice.headers).status_code == 404
    bad_room = api.client.get(
        f"{V3}/user/{alice.user_id}/rooms/notaroom/account_data/x", headers=alice.headers
    )
    assert bad_room.status_code == 400 and bad_room.json()["errcode"] == "M_INVALID_PARAM"


def test_other_users_account_data(api: Api, alice: Account, bob: Account) -> None:
    for url in [f"{V3}/user/{alice.user_id}/account_data/x",
                f"{V3}/user/{alice.user_id}/rooms/{ROOM}/account_data/x",
                f"{V3}/user/{alice.user_id}/rooms/{ROOM}/tags"]:
        assert api.client.get(url, headers=bob.headers).json()["errcode"] == "M_FORBIDDEN"
    put = api.client.put(f"{V3}/user/{alice.user_id}/account_data/x", headers=bob.headers, json={})
    assert put.status_code == 403


@pytest.mark.parametrize("type", ["m.fully_read", "m.push_rules"])
def test_server_managed_types(api: Api, alice: Account, type: str) -> None:
    for url in [f"{V3}/user/{alice.user_id}/account_data/{type}",
                f"{V3}/user/{alice.user_id}/rooms/{ROOM}/account_data/{type}"]:
        response = api.client.put(url, headers=alice.headers, json={})
        assert response.status_code == 405
        assert response.json()["errcode"] == "M_BAD_JSON"


def test_account_data_refusals(api: Api, alice: Account) -> None:
    url = f"{V3}/user/{alice.user_id}/account_data/x"
    assert api.client.put(url, json={}).status_code == 401
    not_json = api.client.put(url, headers=alice.headers, content=b"nope")
    assert not_json.status_code == 400 and not_json.json()["errcode"] == "M_NOT_JSON"
    not_object = api.client.put(url, headers=alice.headers, json=[1])
    assert not_object.status_code == 400 and not_object.json()["errcode"] == "M_BAD_JSON"


def test_tags(api: Api, alice: Account) -> None:
    base = f"{V3}/user/{alice.user_id}/rooms/{ROOM}/tags"
    assert api.client.get(base, headers=alice.headers).json() == {"tags": {}}
    assert api.client.put(f"{base}/m.favourite", headers=alice.headers, json={"order": 0.5}).json() == {}
    assert api.client.put(f"{base}/u.work", headers=alice.headers, json={}).status_code == 200
    assert api.client.get(base, headers=alice.headers).json() == {
        "tags": {"m.favourite": {"order": 0.5}, "u.work": {}}
    }
    stored = api.client.get(
        f"{V3}/user/{alice.user_id}/rooms/{ROOM}/account_data/m.tag", headers=alice.headers
    ).json()
    assert stored == {"tags": {"m.favourite": {"order": 0.5}, "u.work": {}}}
    assert api.client.delete(f"{base}/m.favourite", headers=alice.headers).status_code == 200
    assert api.client.delete(f"{base}/never-set", headers=alice.headers).status_code == 200
    assert api.client.get(base, headers=alice.headers).json() == {"tags": {"u.work": {}}}
    bad = api.client.put(f"{base}/x", headers=alice.headers, json={"order": "high"})
    assert bad.status_code == 400
    long = api.client.put(f"{base}/{'t' * 256}", headers=alice.headers, json={})
    assert long.status_code == 400


def test_stream_positions_grow(api: Api, alice: Account) -> None:
    db = api.env.DB
    start = api.call(account_data_db.current_position, db)
    api.client.put(f"{V3}/user/{alice.user_id}/account_data/a", headers=alice.headers, json={})
    api.client.put(f"{V3}/user/{alice.user_id}/rooms/{ROOM}/tags/t", headers=alice.headers, json={})
    api.client.put(f"{V3}/user/{alice.user_id}/account_data/a", headers=alice.headers, json={"v": 2})
    rows = api.call(account_data_db.changed_since, db, alice.user_id, start)
    assert [(r["room_id"], r["type"]) for r in rows] == [(ROOM, "m.tag"), ("", "a")]
    assert [r["stream_id"] for r in rows] == [start + 2, start + 3]
    assert api.call(account_data_db.current_position, db) == start + 3


def test_filters(api: Api, alice: Account, bob: Account) -> None:
    url = f"{V3}/user/{alice.user_id}/filter"
    definition = {"room": {"timeline": {"limit": 10}}, "presence": {"types": []}}
    first = api.client.post(url, headers=alice.headers, json=definition).json()["filter_id"]
    second = api.client.post(url, headers=alice.headers, json={}).json()["filter_id"]
    assert isinstance(first, str) and first != second
    assert api.client.get(f"{url}/{first}", headers=alice.headers).json() == definition
    missing = api.client.get(f"{url}/999", headers=alice.headers)
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    assert api.client.get(f"{url}/abc", headers=alice.headers).status_code == 404
    assert api.client.get(f"{url}/{first}", headers=bob.headers).status_code == 403
    assert api.client.post(url, headers=bob.headers, json={}).status_code == 403
    assert api.client.post(url, headers=alice.headers, json=[1]).json()["errcode"] == "M_BAD_JSON"
    assert api.client.post(url, json={}).status_code == 401
