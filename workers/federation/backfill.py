"""Backfill: older history of a room joined over federation, fetched when a local user
pages back past what this server holds.

Spec: server-server API "Backfilling and retrieving missing events": when a user steps
back further than the history the server has (the events before it joined), it asks a
server likely to have more, "most likely ... a homeserver for some of the existing users in
the room", with ``GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=...``, where
``v`` are the events to go back from: our backwards extremities, the prev_events of our
oldest timeline events that we do not hold in the timeline. The room actor takes the
answer through the receipt checks (``RoomActor.store_backfill``); this module does the
network part: the request, the auth chains of events whose auth events we lack
(``/event_auth``), and the state before events whose prev_events we lack (``/state``).

Asking again is bounded (``d1.backfill_progress``): once the room's create event is in our
timeline the start of the room is reached and nobody is asked any more; after an attempt
that stored nothing, the same backward extremities are not asked for again until a back-off
(doubling from a minute to an hour) has passed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from d1 import backfill_progress as progress_db
from d1.events import get_event_rows
from durable.errors import InvalidEvent
from durable.events import event_from_pdu
from durable.room_versions import get_room_version
from workers.auth import now_ms
from workers.client.history import TIMELINE_SQL
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError
from workers.federation.query import room_servers
from workers.room_access import room_stub

log = logging.getLogger(__name__)

BACKFILL_LIMIT = 50
# How many of the room's oldest timeline events are looked at for missing prev_events.
OLDEST_EVENTS = 20
MAX_EXTREMITIES = 10


def _prev_ids(pdu: dict[str, Any]) -> list[str]:
    prevs = pdu.get("prev_events")
    out = []
    for prev in prevs if isinstance(prevs, list) else []:
        prev_id = prev[0] if isinstance(prev, list) and prev else prev
        if isinstance(prev_id, str):
            out.append(prev_id)
    return out


async def backward_extremities(db: Any, room_id: str) -> list[str]:
    """The prev_events of the room's oldest timeline events that are not in the timeline
    here (unknown, or known only as outliers): where our history stops."""
    rows = (
        await db.prepare(
            f"SELECT json FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
            " ORDER BY stream_ordering ASC LIMIT ?"
        ).bind(room_id, OLDEST_EVENTS).all()
    ).results
    prevs = list(dict.fromkeys(p for row in rows for p in _prev_ids(json.loads(row["json"]))))
    if not prevs:
        return []
    known = await get_event_rows(db, prevs)
    return [p for p in prevs if p not in known or known[p]["outlier"]][:MAX_EXTREMITIES]


async def _states_for(env: Any, server: str, room_id: str, stub: Any, event_ids: list[str]) -> dict[str, Any]:
    """The state before each event, from ``/state`` (its events stored as outliers)."""
    client = federation_client(env)
    version = get_room_version((await stub.summary())["room_version"])
    states: dict[str, list[list[str]]] = {}
    for event_id in event_ids:
        body = await client.get_json(
            server, encode_path("/_matrix/federation/v1/state/{}", room_id), {"event_id": event_id}
        )
        pdus = [p for p in body.get("pdus", []) if isinstance(p, dict)] if isinstance(body, dict) else []
        chain = [p for p in body.get("auth_chain", []) if isinstance(p, dict)] if isinstance(body, dict) else []
        await stub.store_outliers(chain + pdus)
        entries = []
        for pdu in pdus:
            try:
                event = event_from_pdu(pdu, version)
            except (InvalidEvent, KeyError):
                continue
            if event.is_state():
                entries.append([event.type, event.state_key or "", event.event_id])
        states[event_id] = entries
    return states


async def _auth_chains(env: Any, server: str, room_id: str, stub: Any, event_ids: list[str]) -> None:
    client = federation_client(env)
    for event_id in event_ids:
        body = await client.get_json(
            server, encode_path("/_matrix/federation/v1/event_auth/{}/{}", room_id, event_id)
        )
        chain = body.get("auth_chain") if isinstance(body, dict) else None
        await stub.store_outliers([p for p in chain if isinstance(p, dict)] if isinstance(chain, list) else [])


async def backfill_room(env: Any, room_id: str, limit: int = BACKFILL_LIMIT) -> int:
    """Fetch history from before our oldest timeline event of the room from a server in
    the room and store it; return how many events were stored (0: none to fetch, the start
    of the room reached, backing off after fruitless attempts, or no server answered
    usefully)."""
    db = env.DB
    progress = await progress_db.get_progress(db, room_id)
    if progress is not None and progress["reached_start"]:
        return 0
    extremities = await backward_extremities(db, room_id)
    if not extremities:
        return 0
    if (
        progress is not None
        and progress["extremities"] == progress_db.extremities_key(extremities)
        and now_ms() < progress["retry_after_ms"]
    ):
        log.debug("room %s: backfill backing off until %d", room_id, progress["retry_after_ms"])
        return 0
    stored = await _fetch_history(env, room_id, extremities, limit)
    if stored:
        reached = await progress_db.create_event_in_timeline(db, room_id)
        await db.batch([progress_db.record_stored(db, room_id, reached)])
        return stored
    same = progress is not None and progress["extremities"] == progress_db.extremities_key(extremities)
    attempts = (progress["empty_attempts"] if same and progress is not None else 0) + 1
    await db.batch([progress_db.record_empty(db, room_id, extremities, attempts, now_ms())])
    log.info("room %s: backfill found nothing (%d in a row); backing off %d s", room_id, attempts,
             progress_db.backoff_ms(attempts) // 1000)
    return 0


async def _fetch_history(env: Any, room_id: str, extremities: list[str], limit: int) -> int:
    """Ask the servers in the room in turn for the history before ``extremities``; the
    number of events the first useful answer stored (0: none)."""
    stub = room_stub(env, room_id)
    own = env.config.server_name
    servers = [s for s in await room_servers(env, room_id) if s != own]
    client = federation_client(env)
    for server in servers:
        try:
            body = await client.get_json(
                server, encode_path("/_matrix/federation/v1/backfill/{}", room_id),
                {"v": extremities, "limit": str(limit)},
            )
            pdus = [p for p in body.get("pdus", []) if isinstance(p, dict)] if isinstance(body, dict) else []
            if not pdus:
                continue
            states: dict[str, list[list[str]]] = {}
            result = await stub.store_backfill(server, pdus, states)
            for _ in range(2):
                if result["outcome"] != "missing":
                    break
                await _auth_chains(env, server, room_id, stub, result["auth_for"])
                states.update(await _states_for(env, server, room_id, stub, result["need_state"]))
                result = await stub.store_backfill(server, pdus, states)
            if result["outcome"] == "missing":
                log.info("room %s: backfill from %s still misses events: %s", room_id, server, result)
                continue
            stored = sum(1 for o in result["outcomes"].values() if o == "stored")
            if stored:
                return stored
        except FederationError as exc:
            log.info("room %s: backfill from %s failed: %s", room_id, server, exc)
    return 0
