"""Stream tokens: ``since``/``next_batch`` of ``/sync`` and the pagination tokens of
``/messages`` and ``/context``.

Spec: client-server API "Syncing" and "Pagination": tokens are opaque to clients. Ours hold
one position per stream, all read from D1, so a token stays valid across restarts (positions
only grow): ``s<events>_<account_data>_<to_device>_<receipts>_<typing>_<device_lists>_<presence>``.

The events position P means "after the event with stream ordering P". It may be negative
in pagination tokens: backfilled history (events from before this server joined a room) sits
at negative stream positions, below every live event. A token with fewer
positions than streams (one written before a stream existed) reads the missing ones as 0.
Anything else is 400 ``M_INVALID_PARAM``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from d1.database import D1Database
from workers.errors import Codes, MatrixError

# Stream names in token order; each but "events" is a row of ``stream_positions``.
STREAMS = ("events", "account_data", "to_device", "receipts", "typing", "device_lists", "presence")

_TOKEN = re.compile(r"s(-?\d{1,18})((?:_\d{1,18}){0,%d})" % (len(STREAMS) - 1))


@dataclass(frozen=True)
class StreamToken:
    events: int = 0
    account_data: int = 0
    to_device: int = 0
    receipts: int = 0
    typing: int = 0
    device_lists: int = 0
    presence: int = 0

    def encode(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in STREAMS)

    @classmethod
    def parse(cls, text: str, *, param: str = "since") -> "StreamToken":
        match = _TOKEN.fullmatch(text)
        if match is None:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid {param} token: {text!r}")
        values = [int(match.group(1))] + [int(v) for v in match.group(2).split("_")[1:]]
        values += [0] * (len(STREAMS) - len(values))
        return cls(*values)

    def with_events(self, position: int) -> "StreamToken":
        return replace(self, events=position)

    def positions(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in STREAMS)

    def clamped_to(self, other: "StreamToken") -> "StreamToken":
        """Each position no further than ``other``'s (a token from a database that was
        reset, or forged, cannot point past what exists)."""
        return StreamToken(*(min(a, b) for a, b in zip(self.positions(), other.positions())))


async def current_token(db: D1Database) -> StreamToken:
    """The positions of every stream now. Read before the data it bounds, so nothing
    committed after the read is skipped by the next sync."""
    events_result, positions_result = await db.read_many([
        db.prepare("SELECT COALESCE(MAX(stream_ordering), 0) AS p FROM events"),
        db.prepare("SELECT stream, position FROM stream_positions"),
    ])
    events = events_result.results[0]["p"] if events_result.results else 0
    rows = positions_result.results
    positions = {row["stream"]: int(row["position"]) for row in rows}
    return StreamToken(
        int(events or 0), *(positions.get(name, 0) for name in STREAMS[1:])
    )
