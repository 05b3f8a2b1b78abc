"""GET/POST /login, /refresh, /logout, /logout/all, /account/whoami."""

from __future__ import annotations

from pathlib import Path

import pytest

from d1 import accounts as accounts_db
from tests.workers.client.conftest import PASSWORD, V3, Account, Api, make_client


def test_login_flows(api: Api) -> None:
    assert api.client.get(f"{V3}/login").json() == {"flows": [{"type": "m.login.password"}]}


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": {"type": "m.id.user", "user": "alice"}},
        {"identifier": {"type": "m.id.user", "user": "@alice:example.test"}},
        {"identifier": {"type": "m.id.user", "user": "ALICE"}},
        {"user": "alice"},
        {"user": "@alice:example.test"},
    ],
)
def test_login_with_password(api: Api, alice: Account, body: dict) -> None:
    response = api.client.post(
        f"{V3}/login", json={"type": "m.login.password", "password": PASSWORD, **body}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["user_id"] == alice.user_id
    assert result["device_id"] != alice.device_id
    assert "refresh_token" not in result
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    assert api.client.get(f"{V3}/account/whoami", headers=headers).json()["user_id"] == alice.user_id


def test_login_returns_well_known_base_url(tmp_path: Path) -> None:
    with make_client(tmp_path, public_baseurl="https://matrix.example.test") as client:
        api = Api(client)
        api.account("alice")
        result = api.login("alice").json()
    assert result["well_known"] == {"m.homeserver": {"base_url": "https://matrix.example.test"}}


def test_login_reuses_given_device(api: Api, alice: Account) -> None:
    result = api.login("alice", device_id=alice.device_id, initial_device_display_name="ignored").json()
    assert result["device_id"] == alice.device_id
    devices = api.client.get(f"{V3}/devices", headers=alice.headers).json()["devices"]
    assert [d["device_id"] for d in devices] == [alice.device_id]


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"type": "m.login.password", "user": "alice", "password": "wrong"}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "user": "nobody", "password": PASSWORD}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "user": "@alice:elsewhere.test", "password": PASSWORD},
         403, "M_FORBIDDEN"),
        ({"type": "m.login.token", "token": "x"}, 400, "M_UNKNOWN"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email",
          "address": "a@b.c"}, "password": PASSWORD}, 400, "M_UNKNOWN"),
        ({"type": "m.login.password", "user": "alice"}, 400, "M_MISSING_PARAM"),
    ],
)
def test_login_refusals(api: Api, alice: Account, body: dict, status: int, errcode: str) -> None:
    response = api.client.post(f"{V3}/login", json=body)
    assert response.status_code == status
    assert response.json()["errcode"] == errcode


def test_login_bad_json(api: Api) -> None:
    response = api.client.post(f"{V3}/login", content=b"not json")
    assert response.status_code == 400 and response.json()["errcode"] == "M_NOT_JSON"


def test_whoami_needs_a_token(api: Api) -> None:
    missing = api.client.get(f"{V3}/account/whoami")
    assert missing.status_code == 401 and missing.json()["errcode"] == "M_MISSING_TOKEN"
    unknown = api.client.get(f"{V3}/account/whoami", headers={"Authorization": "Bearer junk"})
    assert unknown.status_code == 401
    assert unknown.json() == {
        "errcode": "M_UNKNOWN_TOKEN", "error": unknown.json()["error"], "soft_logout": False
    }


def test_access_token_query_parameter(api: Api, alice: Account) -> None:
    response = api.client.get(f"{V3}/account/whoami", params={"access_token": alice.access_token})
    assert response.json()["user_id"] == alice.user_id


REVOKED_CHECKS = [
    ("GET", "/account/whoami"),
    ("GET", "/devices"),
    ("GET", "/capabilities"),
    ("GET", "/pushrules/"),
    ("GET", "/account/3pid"),
    ("PUT", "/profile/@alice:example.test/displayname"),
    ("GET", "/user/@alice:example.test/account_data/x.y"),
]


