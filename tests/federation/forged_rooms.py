"""Rooms seen from a forged peer: events it builds and signs with its own key, its join to
a room on our server (make_join/send_join through the app), its transactions, and a room it
hosts itself (whose history our server can only get by asking it)."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import httpx
from signedjson.types import SigningKey

from durable.auth import auth_types_for_event
from durable.events import add_content_hash, build_event, event_from_pdu, sign_event
from durable.events.event import Event
from durable.room_versions import RoomVersion, get_room_version
from tests.federation.conftest import OURS, FedApp
from tests.federation.peers import ForgedPeer


def forge(
    version: RoomVersion, *, room_id: str | None, sender: str, type: str, content: dict[str, Any],
    prev: list[str], auth: list[str], depth: int, server: str, key: SigningKey,
    state_key: str | None = None, ts: int | None = None,
) -> Event:
    return build_event(
        version, room_id=room_id, sender=sender, type=type, content=content, state_key=state_key,
        prev_event_ids=prev, auth_event_ids=auth, depth=depth,
        origin_server_ts=ts if ts is not None else int(time.time() * 1000),
        server_name=server, signing_key=key,
    )


def room_summary(fed: FedApp, room_id: str) -> dict[str, Any]:
    stub = fed.env.ROOMS.get(fed.env.ROOMS.id_from_name(room_id))
    return fed.call(stub.summary)


def forge_in_our_room(
    fed: FedApp, peer: ForgedPeer, room_id: str, sender: str, type: str, content: dict[str, Any],
    state_key: str | None = None, *, prev: list[str] | None = None, auth: list[str] | None = None,
) -> Event:
    """An event of ``peer`` on top of our room's current extremities, with the auth events
    the spec selects from our current state (unless given)."""
    summary = room_summary(fed, room_id)
    version = get_room_version(summary["room_version"])
    state = {(t, k): e for t, k, e in summary["state"]}
    if auth is None:
        keys = auth_types_for_event(version, type, state_key, sender, content)
        auth = [state[k] for k in keys if k in state]
    return forge(
        version, room_id=room_id, sender=sender, type=type, content=content, state_key=state_key,
        prev=prev if prev is not None else summary["extremities"], auth=auth,
        depth=summary["depth"] + 1, server=peer.server_name, key=peer.signing_key,
    )


def federation_request(fed: FedApp, peer: ForgedPeer, method: str, path: str, body: Any = None,
                       query: dict[str, Any] | None = None) -> httpx.Response:
    uri, headers = peer.signed_headers(OURS, method, path, query, body)
    return fed.client.request(method, uri, json=body, headers=headers)


def send_transaction(fed: FedApp, peer: ForgedPeer, pdus: list[dict[str, Any]], txn_id: str | None = None,
                     edus: list[dict[str, Any]] | None = None) -> httpx.Response:
    body = {"origin": peer.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": pdus,
            "edus": edus or []}
    path = f"/_matrix/federation/v1/send/{txn_id or time.monotonic_ns()}"
    return federation_request(fed, peer, "PUT", path, body)


def peer_joins(fed: FedApp, peer: ForgedPeer, room_id: str, user_id: str) -> Event:
    """``user_id`` (on ``peer``) joins our room through make_join and send_join."""
    q = urllib.parse.quote
    made = federation_request(
        fed, peer, "GET", f"/_matrix/federation/v1/make_join/{q(room_id, safe='')}/{q(user_id, safe='')}",
        query={"ver": ["10", "11", "12"]},
    )
    assert made.status_code == 200, made.text
    version = get_room_version(made.json()["room_version"])
    template = dict(made.json()["event"])
    template["origin_server_ts"] = int(time.time() * 1000)
    pdu = sign_event(add_content_hash(template), version, peer.server_name, peer.signing_key)
    event = event_from_pdu(pdu, version)
    sent = federation_request(
        fed, peer, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id, safe='')}/{q(event.event_id, safe='')}", pdu,
    )
    assert sent.status_code == 200, sent.text
    return event


class RemoteRoom:
    """A room created and hosted by a forged peer: a linear history of its events."""

    def __init__(self, peer: ForgedPeer, creator: str, version_id: str = "12") -> None:
        self.peer = peer
        self.version = get_room_version(version_id)
        self.events: list[Event] = []
        self.state: dict[tuple[str, str], str] = {}
        self.by_id: dict[str, Event] = {}
        create_content: dict[str, Any] = {"room_version": version_id}
        if not self.version.implicit_room_creator:
            create_content["creator"] = creator
        create = self._add(None if self.version.room_id_is_create_event_hash else f"!forged:{peer.server_name}",
                           creator, "m.room.create", create_content, "")
        self.room_id = create.room_id
        self.add(creator, "m.room.member", {"membership": "join"}, creator)
        # A v12 creator has unlimited power and may not be listed in "users".
        users = {} if self.version.privileged_creators else {creator: 100}
        self.add(creator, "m.room.power_levels", {"users": users}, "")
        self.add(creator, "m.room.join_rules", {"join_rule": "public"}, "")
        self.add(creator, "m.room.history_visibility", {"history_visibility": "shared"}, "")

    def _add(self, room_id: str | None, sender: str, type: str, content: dict[str, Any],
             state_key: str | None, key: SigningKey | None = None, server: str | None = None) -> Event:
        auth_keys = auth_types_for_event(self.version, type, state_key, sender, content)
        auth = [self.state[k] for k in auth_keys if k in self.state]
        prev = [self.events[-1].event_id] if self.events else []
        event = forge(
            self.version, room_id=room_id, sender=sender, type=type, content=content, state_key=state_key,
            prev=prev, auth=auth, depth=len(self.events) + 1, server=server or self.peer.server_name,
            key=key or self.peer.signing_key, ts=1_700_000_000_000 + len(self.events),
        )
        self.events.append(event)
        self.by_id[event.event_id] = event
        if state_key is not None:
            self.state[(type, state_key)] = event.event_id
        return event

    def add(self, sender: str, type: str, content: dict[str, Any], state_key: str | None = None,
            key: SigningKey | None = None, server: str | None = None) -> Event:
        return self._add(self.room_id, sender, type, content, state_key, key, server)

    def pdu(self, event_id: str) -> dict[str, Any]:
        return dict(self.by_id[event_id].pdu)

    def auth_chain(self, event_ids: list[str]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        todo = list(event_ids)
        while todo:
            for auth_id in self.by_id[todo.pop()].auth_event_ids:
                if auth_id not in seen:
                    seen.add(auth_id)
                    todo.append(auth_id)
        return [self.pdu(e.event_id) for e in self.events if e.event_id in seen]

    def state_before(self, event_id: str) -> dict[tuple[str, str], str]:
        state: dict[tuple[str, str], str] = {}
        for event in self.events:
            if event.event_id == event_id:
                return state
            if event.is_state():
                state[event.key] = event.event_id
        raise KeyError(event_id)

    def backfill(self, from_ids: list[str], limit: int) -> list[dict[str, Any]]:
        """What the peer answers to /backfill: the given events and older, newest first."""
        index = max(i for i, e in enumerate(self.events) if e.event_id in from_ids)
        return [self.pdu(e.event_id) for e in reversed(self.events[max(0, index - limit + 1):index + 1])]
