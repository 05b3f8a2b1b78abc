"""The room actor: the single writer of one room (a Durable Object per room ID).

The class is assembled from one module per concern: ``core`` (hot state, loading,
committing, passing events on), ``remote`` (receipt checks), ``local`` (events created
here), ``handshakes`` (membership handshakes with other servers) and ``backfill``. This
module adds the read-only calls workers use.

Calls take and return plain data. Refusals raise ``MatrixError`` (the worker renders it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from durable.room.backfill import Backfill
from durable.room.core import STRIPPED_STATE_TYPES
from durable.room.handshakes import Handshakes

log = logging.getLogger(__name__)


class RoomActor(Handshakes, Backfill):
    async def summary(self) -> dict[str, Any]:
        """The room's version, current state IDs and forward extremities (for workers and tests)."""
        room_version = self._require_room()
        return {
            "room_id": self.room_id,
            "room_version": room_version.identifier,
            "state": [[t, k, e] for (t, k), e in sorted(self.state.items())],
            "extremities": sorted(self.extremities),
            "depth": self.depth,
        }

    async def summary_servers(self) -> dict[str, Any]:
        """The servers with joined members (for send_join's ``servers_in_room``)."""
        self._require_room()
        return {"servers": sorted(self.servers_in_room())}

    async def stripped_state(self) -> list[dict[str, Any]]:
        """The stripped state of the room (spec: "Stripped state"), for knocks and invites."""
        self._require_room()
        return self._stripped_state()

    async def stripped_state_pdus(self) -> list[dict[str, Any]]:
        """The same state events as whole PDUs in the room version's format, as federation
        sends them in ``invite_room_state`` and ``knock_room_state`` (spec v1.16+: they
        MUST include the ``m.room.create`` event and be formatted per room version)."""
        self._require_room()
        events = [self._state_event(t) for t in STRIPPED_STATE_TYPES]
        return [json.loads(json.dumps(e.pdu)) for e in events if e is not None]

    async def state_event_content(self, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        event = self._state_event(event_type, state_key)
        return None if event is None else json.loads(json.dumps(event.content))
