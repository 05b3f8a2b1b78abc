"""``matrix-edge spec <command>``: the pure spec algorithms on JSON, for test harnesses.

Each command reads one JSON object on stdin and prints one JSON object on stdout:

- ``resolve-state``: ``{"room_version", "state_sets": [[event_id, ...], ...], "events": [pdu, ...]}``
  → ``{"state": [[type, state_key, event_id], ...]}`` sorted. Every given event is treated as
  accepted; each state set is keyed by its events' (type, state_key).
- ``check-auth``: ``{"room_version", "event": pdu, "auth_events": [pdu, ...]}``
  → ``{"allowed": bool, "reason": str}`` (``reason`` is "" when allowed): the rules on the
  ``auth_events`` list and the authorization rules, against exactly the given events. In room
  version 12 the create event is given among ``auth_events`` though the PDU does not list it.
- ``verify-event``: ``{"room_version", "event": pdu, "keys": {server: {key_id: base64}}}``
  → ``{"event_id", "content_hash_ok", "signatures_ok", "redacted"}``.

PDUs may carry a convenience top-level ``event_id``; it names the event (state sets and
``auth_events`` refer to it) and is dropped from the PDU from room version 3 on, where it is
not part of the event format. A PDU without one gets its computed ID.

Bad input (not JSON, a missing or mistyped field, an unknown room version, a state-set ID with
no event) prints a one-line ``matrix-edge spec: ...`` message on stderr and exits with
status 2. With ``--batch``, stdin is JSON Lines: one answer line per input line, in order;
blank lines are skipped; a bad line is answered with ``{"error": "..."}`` and the batch goes on
(exit status 0 once all input is read).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Mapping, TextIO

from durable.auth import check_event_auth
from durable.errors import AuthError, SpecError
from durable.events import Event, compute_event_id, federation_form, parse_json, verify_event_report
from durable.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from durable.state_res import resolve_state

USAGE = "usage: matrix-edge spec {resolve-state|check-auth|verify-event} [--batch] < input.json"


class BadInput(Exception):
    """The request cannot be answered: a one-line reason for stderr (exit status 2)."""


# --- input helpers -------------------------------------------------------------------------
def _field(request: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in request:
        raise BadInput(f"missing field {name!r}")
    value = request[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadInput(f"field {name!r} has the wrong type")
    return value


def _room_version(request: Mapping[str, Any]) -> RoomVersion:
    identifier = _field(request, "room_version", str)
    try:
        return get_room_version(identifier)
    except UnsupportedRoomVersion:
        raise BadInput(f"unknown room version {identifier!r}") from None


def _event(pdu: object, room_version: RoomVersion, what: str) -> Event:
    """An Event named by the PDU's convenience ``event_id``, else by its computed ID."""
    if not isinstance(pdu, dict):
        raise BadInput(f"{what} is not a JSON object")
    for name in ("type", "sender"):
        if not isinstance(pdu.get(name), str):
            raise BadInput(f"{what} has no string {name!r}")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise BadInput(f"{what} has a state_key that is not a string")
    for name in ("auth_events", "prev_events"):
        edges = pdu.get(name, [])
        if not isinstance(edges, list) or not all(_is_edge(e, room_version) for e in edges):
            raise BadInput(f"{what} has {name!r} that is not a list of event IDs")
    for name, article in (("origin_server_ts", "an"), ("depth", "a")):  # sort keys of state res
        if name in pdu and (not isinstance(pdu[name], int) or isinstance(pdu[name], bool)):
            raise BadInput(f"{what} has {article} {name} that is not an integer")
    given = pdu.get("event_id")
    form = federation_form(pdu, room_version)
    if isinstance(given, str):
        event_id = given
    elif "event_id" in pdu:
        raise BadInput(f"{what} has an event_id that is not a string")
    else:
        try:
            event_id = compute_event_id(form, room_version)
        except SpecError as exc:
            raise BadInput(f"{what}: cannot compute its event ID: {exc.reason}") from None
    return Event(form, room_version, event_id)


def _is_edge(edge: object, room_version: RoomVersion) -> bool:
    """An entry of ``auth_events``/``prev_events``: an event ID, or in v1/v2 an
    ``[event_id, hashes]`` pair."""
    if isinstance(edge, str):
        return True
    return (
        room_version.event_id_in_event
        and isinstance(edge, list)
        and len(edge) == 2
        and isinstance(edge[0], str)
    )


