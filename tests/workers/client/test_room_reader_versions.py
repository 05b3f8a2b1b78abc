"""RoomReader.room_version with the process's room version cache (env.ROOM_VERSIONS)."""

from __future__ import annotations

from pathlib import Path

from d1 import D1Database, apply_migrations
from kv.local_cache import LocalCache
from workers.client.history import RoomReader


async def test_versions_of_rooms_here_are_shared_and_invite_claims_are_not(tmp_path: Path) -> None:
    db = D1Database(tmp_path / "d1.sqlite")
    try:
        await apply_migrations(db)
        await db.batch([
            db.prepare("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)")
            .bind("!here:hs.test", "10", "@a:hs.test", 1),
            db.prepare("INSERT INTO remote_room_versions (room_id, room_version) VALUES (?, ?)")
            .bind("!invited:elsewhere.test", "11"),
        ])
        cache: LocalCache = LocalCache(ttl=None)

        def reader() -> RoomReader:
            return RoomReader(db, user_id="@a:hs.test", device_id=None, now_ms=0, room_versions=cache)

        here = await reader().room_version("!here:hs.test")
        invited = await reader().room_version("!invited:elsewhere.test")
        assert here is not None and here.identifier == "10"
        assert invited is not None and invited.identifier == "11"
        assert await reader().room_version("!unknown:hs.test") is None
        # Only the version of a room this server is in is kept for other requests.
        assert cache.get("!here:hs.test") is here
        assert cache.get("!invited:elsewhere.test") is None
        assert len(cache) == 1
        # The next request finds it without reading D1 (the row is gone, the version is not).
        await db.batch([db.prepare("DELETE FROM rooms WHERE room_id = ?").bind("!here:hs.test")])
        assert await reader().room_version("!here:hs.test") is here
    finally:
        db.close()
