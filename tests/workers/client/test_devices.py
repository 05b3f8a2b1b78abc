"""GET /devices, GET/PUT/DELETE /devices/{id}, POST /delete_devices."""

from __future__ import annotations

from typing import Any

from tests.workers.client.conftest import PASSWORD, V3, Account, Api

AUTH = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": PASSWORD}


def test_list_get_and_rename(api: Api, alice: Account, bob: Account) -> None:
    devices = api.client.get(f"{V3}/devices", headers=alice.headers).json()["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["device_id"] == alice.device_id
    assert device["last_seen_ip"] == "testclient" and device["last_seen_ts"] > 0
    renamed = api.client.put(
        f"{V3}/devices/{alice.device_id}", headers=alice.headers, json={"display_name": "Laptop"}
    )
    assert renamed.status_code == 200 and renamed.json() == {}
    got = api.client.get(f"{V3}/devices/{alice.device_id}", headers=alice.headers).json()
    assert got["display_name"] == "Laptop"
    # Bob cannot see or rename Alice's device: it is not one of his.
    assert api.client.get(f"{V3}/devices/{alice.device_id}", headers=bob.headers).status_code == 404
    other = api.client.put(f"{V3}/devices/{alice.device_id}", headers=bob.headers, json={})
    assert other.status_code == 404 and other.json()["errcode"] == "M_NOT_FOUND"


def test_device_refusals(api: Api, alice: Account) -> None:
    assert api.client.get(f"{V3}/devices").status_code == 401
    missing = api.client.get(f"{V3}/devices/NOPE", headers=alice.headers)
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    bad = api.client.put(
        f"{V3}/devices/{alice.device_id}", headers=alice.headers, json={"display_name": 5}
    )
    assert bad.status_code == 400


def test_delete_device_with_uia(api: Api, alice: Account) -> None:
    other = api.login("alice").json()
    url = f"{V3}/devices/{other['device_id']}"
    first = api.client.request("DELETE", url, headers=alice.headers)
    assert first.status_code == 401 and first.json()["flows"] == [{"stages": ["m.login.password"]}]
    session = first.json()["session"]
    wrong = api.client.request(
        "DELETE", url, headers=alice.headers,
        json={"auth": {**AUTH, "password": "nope", "session": session}},
    )
    assert wrong.status_code == 401 and wrong.json()["errcode"] == "M_FORBIDDEN"
    done = api.client.request(
        "DELETE", url, headers=alice.headers, json={"auth": {**AUTH, "session": session}}
    )
    assert done.status_code == 200
    gone = api.client.get(
        f"{V3}/account/whoami", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert gone.status_code == 401
    assert api.client.get(url, headers=alice.headers).status_code == 404
    # Deleting it again is still a success.
    again = api.client.request("DELETE", url, headers=alice.headers, json={"auth": AUTH})
    assert again.status_code == 200


def test_delete_devices(api: Api, alice: Account) -> None:
    logins: list[dict[str, Any]] = [api.login("alice").json() for _ in range(2)]
    ids = [login["device_id"] for login in logins]
    first = api.client.post(f"{V3}/delete_devices", headers=alice.headers, json={"devices": ids})
    assert first.status_code == 401
    done = api.client.post(
        f"{V3}/delete_devices", headers=alice.headers,
        json={"devices": ids + ["UNKNOWN"], "auth": {**AUTH, "session": first.json()["session"]}},
    )
    assert done.status_code == 200
    remaining = api.client.get(f"{V3}/devices", headers=alice.headers).json()["devices"]
    assert [d["device_id"] for d in remaining] == [alice.device_id]
    bad = api.client.post(f"{V3}/delete_devices", headers=alice.headers, json={"devices": "x"})
    assert bad.status_code == 400


def test_delete_own_device_logs_out(api: Api, alice: Account) -> None:
    response = api.client.request(
        "DELETE", f"{V3}/devices/{alice.device_id}", headers=alice.headers, json={"auth": AUTH}
    )
    assert response.status_code == 200
    assert api.client.get(f"{V3}/account/whoami", headers=alice.headers).status_code == 401
