"""The R2-shaped blob store: round trips with metadata, listing, deletion, hostile keys,
and atomic writes (a failing write leaves nothing visible)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import pytest

from local_runtime.blob_store import BlobStore, BlobStoreError


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "bucket")


async def test_put_get_head_round_trip(store: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    put = await store.put(
        "local/abc", data, http_metadata={"contentType": "image/png"},
        custom_metadata={"user_id": "@a:b"},
    )
    got = await store.get("local/abc")
    assert got is not None
    assert got.body == data
    assert (got.size, got.etag) == (len(data), put.etag)
    assert got.http_metadata == {"contentType": "image/png"}
    assert got.custom_metadata == {"user_id": "@a:b"}
    head = await store.head("local/abc")
    assert head is not None and head.size == len(data) and not hasattr(head, "body")


async def test_empty_object_and_missing_keys(store: BlobStore) -> None:
    await store.put("empty", b"")
    got = await store.get("empty")
    assert got is not None and got.body == b"" and got.size == 0
    assert await store.get("missing") is None
    assert await store.head("missing") is None


async def test_put_replaces(store: BlobStore) -> None:
    await store.put("k", b"one", custom_metadata={"v": "1"})
    await store.put("k", b"two")
    got = await store.get("k")
    assert got is not None and (got.body, got.custom_metadata) == (b"two", {})


async def test_streamed_put(store: BlobStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(40):
            yield bytes([i]) * 65536

    put = await store.put("streamed", chunks())
    got = await store.get("streamed")
    assert got is not None and put.size == 40 * 65536
    assert got.body == b"".join(bytes([i]) * 65536 for i in range(40))
    await store.put("sync-iter", iter([b"a", b"", b"bc"]))
    assert (await store.get("sync-iter")).body == b"abc"  # type: ignore[union-attr]


async def test_failing_stream_leaves_no_object_and_no_temp_file(store: BlobStore) -> None:
    await store.put("keep", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 2_000_000  # more than one write piece reaches the disk
        yield b"y" * 10
        raise ConnectionError("client went away")

    for key in ("new", "keep"):
        with pytest.raises(ConnectionError):
            await store.put(key, broken())
    assert await store.get("new") is None
    assert (await store.get("keep")).body == b"old"  # type: ignore[union-attr]
    assert list((store.root / ".tmp").iterdir()) == []


async def test_list_prefix_order_and_pages(store: BlobStore) -> None:
    keys = ["a", "a/b", "a/c/d", "ab", "b/x", "thumbs/1", "thumbs/2", "thumbs/3"]
    for key in reversed(keys):
        await store.put(key, key.encode())
    everything = await store.list()
    assert [o.key for o in everything.objects] == sorted(keys)
    assert not everything.truncated and everything.cursor is None
    assert [o.key for o in (await store.list(prefix="a")).objects] == ["a", "a/b", "a/c/d", "ab"]
    assert [o.key for o in (await store.list(prefix="a/")).objects] == ["a/b", "a/c/d"]
    first = await store.list(prefix="thumbs/", limit=2)
    assert [o.key for o in first.objects] == ["thumbs/1", "thumbs/2"] and first.truncated
    rest = await store.list(prefix="thumbs/", cursor=first.cursor, limit=2)
    assert [o.key for o in rest.objects] == ["thumbs/3"] and not rest.truncated
    assert (await store.list(prefix="nothing/")).objects == []


async def test_delete_one_and_many(store: BlobStore) -> None:
    for key in ("x", "y", "z"):
        await store.put(key, b"1")
    await store.delete("x")
    await store.delete(["y", "never-there"])
    assert [o.key for o in (await store.list()).objects] == ["z"]


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "..", ".tmp/x", "%2E%2E/x", "ü/ñ", "a b"])
async def test_hostile_keys_stay_inside_the_bucket(tmp_path: Path, key: str) -> None:
    store = BlobStore(tmp_path / "bucket")
    await store.put(key, b"data")
    assert (await store.get(key)).body == b"data"  # type: ignore[union-attr]
    assert [o.key for o in (await store.list()).objects] == [key]
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and "bucket" not in p.parts]
    assert outside == []
    assert list((store.root / ".tmp").iterdir()) == []


@pytest.mark.parametrize("key", ["", "/lead", "trail/", "a//b", "x" * 1025])
async def test_bad_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(BlobStoreError):
        await store.put(key, b"")


async def test_bad_metadata_and_limits_are_refused(store: BlobStore) -> None:
    with pytest.raises(BlobStoreError):
        await store.put("k", b"", custom_metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(BlobStoreError):
        await store.put("k", b"", custom_metadata={"big": "x" * 10_000})
    with pytest.raises(BlobStoreError):
        await store.list(limit=0)
    assert await store.get("k") is None


async def test_objects_survive_a_new_instance_and_stale_temp_files_are_swept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "bucket")
    await store.put("kept", b"durable")
    (store.root / ".tmp" / "abc.part").write_bytes(b"half")
    again = BlobStore(tmp_path / "bucket")
    assert (await again.get("kept")).body == b"durable"  # type: ignore[union-attr]
    assert list((again.root / ".tmp").iterdir()) == []
