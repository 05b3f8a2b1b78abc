"""kv.local_cache.LocalCache: time to live, tagged invalidation, generation-checked puts."""

from __future__ import annotations

from kv.local_cache import LocalCache


def _cache(ttl: float | None = 2.0, maxsize: int = 100) -> tuple[LocalCache[str, str], list[float]]:
    now = [100.0]
    return LocalCache(ttl=ttl, maxsize=maxsize, clock=lambda: now[0]), now


def test_entries_expire_after_the_ttl() -> None:
    cache, now = _cache()
    assert cache.put("k", "v", cache.generation())
    now[0] += 1.9
    assert cache.get("k") == "v"
    now[0] += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0


def test_no_ttl_keeps_entries() -> None:
    cache, now = _cache(ttl=None)
    cache.put("k", "v", cache.generation())
    now[0] += 10**9
    assert cache.get("k") == "v"


def test_invalidate_drops_the_tags_entries_only() -> None:
    cache, _ = _cache()
    generation = cache.generation()
    cache.put("a1", "x", generation, "@a:hs")
    cache.put("a2", "y", generation, "@a:hs")
    cache.put("b1", "z", generation, "@b:hs")
    cache.invalidate("@a:hs")
    assert cache.get("a1") is None and cache.get("a2") is None
    assert cache.get("b1") == "z"


def test_a_read_that_raced_an_invalidation_is_not_stored() -> None:
    cache, _ = _cache()
    before_read = cache.generation()
    cache.invalidate("@a:hs")  # a logout commits while the read is in flight
    assert not cache.put("token", "stale row", before_read, "@a:hs")
    assert cache.get("token") is None
    assert cache.put("token", "fresh row", cache.generation(), "@a:hs")


def test_oldest_entries_make_room() -> None:
    cache, _ = _cache(maxsize=3)
    for key in "abcd":
        cache.put(key, key.upper(), cache.generation(), "t")
    assert cache.get("a") is None
    assert [cache.get(k) for k in "bcd"] == ["B", "C", "D"]
    cache.invalidate("t")
    assert len(cache) == 0


def test_replacing_an_entry_moves_its_tag() -> None:
    cache, _ = _cache()
    cache.put("k", "v1", cache.generation(), "old")
    cache.put("k", "v2", cache.generation(), "new")
    cache.invalidate("old")
    assert cache.get("k") == "v2"
    cache.clear()
    assert cache.get("k") is None
