"""The token lookup cache (workers.auth, env.TOKEN_CACHE): a token cached as valid is
refused with 401 M_UNKNOWN_TOKEN as soon as any change of this process revokes it, and a
revocation made behind the cache's back (another process) within TOKEN_CACHE_SECONDS."""

from __future__ import annotations

from typing import Any

from kv.local_cache import LocalCache
from tests.workers.client.conftest import PASSWORD, V3, Account, Api
from workers.auth import TOKEN_CACHE_SECONDS, hash_token

AUTH = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _use(api: Api, token: str) -> None:
    """Authenticated requests until the token is in the cache (a token's first use marks it
    used, which is not cached; the next lookup is)."""
    for _ in range(2):
        assert api.client.get(f"{V3}/account/whoami", headers=_bearer(token)).status_code == 200
    assert api.env.TOKEN_CACHE.get(hash_token(token)) is not None


def _assert_unknown(api: Api, token: str) -> None:
    response = api.client.get(f"{V3}/account/whoami", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert response.json()["soft_logout"] is False


def test_cached_token_is_refused_right_after_logout(api: Api, alice: Account) -> None:
    _use(api, alice.access_token)
    assert api.client.post(f"{V3}/logout", headers=alice.headers).json() == {}
    _assert_unknown(api, alice.access_token)


def test_logout_all_drops_every_cached_token_of_the_user(api: Api, alice: Account, bob: Account) -> None:
    other = api.login("alice").json()["access_token"]
    for token in (alice.access_token, other, bob.access_token):
        _use(api, token)
    assert api.client.post(f"{V3}/logout/all", headers=_bearer(other)).json() == {}
    _assert_unknown(api, alice.access_token)
    _assert_unknown(api, other)
    _use(api, bob.access_token)


def test_deleting_a_device_revokes_its_cached_token(api: Api, alice: Account) -> None:
    other = api.login("alice").json()
    _use(api, other["access_token"])
    deleted = api.client.post(
        f"{V3}/delete_devices", headers=alice.headers, json={"devices": [other["device_id"]], "auth": AUTH}
    )
    assert deleted.status_code == 200, deleted.text
    _assert_unknown(api, other["access_token"])
    _use(api, alice.access_token)


def test_password_change_revokes_other_devices_cached_tokens(api: Api, alice: Account) -> None:
    other = api.login("alice").json()["access_token"]
    _use(api, other)
    changed = api.client.post(
        f"{V3}/account/password", headers=alice.headers, json={"new_password": "a new one", "auth": AUTH}
    )
    assert changed.status_code == 200, changed.text
    _assert_unknown(api, other)
    _use(api, alice.access_token)


def test_deactivation_revokes_cached_tokens(api: Api, alice: Account) -> None:
    other = api.login("alice").json()["access_token"]
    _use(api, other)
    done = api.client.post(f"{V3}/account/deactivate", headers=alice.headers, json={"auth": AUTH})
    assert done.status_code == 200, done.text
    _assert_unknown(api, other)
    _assert_unknown(api, alice.access_token)


def test_refresh_retires_the_cached_predecessor(api: Api, alice: Account) -> None:
    first = api.login("alice", refresh_token=True).json()
    _use(api, first["access_token"])
    pair = api.client.post(f"{V3}/refresh", json={"refresh_token": first["refresh_token"]}).json()
    # The first use of the new token revokes the old one, cached or not.
    _use(api, pair["access_token"])
    _assert_unknown(api, first["access_token"])


def test_revocation_by_another_process_is_seen_after_the_ttl(api: Api, alice: Account) -> None:
    now = [1000.0]
    api.env.TOKEN_CACHE = LocalCache(ttl=TOKEN_CACHE_SECONDS, clock=lambda: now[0])
    _use(api, alice.access_token)

    async def revoke_elsewhere() -> Any:
        # Straight to D1, as a worker in another process would: this process is not told.
        return await api.env.DB.prepare("DELETE FROM access_tokens WHERE user_id = ?").bind(alice.user_id).run()

    api.call(revoke_elsewhere)
    now[0] += TOKEN_CACHE_SECONDS / 2
    assert api.client.get(f"{V3}/account/whoami", headers=alice.headers).status_code == 200
    now[0] += TOKEN_CACHE_SECONDS
    _assert_unknown(api, alice.access_token)


def test_unknown_and_deactivated_lookups_are_not_cached(api: Api, alice: Account) -> None:
    _assert_unknown(api, "not-a-token")
    assert api.env.TOKEN_CACHE.get(hash_token("not-a-token")) is None
