"""Hand-built rooms for the auth-rule tests.

PDUs are plain dicts; event IDs are chosen here (no hashing): ``$<n>:<domain>`` for room
versions with domain event IDs, ``$<name>`` otherwise. For v12 the room ID is derived from the
create event's ID, as the spec requires.
"""

from __future__ import annotations

from typing import Any, Mapping

from durable.auth import auth_types_for_event, check_event_auth
from durable.events.event import Event, StateKey
from durable.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version

ALICE = "@alice:a.example"  # the creator
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:a.example"
EVE = "@eve:e.example"

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS)


def versions(*, since: str | None = None, until: str | None = None) -> list[str]:
    """Room version identifiers in [since, until] (inclusive)."""
    ids = [int(v) for v in KNOWN_ROOM_VERSIONS]
    low = int(since) if since else min(ids)
    high = int(until) if until else max(ids)
    return [str(v) for v in ids if low <= v <= high]


class Room:
    """A room under construction: its events and its current state map."""

    def __init__(
        self,
        version: str | RoomVersion,
        creator: str = ALICE,
        create_content: Mapping[str, Any] | None = None,
    ) -> None:
        self.version = version if isinstance(version, RoomVersion) else get_room_version(version)
        self.counter = 0
        self.state: dict[StateKey, Event] = {}
        self.events: dict[str, Event] = {}
        self.last: Event | None = None
        content: dict[str, Any] = {"room_version": self.version.identifier}
        if not self.version.implicit_room_creator:
            content["creator"] = creator
        if create_content is not None:
            content.update(create_content)
        pdu: dict[str, Any] = {
            "type": "m.room.create",
            "state_key": "",
            "sender": creator,
            "content": content,
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
            "origin_server_ts": 1000,
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        if self.version.room_id_is_create_event_hash:
            create_id = "$CreateEventHashForTests0123456789abcdefABCDE"
            self.room_id = "!" + create_id[1:]
        else:
            create_id = self._new_id("a.example")
            self.room_id = "!room:a.example"
            pdu["room_id"] = self.room_id
        self.create = Event(pdu, self.version, create_id)
        self._apply(self.create)

    # --- ids and edges ---------------------------------------------------------------------
    def _new_id(self, domain: str) -> str:
        self.counter += 1
        if self.version.event_id_in_event:
            return f"${self.counter}:{domain}"
        return f"$ev{self.counter}"

    def _edges(self, ids: list[str]) -> list[Any]:
        if self.version.event_id_in_event:
            return [[event_id, {"sha256": "x"}] for event_id in ids]
        return list(ids)

    def _apply(self, event: Event) -> None:
        self.events[event.event_id] = event
        self.last = event
        if event.is_state():
            self.state[event.key] = event

    # --- building --------------------------------------------------------------------------
    def make(
        self,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        prev_events: list[str] | None = None,
        auth_event_ids: list[str] | None = None,
        event_id: str | None = None,
        signatures: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Event:
        """An event on top of the current state, not applied. Its ``auth_events`` follow the
        selection algorithm unless given; its signatures default to the sender's server."""
        if auth_event_ids is None:
            keys = auth_types_for_event(self.version, type, state_key, sender, content)
            auth_event_ids = [self.state[key].event_id for key in keys if key in self.state]
        if prev_events is None:
            prev_events = [self.last.event_id] if self.last is not None else []
        sender_domain = sender.partition(":")[2]
        pdu: dict[str, Any] = {
            "type": type,
            "sender": sender,
            "room_id": self.room_id,
            "content": dict(content),
            "prev_events": self._edges(prev_events),
            "auth_events": self._edges(auth_event_ids),
            "depth": self.counter + 1,
            "origin_server_ts": 1000 + self.counter,
            "hashes": {"sha256": "x"},
            "signatures": dict(signatures) if signatures is not None else {sender_domain: {"ed25519:1": "sig"}},
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        if extra:
            pdu.update(extra)
        return Event(pdu, self.version, event_id or self._new_id(sender_domain))

    def auth_events_of(self, event: Event) -> list[Event]:
        """The events the PDU lists, plus the create event in v12 (implied by the room ID)."""
        listed = [self.events[event_id] for event_id in event.auth_event_ids]
        if self.version.room_id_is_create_event_hash and self.create not in listed:
            listed.append(self.create)
        return listed

    def send(self, type: str, sender: str, content: Mapping[str, Any], state_key: str | None = None, **kw: Any) -> Event:
        """Build, authorise against its auth events (must pass), and apply."""
        event = self.make(type, sender, content, state_key, **kw)
        check_event_auth(event, self.auth_events_of(event))
        self._apply(event)
        return event

    def force(self, type: str, sender: str, content: Mapping[str, Any], state_key: str | None = None, **kw: Any) -> Event:
        """Build and apply without any check (to set up states the rules would not reach)."""
        event = self.make(type, sender, content, state_key, **kw)
        self._apply(event)
        return event

    # --- shortcuts -------------------------------------------------------------------------
    def member(self, user: str, membership: str, sender: str | None = None, **content: Any) -> Event:
        return self.send("m.room.member", sender or user, {"membership": membership, **content}, user)

    def power_levels(self, sender: str = ALICE, **content: Any) -> Event:
        return self.send("m.room.power_levels", sender, content, "")


def default_users(room: Room, **levels: int) -> dict[str, int]:
    """A `users` map: the creator at 100 (except in v12, where creators are never listed)."""
    users: dict[str, int] = {} if room.version.privileged_creators else {ALICE: 100}
    users.update(levels)
    return users


def standard_room(
    version: str,
    join_rule: str = "public",
    users: Mapping[str, int] | None = None,
    members: tuple[str, ...] = (),
    create_content: Mapping[str, Any] | None = None,
    **pl_content: Any,
) -> Room:
    """create, creator join, power levels, join rules, then each member joins (the join
    rule is public while they do)."""
    room = Room(version, create_content=create_content)
    room.member(ALICE, "join")
    pl_users = default_users(room)
    if users:
        pl_users.update(users)
    room.power_levels(users=pl_users, **pl_content)
    if members:
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        for user in members:
            room.member(user, "join")
    if join_rule != "public" or not members:
        room.send("m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    return room
