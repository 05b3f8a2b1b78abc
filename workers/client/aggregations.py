"""Bundled aggregations: ``unsigned["m.relations"]`` of served events.

Spec: client-server API "Aggregations of child events" (a served event carries, under
``unsigned["m.relations"]``, a summary of its children per ``rel_type``; state events get
none; a redacted child no longer relates to anything), and the aggregation of each type:

- ``m.thread`` ("Server-side aggregation of m.thread relationships"): ``latest_event`` (the
  topologically latest event of the thread, served like the root, with its own
  aggregations), ``count`` (the events relating with ``m.thread``) and
  ``current_user_participated`` (the user sent the root or an event of the thread).
- ``m.replace`` (v1.7, "Server-side aggregation of m.replace relationships"): the most
  recent *valid* replacement (highest ``origin_server_ts``, then largest ``event_id``), served
  as a normal event; none when the original is redacted. A replacement is valid when it has
  the original's sender and type, the original is no state event and is no replacement itself.
- ``m.reference`` ("Server-side aggregation of m.reference"): ``{"chunk": [{"event_id"}]}``.

One grouped query per call over the served event IDs finds every parent with children, so a
page of events without relations costs a single indexed lookup. Children the user may not see
are never summarised: a thread or edit whose latest event is hidden from the user is left
out of the bundle.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from d1.events import chunks
from d1.relations import relation_of
from workers.client.events_format import JsonDict
from workers.client.visibility import filter_visible

if TYPE_CHECKING:
    from workers.client.history import RoomReader, Row

AGGREGATED = ("m.thread", "m.replace", "m.reference")
_LIVE_CHILD = (
    "e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL AND e.redacted_by IS NULL"
)


async def bundle_aggregations(
    reader: "RoomReader", rows: Sequence["Row"], events: list[JsonDict], *,
    include_room_id: bool, depth: int,
) -> None:
    """Add ``unsigned["m.relations"]`` to ``events`` (the served forms of ``rows``, matched by
    event ID) for every event that has aggregated children."""
    parents = {r["event_id"]: r for r in rows if r.get("state_key") is None}
    if not parents:
        return
    groups = await _groups(reader, list(parents))
    groups = [g for g in groups if g["room_id"] == parents[g["relates_to"]]["room_id"]]
    if not groups:
        return
    bundles: dict[str, JsonDict] = {}
    threads = [g for g in groups if g["rel_type"] == "m.thread"]
    if threads:
        await _threads(reader, parents, threads, bundles, include_room_id, depth)
    listed = [g["relates_to"] for g in groups if g["rel_type"] in ("m.replace", "m.reference")]
    if listed:
        await _edits_and_references(reader, parents, listed, bundles, include_room_id)
    for event in events:
        bundle = bundles.get(event.get("event_id", ""))
        if bundle:
            event.setdefault("unsigned", {})["m.relations"] = bundle


async def _groups(reader: "RoomReader", parent_ids: list[str]) -> list[dict[str, Any]]:
    """Per (parent, rel_type): the child count, the latest child (SQLite takes the bare
    ``event_id`` from the row of the single ``MAX``) and how many the user sent."""
    out: list[dict[str, Any]] = []
    for part in chunks(parent_ids, 80):
        marks = ",".join("?" * len(part))
        result = await reader.db.prepare(
            "SELECT r.relates_to, r.rel_type, r.room_id, COUNT(*) AS n,"
            " MAX(e.stream_ordering) AS latest, r.event_id AS latest_id,"
            " SUM(r.sender = ?) AS mine"
            " FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.relates_to IN ({marks}) AND r.rel_type IN ('m.thread','m.replace','m.reference')"
            f" AND {_LIVE_CHILD} GROUP BY r.relates_to, r.rel_type, r.room_id"
        ).bind(reader.user_id, *part).all()
        out.extend(result.results)
    return out


def _has_relation(row: "Row") -> bool:
    content = json.loads(row["json"]).get("content")
    return isinstance(content, dict) and relation_of(content) is not None


async def _visible(reader: "RoomReader", rows: list["Row"]) -> set[str]:
    return {r["event_id"] for r in await filter_visible(reader, rows, reader.user_id)}


async def _threads(
    reader: "RoomReader", parents: dict[str, "Row"], groups: list[dict[str, Any]],
    bundles: dict[str, JsonDict], include_room_id: bool, depth: int,
) -> None:
    # A thread cannot grow from an event that itself relates to another (spec: "Threading").
    groups = [g for g in groups if not _has_relation(parents[g["relates_to"]])]
    latest_rows = await reader.rows([g["latest_id"] for g in groups])
    visible = await _visible(reader, list(latest_rows.values()))
    shown = [latest_rows[g["latest_id"]] for g in groups if g["latest_id"] in visible]
    served = {
        e["event_id"]: e
        for e in await reader.serialize(shown, include_room_id=include_room_id, _depth=depth + 1)
    }
    for group in groups:
        latest = served.get(group["latest_id"])
        if latest is None:
            continue
        root = parents[group["relates_to"]]
        bundles.setdefault(root["event_id"], {})["m.thread"] = {
            "latest_event": latest,
            "count": group["n"],
            "current_user_participated": bool(group["mine"]) or root["sender"] == reader.user_id,
        }


async def _edits_and_references(
    reader: "RoomReader", parents: dict[str, "Row"], parent_ids: list[str],
    bundles: dict[str, JsonDict], include_room_id: bool,
) -> None:
    children: list[dict[str, Any]] = []
    for part in chunks(list(dict.fromkeys(parent_ids)), 90):
        marks = ",".join("?" * len(part))
        result = await reader.db.prepare(
            "SELECT r.event_id, r.relates_to, r.rel_type, r.sender, r.type, r.room_id,"
            " e.origin_server_ts FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.relates_to IN ({marks}) AND r.rel_type IN ('m.replace','m.reference')"
            f" AND {_LIVE_CHILD} ORDER BY e.stream_ordering"
        ).bind(*part).all()
        children.extend(result.results)
    latest_edit: dict[str, dict[str, Any]] = {}
    for child in children:
        parent = parents[child["relates_to"]]
        if child["room_id"] != parent["room_id"]:
            continue
        if child["rel_type"] == "m.reference":
            bundle = bundles.setdefault(parent["event_id"], {})
            bundle.setdefault("m.reference", {"chunk": []})["chunk"].append({"event_id": child["event_id"]})
        elif _valid_replacement(parent, child):
            best = latest_edit.get(parent["event_id"])
            if best is None or (child["origin_server_ts"], child["event_id"]) > (
                best["origin_server_ts"], best["event_id"]
            ):
                latest_edit[parent["event_id"]] = child
    if not latest_edit:
        return
    edit_rows = await reader.rows([c["event_id"] for c in latest_edit.values()])
    visible = await _visible(reader, list(edit_rows.values()))
    served = {
        e["event_id"]: e
        for e in await reader.serialize(
            [edit_rows[c["event_id"]] for c in latest_edit.values() if c["event_id"] in visible],
            include_room_id=include_room_id, aggregate=False,
        )
    }
    for parent_id, child in latest_edit.items():
        if child["event_id"] in served:
            bundles.setdefault(parent_id, {})["m.replace"] = served[child["event_id"]]


def _valid_replacement(original: "Row", edit: dict[str, Any]) -> bool:
    """Spec "Validity of replacement events" (the checks that need no decryption), and no
    edit bundle for a redacted original."""
    if original.get("redacted_by") is not None or original.get("state_key") is not None:
        return False
    if edit["sender"] != original["sender"] or edit["type"] != original["type"]:
        return False
    content = json.loads(original["json"]).get("content")
    relation = relation_of(content) if isinstance(content, dict) else None
    return relation is None or relation[0] != "m.replace"
