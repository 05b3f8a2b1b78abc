"""matrix-nio's AsyncClient against a real ``matrix-edge serve``: register, log in, whoami,
display name, devices, logout."""

from __future__ import annotations

import secrets

import pytest
from nio import (
    AsyncClient,
    DevicesResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    WhoamiError,
    WhoamiResponse,
)

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


async def test_nio_account_lifecycle(live_server: LiveServer) -> None:
    localpart = "nio" + secrets.token_hex(4)
    user_id = f"@{localpart}:{live_server.server_name}"
    password = "nio password 1"

    registrar = AsyncClient(live_server.base_url, localpart)
    try:
        registered = await registrar.register(localpart, password, device_name="nio register")
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == user_id
    finally:
        await registrar.close()

    client = AsyncClient(live_server.base_url, user_id)
    try:
        login = await client.login(password, device_name="nio test")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == user_id and login.device_id

        whoami = await client.whoami()
        assert isinstance(whoami, WhoamiResponse), whoami
        assert whoami.user_id == user_id and whoami.device_id == login.device_id

        set_name = await client.set_displayname("Nio Tester")
        assert isinstance(set_name, ProfileSetDisplayNameResponse), set_name
        got = await client.get_displayname()
        assert isinstance(got, ProfileGetDisplayNameResponse), got
        assert got.displayname == "Nio Tester"

        devices = await client.devices()
        assert isinstance(devices, DevicesResponse), devices
        names = {d.id: d.display_name for d in devices.devices}
        assert names[login.device_id] == "nio test"
        assert len(names) == 2

        logout = await client.logout()
        assert isinstance(logout, LogoutResponse), logout
        client.access_token = login.access_token  # reuse the revoked token on purpose
        after = await client.whoami()
        assert isinstance(after, WhoamiError)
        assert after.status_code == "M_UNKNOWN_TOKEN"
    finally:
        await client.close()
