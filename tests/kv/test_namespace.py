"""The KV binding: values, metadata, expiry, listing, and consistency within one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from kv.namespace import KVError, KVNamespace


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kv(tmp_path: Path, clock: FakeClock):
    namespace = KVNamespace(tmp_path / "kv.sqlite", clock=clock)
    yield namespace
    namespace.close()


async def test_get_put_delete_types(kv: KVNamespace) -> None:
    assert await kv.get("missing") is None
    await kv.put("k", '{"a": 1}', metadata={"v": 2})
    assert await kv.get("k") == '{"a": 1}'
    assert await kv.get("k", type="json") == {"a": 1}
    assert await kv.get("k", type="bytes") == b'{"a": 1}'
    assert await kv.get_with_metadata("k", type="json") == {"value": {"a": 1}, "metadata": {"v": 2}}
    await kv.delete("k")
    assert await kv.get("k") is None


async def test_expiry(kv: KVNamespace, clock: FakeClock) -> None:
    await kv.put("short", "v", expiration_ttl=60)
    clock.now += 59
    assert await kv.get("short") == "v"
    clock.now += 2
    assert await kv.get("short") is None
    assert (await kv.list())["keys"] == []


async def test_values_persist_across_instances(tmp_path: Path, clock: FakeClock) -> None:
    first = KVNamespace(tmp_path / "kv.sqlite", clock=clock)
    await first.put("k", b"\x00\x01")
    first.close()
    second = KVNamespace(tmp_path / "kv.sqlite", clock=clock)
    assert await second.get("k", type="bytes") == b"\x00\x01"
    second.close()


async def test_other_process_view_is_eventually_consistent(tmp_path: Path, clock: FakeClock) -> None:
    a = KVNamespace(tmp_path / "kv.sqlite", clock=clock, cache_ttl=60)
    b = KVNamespace(tmp_path / "kv.sqlite", clock=clock, cache_ttl=60)
    await a.put("k", "old")
    assert await b.get("k") == "old"  # b caches it
    await a.put("k", "new")
    assert await a.get("k") == "new"  # read-your-writes in a
    assert await b.get("k") == "old"  # b may be stale...
    clock.now += 61
    assert await b.get("k") == "new"  # ...until its cache entry expires
    a.close()
    b.close()


async def test_list_prefix_and_cursor(kv: KVNamespace) -> None:
    for i in range(5):
        await kv.put(f"a:{i}", "x", metadata={"i": i})
    await kv.put("b:0", "x")
    page = await kv.list(prefix="a:", limit=2)
    assert [k["name"] for k in page["keys"]] == ["a:0", "a:1"] and not page["list_complete"]
    assert page["keys"][0]["metadata"] == {"i": 0}
    names = [k["name"] for k in page["keys"]]
    while not page["list_complete"]:
        page = await kv.list(prefix="a:", limit=2, cursor=page["cursor"])
        names += [k["name"] for k in page["keys"]]
    assert names == [f"a:{i}" for i in range(5)]


async def test_limits(kv: KVNamespace) -> None:
    with pytest.raises(KVError):
        await kv.put("k" * 513, "v")
    with pytest.raises(KVError):
        await kv.put("k", "v", metadata={"x": "y" * 2000})