# --- commands ------------------------------------------------------------------------------
def resolve_state_command(request: Mapping[str, Any]) -> dict[str, Any]:
    room_version = _room_version(request)
    raw_sets = _field(request, "state_sets", list)
    raw_events = _field(request, "events", list)
    events: dict[str, Event] = {}
    for index, pdu in enumerate(raw_events):
        event = _event(pdu, room_version, f"events[{index}]")
        earlier = events.get(event.event_id)
        if earlier is not None and earlier.pdu != event.pdu:
            raise BadInput(f"two different events have the ID {event.event_id!r}")
        events[event.event_id] = event
    state_sets: list[dict[tuple[str, str], str]] = []
    for set_index, raw in enumerate(raw_sets):
        if not isinstance(raw, list):
            raise BadInput(f"state_sets[{set_index}] is not a list")
        state: dict[tuple[str, str], str] = {}
        for event_id in raw:
            if not isinstance(event_id, str):
                raise BadInput(f"state_sets[{set_index}] holds a non-string event ID")
            event = events.get(event_id)
            if event is None:
                raise BadInput(f"state_sets[{set_index}]: no event {event_id!r} in 'events'")
            if not event.is_state():
                raise BadInput(f"state_sets[{set_index}]: {event_id!r} is not a state event")
            if state.get(event.key, event_id) != event_id:
                raise BadInput(f"state_sets[{set_index}]: two events for {list(event.key)!r}")
            state[event.key] = event_id
        state_sets.append(state)
    resolved = resolve_state(room_version, state_sets, events.get)
    return {"state": sorted([t, k, e] for (t, k), e in resolved.items())}


def check_auth_command(request: Mapping[str, Any]) -> dict[str, Any]:
    room_version = _room_version(request)
    event = _event(_field(request, "event", dict), room_version, "event")
    raw_auth = _field(request, "auth_events", list)
    auth_events = [_event(pdu, room_version, f"auth_events[{i}]") for i, pdu in enumerate(raw_auth)]
    try:
        check_event_auth(event, auth_events)
    except AuthError as exc:
        return {"allowed": False, "reason": exc.reason}
    return {"allowed": True, "reason": ""}


def verify_event_command(request: Mapping[str, Any]) -> dict[str, Any]:
    room_version = _room_version(request)
    pdu = _field(request, "event", dict)
    keys = _field(request, "keys", dict)
    for server, by_key in keys.items():
        if not isinstance(by_key, dict) or not all(isinstance(v, str) for v in by_key.values()):
            raise BadInput(f"keys[{server!r}] is not an object of key ID to base64 key")
    try:
        return verify_event_report(room_version, pdu, keys)
    except SpecError as exc:
        raise BadInput(f"event: {exc.reason}") from None


COMMANDS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "resolve-state": resolve_state_command,
    "check-auth": check_auth_command,
    "verify-event": verify_event_command,
}


# --- driver --------------------------------------------------------------------------------
def answer(command: Callable[[Mapping[str, Any]], dict[str, Any]], text: str) -> dict[str, Any]:
    """Run ``command`` on one JSON request; BadInput for anything that is not answerable."""
    try:
        request = parse_json(text)
    except SpecError as exc:
        raise BadInput(f"input: {exc.reason}") from None
    if not isinstance(request, dict):
        raise BadInput("input is not a JSON object")
    try:
        return command(request)
    except BadInput:
        raise
    except SpecError as exc:
        raise BadInput(exc.reason) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # Shapes the field checks above let through and the algorithms cannot read.
        raise BadInput(f"malformed input ({type(exc).__name__}: {exc})") from None


def _dump(result: Mapping[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def main(argv: list[str], stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    args = list(argv)
    batch = "--batch" in args
    args = [a for a in args if a != "--batch"]
    if len(args) != 1 or args[0] not in COMMANDS:
        print(f"matrix-edge spec: {USAGE}", file=stderr)
        return 2
    command = COMMANDS[args[0]]
    if not batch:
        try:
            result = answer(command, stdin.read())
        except BadInput as exc:
            print(f"matrix-edge spec: {_one_line(str(exc))}", file=stderr)
            return 2
        stdout.write(_dump(result) + "\n")
        stdout.flush()
        return 0
    for line in stdin:
        if not line.strip():
            continue
        try:
            result = answer(command, line)
        except BadInput as exc:
            result = {"error": _one_line(str(exc))}
        stdout.write(_dump(result) + "\n")
        stdout.flush()
    return 0


def _one_line(message: str) -> str:
    return " ".join(message.split())
