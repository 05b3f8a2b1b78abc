"""GET/PUT/DELETE /profile/{userId}[/{keyName}] and the profile_changed hook."""

from __future__ import annotations

import pytest

from tests.workers.client.conftest import V3, Account, Api


def test_set_and_get_fields(api: Api, alice: Account) -> None:
    base = f"{V3}/profile/{alice.user_id}"
    assert api.client.put(f"{base}/displayname", headers=alice.headers,
                          json={"displayname": "Alice A."}).status_code == 200
    assert api.client.put(f"{base}/avatar_url", headers=alice.headers,
                          json={"avatar_url": "mxc://example.test/abc"}).status_code == 200
    assert api.client.get(f"{base}/displayname").json() == {"displayname": "Alice A."}
    assert api.client.get(f"{base}/avatar_url").json() == {"avatar_url": "mxc://example.test/abc"}
    assert api.client.get(base).json() == {
        "displayname": "Alice A.", "avatar_url": "mxc://example.test/abc"
    }
    assert api.client.delete(f"{base}/avatar_url", headers=alice.headers).status_code == 200
    missing = api.client.get(f"{base}/avatar_url")
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    assert api.client.get(f"/_matrix/client/r0/profile/{alice.user_id}").json() == {
        "displayname": "Alice A."
    }


def test_other_users_profile_is_read_only(api: Api, alice: Account, bob: Account) -> None:
    response = api.client.put(
        f"{V3}/profile/{alice.user_id}/displayname", headers=bob.headers, json={"displayname": "x"}
    )
    assert response.status_code == 403 and response.json()["errcode"] == "M_FORBIDDEN"
    assert api.client.get(f"{V3}/profile/{alice.user_id}/displayname").json() == {"displayname": "alice"}


def test_unknown_user(api: Api) -> None:
    for path in ["/profile/@ghost:example.test", "/profile/@ghost:example.test/displayname"]:
        response = api.client.get(V3 + path)
        assert response.status_code == 404 and response.json()["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(
    ("key", "body", "status", "errcode"),
    [
        ("displayname", {}, 400, "M_MISSING_PARAM"),
        ("displayname", {"displayname": 5}, 400, "M_BAD_JSON"),
        ("displayname", {"displayname": "x" * 300}, 400, "M_BAD_JSON"),
        ("avatar_url", {"avatar_url": "https://example.test/a.png"}, 400, "M_BAD_JSON"),
        ("m.tz", {"m.tz": "Europe/Paris"}, 403, "M_FORBIDDEN"),
    ],
)
def test_put_refusals(api: Api, alice: Account, key: str, body: dict, status: int, errcode: str) -> None:
    response = api.client.put(f"{V3}/profile/{alice.user_id}/{key}", headers=alice.headers, json=body)
    assert response.status_code == status
    assert response.json()["errcode"] == errcode


def test_put_needs_token_and_json(api: Api, alice: Account) -> None:
    url = f"{V3}/profile/{alice.user_id}/displayname"
    assert api.client.put(url, json={"displayname": "x"}).json()["errcode"] == "M_MISSING_TOKEN"
    bad = api.client.put(url, headers=alice.headers, content=b"{{")
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_NOT_JSON"


def test_profile_changed_hook(api: Api, alice: Account) -> None:
    seen: list[str] = []

    class Hooks:
        async def profile_changed(self, user_id: str) -> None:
            seen.append(user_id)

    api.env.hooks = Hooks()
    api.client.put(f"{V3}/profile/{alice.user_id}/displayname", headers=alice.headers,
                   json={"displayname": "New"})
    api.client.delete(f"{V3}/profile/{alice.user_id}/displayname", headers=alice.headers)
    assert seen == [alice.user_id, alice.user_id]


def test_no_hook_attribute_is_fine(api: Api, alice: Account) -> None:
    api.env.hooks = object()
    response = api.client.put(f"{V3}/profile/{alice.user_id}/displayname", headers=alice.headers,
                              json={"displayname": "New"})
    assert response.status_code == 200
