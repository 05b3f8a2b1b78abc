"""workers.auth: token extraction, refusals, user ID grammar."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.requests import Request

from d1 import accounts as accounts_db
from d1 import devices as devices_db
from d1 import tokens as tokens_db
from local_runtime.config import load_config
from local_runtime.env import Env
from workers.auth import (
    Requester,
    hash_token,
    is_local_user,
    is_valid_localpart,
    is_valid_user_id,
    require_user,
    split_user_id,
    user_id_for_localpart,
)
from workers.errors import MatrixError


def _request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": raw,
         "query_string": query.encode(), "client": ("127.0.0.1", 1)}
    )


@pytest.fixture
async def env(tmp_path: Path):
    environment = Env(load_config(data_dir=str(tmp_path), server_name="example.test"))
    await environment.start()
    db = environment.DB
    await db.batch([
        *accounts_db.insert_user(db, "@alice:example.test", "alice", None, 1),
        devices_db.upsert_device(db, "@alice:example.test", "DEV", None, 1),
        tokens_db.insert_access_token(db, hash_token("good"), "@alice:example.test", "DEV", 1),
        tokens_db.insert_access_token(
            db, hash_token("expired"), "@alice:example.test", "DEV", 1, expires_ts=2
        ),
    ])
    yield environment
    await environment.close()


async def test_bearer_header_and_query_parameter(env: Env) -> None:
    by_header = await require_user(_request({"Authorization": "Bearer good"}), env)
    by_query = await require_user(_request(query="access_token=good"), env)
    assert by_header == by_query
    assert by_header.user_id == "@alice:example.test"
    assert by_header.device_id == "DEV"
    assert isinstance(by_header, Requester) and not by_header.is_guest
    device = await devices_db.get_device(env.DB, "@alice:example.test", "DEV")
    assert device is not None and device["last_seen_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("headers", "query", "errcode", "soft_logout"),
    [
        ({}, "", "M_MISSING_TOKEN", None),
        ({"Authorization": "Basic good"}, "", "M_MISSING_TOKEN", None),
        ({"Authorization": "Bearer nope"}, "", "M_UNKNOWN_TOKEN", False),
        ({}, "access_token=nope", "M_UNKNOWN_TOKEN", False),
        ({"Authorization": "Bearer expired"}, "", "M_UNKNOWN_TOKEN", True),
    ],
)
async def test_refusals(
    env: Env, headers: dict[str, str], query: str, errcode: str, soft_logout: bool | None
) -> None:
    with pytest.raises(MatrixError) as info:
        await require_user(_request(headers, query), env)
    assert info.value.status == 401
    assert info.value.errcode == errcode
    assert info.value.extra.get("soft_logout") == soft_logout


async def test_revoked_and_deactivated(env: Env) -> None:
    db = env.DB
    await db.batch(accounts_db.mark_deactivated(db, "@alice:example.test"))
    with pytest.raises(MatrixError) as info:
        await require_user(_request({"Authorization": "Bearer good"}), env)
    assert info.value.errcode == "M_UNKNOWN_TOKEN"
    await db.batch(tokens_db.delete_user_tokens(db, "@alice:example.test"))
    with pytest.raises(MatrixError):
        await require_user(_request({"Authorization": "Bearer good"}), env)


@pytest.mark.parametrize(
    ("localpart", "valid"),
    [("alice", True), ("a.b_c=d-e/f+g", True), ("0", True), ("Alice", False), ("", False),
     ("a b", False), ("a:b", False), ("é", False), ("a*", False)],
)
def test_localpart_grammar(localpart: str, valid: bool) -> None:
    assert is_valid_localpart(localpart) is valid


@pytest.mark.parametrize(
    ("user_id", "valid"),
    [("@alice:example.test", True), ("@Historical Name!:x.org", True), ("@:x.org", True),
     ("alice:example.test", False), ("@alice", False), ("@alice:", False),
     ("@" + "a" * 250 + ":x.org", False), ("@a\x00b:x.org", False)],
)
def test_user_id_grammar(user_id: str, valid: bool) -> None:
    assert is_valid_user_id(user_id) is valid


def test_user_id_helpers(tmp_path: Path) -> None:
    class FakeEnv:
        config = load_config(data_dir=str(tmp_path), server_name="example.test")

    assert user_id_for_localpart(FakeEnv, "bob") == "@bob:example.test"
    assert split_user_id("@bob:example.test:8448") == ("bob", "example.test:8448")
    assert is_local_user(FakeEnv, "@bob:example.test")
    assert not is_local_user(FakeEnv, "@bob:other.test")
    assert not is_local_user(FakeEnv, "not-a-user")
    assert asyncio.iscoroutinefunction(require_user)
