"""Content reports (table ``content_reports``; spec: client-server "Reporting Content")."""

from __future__ import annotations

from d1.database import D1Database


async def insert_report(
    db: D1Database, reporter: str, *, room_id: str | None = None, event_id: str | None = None,
    reported_user_id: str | None = None, reason: str | None, now_ms: int,
) -> None:
    await db.prepare(
        "INSERT INTO content_reports (reporter, room_id, event_id, reported_user_id, reason, received_ts)"
        " VALUES (?,?,?,?,?,?)"
    ).bind(reporter, room_id, event_id, reported_user_id, reason, now_ms).run()


async def reports_by(db: D1Database, reporter: str) -> list[dict[str, object]]:
    """A reporter's reports, oldest first (for moderation tooling and tests)."""
    result = await db.prepare(
        "SELECT room_id, event_id, reported_user_id, reason FROM content_reports"
        " WHERE reporter = ? ORDER BY id"
    ).bind(reporter).all()
    return result.results
