"""Run Synapse's state resolution v1 on JSON from stdin; print the results as JSON.

Run as a separate process by test_v1_synapse.py, so that importing Synapse (which changes
global settings of Pillow and canonicaljson) cannot affect other tests. Input:
``{"room_id": ..., "rooms": [{"events": [pdu, ...], "forks": [[state_set, ...], ...]}, ...]}``
where a state set is a list of ``[type, state_key, event_id]``; output: for each room, one
such list per fork.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import synapse.event_auth  # noqa: F401  (synapse.state needs it imported first)
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.events import make_event_from_dict
    from synapse.state import v1 as synapse_v1


def main() -> None:
    request = json.load(sys.stdin)
    room_version = KNOWN_ROOM_VERSIONS["1"]
    room_id = request["room_id"]

    async def resolve_room(room: dict[str, Any]) -> list[list[list[str]]]:
        events = {pdu["event_id"]: make_event_from_dict(pdu, room_version) for pdu in room["events"]}

        async def fetch(event_ids: Any) -> dict[str, Any]:
            return {e: events[e] for e in event_ids if e in events}

        answers = []
        for fork in room["forks"]:
            state_sets = [{(t, k): e for t, k, e in state} for state in fork]
            resolved = await synapse_v1.resolve_events_with_store(room_id, room_version, state_sets, None, fetch)
            answers.append(sorted([t, k, e] for (t, k), e in resolved.items()))
        return answers

    async def resolve_all() -> list[list[list[list[str]]]]:
        return [await resolve_room(room) for room in request["rooms"]]

    json.dump(asyncio.run(resolve_all()), sys.stdout)


if __name__ == "__main__":
    main()
