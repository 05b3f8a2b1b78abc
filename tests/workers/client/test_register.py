"""POST /register (UIA with m.login.dummy), GET /register/available, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.client.conftest import PASSWORD, V3, Api, make_client


def test_first_call_is_a_uia_challenge(api: Api) -> None:
    response = api.client.post(f"{V3}/register", json={"username": "carol", "password": PASSWORD})
    assert response.status_code == 401
    body = response.json()
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert body["params"] == {}
    assert isinstance(body["session"], str) and body["session"]
    assert "errcode" not in body


def test_register_creates_user_device_and_token(api: Api) -> None:
    response = api.register("Carol", initial_device_display_name="Phone", device_id="MYDEV")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "@carol:example.test"  # lower-cased onto the grammar
    assert body["device_id"] == "MYDEV"
    assert "refresh_token" not in body and "expires_in_ms" not in body
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    whoami = api.client.get(f"{V3}/account/whoami", headers=headers).json()
    assert whoami == {"user_id": "@carol:example.test", "device_id": "MYDEV", "is_guest": False}
    device = api.client.get(f"{V3}/devices/MYDEV", headers=headers).json()
    assert device["display_name"] == "Phone"
    profile = api.client.get(f"{V3}/profile/@carol:example.test").json()
    assert profile == {"displayname": "carol"}
    assert api.login("carol").status_code == 200


def test_register_without_username_generates_one(api: Api) -> None:
    first = api.register(None)
    second = api.register(None)
    assert first.status_code == second.status_code == 200
    assert first.json()["user_id"] != second.json()["user_id"]
    assert first.json()["user_id"].endswith(":example.test")


def test_inhibit_login(api: Api) -> None:
    body = api.register("dave", inhibit_login=True).json()
    assert body["user_id"] == "@dave:example.test"
    assert "access_token" not in body and "device_id" not in body


def test_register_with_refresh_token(api: Api) -> None:
    body = api.register("erin", refresh_token=True).json()
    assert body["refresh_token"] and body["expires_in_ms"] > 0


def test_username_taken(api: Api) -> None:
    api.account("frank")
    response = api.register("frank")
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_USER_IN_USE"
    available = api.client.get(f"{V3}/register/available", params={"username": "frank"})
    assert available.status_code == 400 and available.json()["errcode"] == "M_USER_IN_USE"


@pytest.mark.parametrize("username", ["has space", "colon:", "star*", "ümlaut", "", "a" * 250])
def test_invalid_username(api: Api, username: str) -> None:
    response = api.register(username)
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_USERNAME"
    available = api.client.get(f"{V3}/register/available", params={"username": username})
    assert available.json()["errcode"] == "M_INVALID_USERNAME"


def test_available(api: Api) -> None:
    response = api.client.get(f"{V3}/register/available", params={"username": "nobody"})
    assert response.json() == {"available": True}


def test_guest_registration_is_refused(api: Api) -> None:
    response = api.client.post(f"{V3}/register?kind=guest", json={})
    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert "guest" in response.json()["error"].lower()


def test_registration_disabled(tmp_path: Path) -> None:
    with make_client(tmp_path, enable_registration=False) as client:
        response = client.post(f"{V3}/register", json={"username": "x", "password": PASSWORD})
        assert response.status_code == 403
        assert response.json()["errcode"] == "M_FORBIDDEN"


def test_bad_json(api: Api) -> None:
    response = api.client.post(
        f"{V3}/register", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_NOT_JSON"


def test_unknown_session_and_wrong_stage(api: Api) -> None:
    body = {"username": "gina", "password": PASSWORD}
    unknown = api.client.post(
        f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": "nope"}}
    )
    assert unknown.status_code == 400
    session = api.client.post(f"{V3}/register", json=body).json()["session"]
    wrong = api.client.post(
        f"{V3}/register",
        json={**body, "auth": {"type": "m.login.password", "session": session}},
    )
    assert wrong.status_code == 401
    assert wrong.json()["session"] == session and wrong.json()["errcode"] == "M_UNRECOGNIZED"
    # The session is still usable and is spent once it succeeded.
    done = api.client.post(
        f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
    )
    assert done.status_code == 200
    again = api.client.post(
        f"{V3}/register",
        json={"username": "hank", "password": PASSWORD,
              "auth": {"type": "m.login.dummy", "session": session}},
    )
    assert again.status_code == 400


def test_empty_body_gets_the_challenge(api: Api) -> None:
    response = api.client.post(f"{V3}/register", content=b"")
    assert response.status_code == 401 and response.json()["flows"]


def test_auth_without_session_completes_in_one_call(api: Api) -> None:
    """As matrix-nio does: send m.login.dummy straight away."""
    response = api.client.post(
        f"{V3}/register",
        json={"username": "ivan", "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    assert response.status_code == 200 and response.json()["user_id"] == "@ivan:example.test"


def test_r0_prefix(api: Api) -> None:
    response = api.client.post("/_matrix/client/r0/register", json={})
    assert response.status_code == 401 and "flows" in response.json()