def _assert_revoked(api: Api, headers: dict[str, str]) -> None:
    for method, path in REVOKED_CHECKS:
        response = api.client.request(method, f"{V3}{path}", headers=headers, json={"displayname": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"
        assert response.json()["soft_logout"] is False


def test_logout_revokes_token_and_deletes_device(api: Api, alice: Account) -> None:
    other = api.login("alice").json()
    assert api.client.post(f"{V3}/logout", headers=alice.headers).json() == {}
    _assert_revoked(api, alice.headers)
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    devices = api.client.get(f"{V3}/devices", headers=other_headers).json()["devices"]
    assert [d["device_id"] for d in devices] == [other["device_id"]]


def test_logout_all(api: Api, alice: Account, bob: Account) -> None:
    other = api.login("alice").json()
    assert api.client.post(f"{V3}/logout/all", headers=alice.headers).json() == {}
    _assert_revoked(api, alice.headers)
    _assert_revoked(api, {"Authorization": f"Bearer {other['access_token']}"})
    assert api.client.get(f"{V3}/account/whoami", headers=bob.headers).status_code == 200
    fresh = api.login("alice").json()
    devices = api.client.get(
        f"{V3}/devices", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    ).json()["devices"]
    assert len(devices) == 1


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_refresh_token_rotation(api: Api, alice: Account) -> None:
    first = api.login("alice", refresh_token=True).json()
    assert first["expires_in_ms"] > 0 and first["refresh_token"]
    second = api.client.post(f"{V3}/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    pair = second.json()
    assert set(pair) == {"access_token", "refresh_token", "expires_in_ms"}
    # Until the new pair is used, the old refresh token can be replayed (lost response).
    again = api.client.post(f"{V3}/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 200
    pair = again.json()
    # Using the new access token retires the old refresh token and the old access token.
    whoami = api.client.get(f"{V3}/account/whoami", headers=_bearer(pair["access_token"])).json()
    assert whoami["device_id"] == first["device_id"]
    stale = api.client.post(f"{V3}/refresh", json={"refresh_token": first["refresh_token"]})
    assert stale.status_code == 401 and stale.json()["errcode"] == "M_UNKNOWN_TOKEN"
    old_access = api.client.get(f"{V3}/account/whoami", headers=_bearer(first["access_token"]))
    assert old_access.status_code == 401
    # The superseded second pair (never used) is gone too.
    lost = api.client.post(f"{V3}/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert lost.status_code == 401
    # The current refresh token keeps working.
    third = api.client.post(f"{V3}/refresh", json={"refresh_token": pair["refresh_token"]})
    assert third.status_code == 200


def test_refresh_refusals(api: Api, alice: Account) -> None:
    unknown = api.client.post(f"{V3}/refresh", json={"refresh_token": "nope"})
    assert unknown.status_code == 401 and unknown.json()["errcode"] == "M_UNKNOWN_TOKEN"
    missing = api.client.post(f"{V3}/refresh", json={})
    assert missing.status_code == 400


def test_expired_access_token_is_soft_logout(api: Api, alice: Account) -> None:
    login = api.login("alice", refresh_token=True).json()

    async def expire() -> None:
        await api.env.DB.prepare("UPDATE access_tokens SET expires_ts = 1 WHERE expires_ts IS NOT NULL").run()

    api.call(expire)
    response = api.client.get(f"{V3}/account/whoami", headers=_bearer(login["access_token"]))
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN" and response.json()["soft_logout"] is True
    refreshed = api.client.post(f"{V3}/refresh", json={"refresh_token": login["refresh_token"]}).json()
    assert api.client.get(f"{V3}/account/whoami", headers=_bearer(refreshed["access_token"])).status_code == 200


def test_logout_of_device_revokes_refresh_token(api: Api, alice: Account) -> None:
    login = api.login("alice", refresh_token=True).json()
    api.client.post(f"{V3}/logout", headers=_bearer(login["access_token"]))
    response = api.client.post(f"{V3}/refresh", json={"refresh_token": login["refresh_token"]})
    assert response.status_code == 401


def test_deactivated_user_cannot_log_in(api: Api, alice: Account) -> None:
    api.call(lambda: api.env.DB.batch(accounts_db.mark_deactivated(api.env.DB, alice.user_id)))
    assert api.login("alice").status_code == 403
    assert api.client.get(f"{V3}/account/whoami", headers=alice.headers).status_code == 401
