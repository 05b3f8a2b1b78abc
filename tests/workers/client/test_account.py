"""UIA-protected account changes: /account/password, /account/deactivate; /account/3pid."""

from __future__ import annotations

from typing import Any

from tests.workers.client.conftest import PASSWORD, V3, Account, Api

NEW = "a brand new password"


def _password_auth(user: str, password: str, session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


def test_change_password_flow(api: Api, alice: Account) -> None:
    other = api.login("alice").json()
    url = f"{V3}/account/password"
    first = api.client.post(url, headers=alice.headers, json={"new_password": NEW})
    assert first.status_code == 401
    assert first.json()["flows"] == [{"stages": ["m.login.password"]}]
    session = first.json()["session"]
    wrong = api.client.post(
        url, headers=alice.headers,
        json={"new_password": NEW, "auth": _password_auth("alice", "wrong", session)},
    )
    assert wrong.status_code == 401
    assert wrong.json()["errcode"] == "M_FORBIDDEN"
    assert wrong.json()["flows"] and wrong.json()["session"] == session
    done = api.client.post(
        url, headers=alice.headers,
        json={"new_password": NEW, "auth": _password_auth("alice", PASSWORD, session)},
    )
    assert done.status_code == 200, done.text
    # The caller stays logged in; the other device is logged out and deleted.
    assert api.client.get(f"{V3}/account/whoami", headers=alice.headers).status_code == 200
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert api.client.get(f"{V3}/account/whoami", headers=other_headers).status_code == 401
    devices = api.client.get(f"{V3}/devices", headers=alice.headers).json()["devices"]
    assert [d["device_id"] for d in devices] == [alice.device_id]
    assert api.login("alice").status_code == 403
    assert api.login("alice", NEW).status_code == 200


def test_change_password_keeps_devices_when_asked(api: Api, alice: Account) -> None:
    other = api.login("alice").json()
    response = api.client.post(
        f"{V3}/account/password", headers=alice.headers,
        json={"new_password": NEW, "logout_devices": False,
              "auth": _password_auth("@alice:example.test", PASSWORD)},
    )
    assert response.status_code == 200
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert api.client.get(f"{V3}/account/whoami", headers=other_headers).status_code == 200


def test_uia_password_must_be_the_requesters(api: Api, alice: Account, bob: Account) -> None:
    response = api.client.post(
        f"{V3}/account/password", headers=alice.headers,
        json={"new_password": NEW, "auth": _password_auth("bob", PASSWORD)},
    )
    assert response.status_code == 401 and response.json()["errcode"] == "M_FORBIDDEN"


def test_uia_session_is_bound_to_user_and_operation(api: Api, alice: Account, bob: Account) -> None:
    session = api.client.post(
        f"{V3}/account/password", headers=alice.headers, json={"new_password": NEW}
    ).json()["session"]
    stolen = api.client.post(
        f"{V3}/account/password", headers=bob.headers,
        json={"new_password": NEW, "auth": _password_auth("bob", PASSWORD, session)},
    )
    assert stolen.status_code == 403
    elsewhere = api.client.post(
        f"{V3}/account/deactivate", headers=alice.headers,
        json={"auth": _password_auth("alice", PASSWORD, session)},
    )
    assert elsewhere.status_code == 403


def test_change_password_refusals(api: Api, alice: Account) -> None:
    no_token = api.client.post(f"{V3}/account/password", json={"new_password": NEW})
    assert no_token.status_code == 401 and no_token.json()["errcode"] == "M_MISSING_TOKEN"
    missing = api.client.post(f"{V3}/account/password", headers=alice.headers, json={})
    assert missing.status_code == 400 and missing.json()["errcode"] == "M_MISSING_PARAM"


def test_deactivate(api: Api, alice: Account) -> None:
    url = f"{V3}/account/deactivate"
    first = api.client.post(url, headers=alice.headers, json={})
    assert first.status_code == 401 and "session" in first.json()
    done = api.client.post(
        url, headers=alice.headers,
        json={"auth": _password_auth("alice", PASSWORD, first.json()["session"])},
    )
    assert done.status_code == 200
    assert done.json() == {"id_server_unbind_result": "success"}
    revoked = api.client.get(f"{V3}/account/whoami", headers=alice.headers)
    assert revoked.status_code == 401 and revoked.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert api.login("alice").status_code == 403
    # The ID stays taken.
    assert api.register("alice").json()["errcode"] == "M_USER_IN_USE"
    assert api.client.get(f"{V3}/profile/{alice.user_id}").json() == {}


def test_deactivate_hook(api: Api, alice: Account) -> None:
    calls: list[tuple[str, Any]] = []

    class Hooks:
        async def user_deactivated(self, user_id: str) -> None:
            calls.append(("deactivated", user_id))

        async def devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
            calls.append(("devices", (user_id, device_ids)))

    api.env.hooks = Hooks()
    api.client.post(
        f"{V3}/account/deactivate", headers=alice.headers,
        json={"auth": _password_auth("alice", PASSWORD)},
    )
    assert calls == [("devices", (alice.user_id, [alice.device_id])), ("deactivated", alice.user_id)]


def test_threepids(api: Api, alice: Account) -> None:
    assert api.client.get(f"{V3}/account/3pid", headers=alice.headers).json() == {"threepids": []}
    assert api.client.get(f"{V3}/account/3pid").status_code == 401
