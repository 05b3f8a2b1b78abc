"""Reads ``/sync`` makes for the requesting device, as statements for one ``read_many`` hop.

The same queries as ``d1.to_device.pending_count``, ``d1.e2e_keys.one_time_key_counts`` and
``d1.e2e_keys.unused_fallback_key_types``, made once per sync: together they cost one hop to a
reader thread instead of three.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d1.database import D1Database, D1Result, PreparedStatement


@dataclass
class DeviceReads:
    pending_to_device: int = 0  # messages in the device's to-device inbox
    one_time_key_counts: dict[str, int] = field(default_factory=dict)  # algorithm -> unclaimed
    unused_fallback_key_types: list[str] = field(default_factory=list)


def device_statements(db: D1Database, user_id: str, device_id: str) -> list[PreparedStatement]:
    return [
        db.prepare(
            "SELECT COUNT(*) AS n FROM to_device_inbox WHERE user_id = ? AND device_id = ?"
        ).bind(user_id, device_id),
        db.prepare(
            "SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? GROUP BY algorithm"
        ).bind(user_id, device_id),
        db.prepare(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ?"
            " AND used = 0 ORDER BY algorithm"
        ).bind(user_id, device_id),
    ]


def parse_device_reads(results: list[D1Result]) -> DeviceReads:
    pending, counts, fallback = results
    return DeviceReads(
        pending_to_device=int(pending.results[0]["n"]) if pending.results else 0,
        one_time_key_counts={r["algorithm"]: int(r["n"]) for r in counts.results},
        unused_fallback_key_types=[r["algorithm"] for r in fallback.results],
    )


async def device_reads(db: D1Database, user_id: str, device_id: str) -> DeviceReads:
    """The device's pending to-device count, one-time key counts and unused fallback key
    types, read in one hop and one snapshot."""
    return parse_device_reads(await db.read_many(device_statements(db, user_id, device_id)))
