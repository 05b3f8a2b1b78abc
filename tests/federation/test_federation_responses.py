"""Our server-server responses against the spec's OpenAPI response schemas.

One realistic scenario is driven through the real app once per module, as forged peers see
it (``remote.test`` signs every request with X-Matrix): a public room of ours with a name, a
topic and an alias, in a space; a remote user joins it through make_join/send_join (v2),
another through v1, a third joins and leaves; messages from both sides (ours through the
client API, theirs in a transaction with an EDU), a state change and a redaction; then
every read of the room's graph, a knock, invites to our user over v1 and v2, queries,
the room directory, users' devices and keys, OpenID and media. Each row of ``CASES`` names
one response the scenario got and the spec operation it answers; its JSON body is validated
against the schema the spec gives for that operation and status.

The schemas are the spec's own YAML files (matrix-spec d0ba2aae), mirrored with their
relative layout under ``tests/spec_data/matrix-spec`` (see its README.md): every file is
registered in a ``referencing`` registry under its path below ``SPEC_BASE``, so a relative
``$ref`` between files resolves as it does in the spec's tree. The v1 ``send_join`` and
``send_leave``, removed from the spec by MSC4376 (which we still serve to older servers),
are checked against the last spec text that had them (``*.before-msc4376.yaml``).

Schemas are checked with JSON Schema draft 2020-12. ``format`` is left unchecked: jsonschema
treats it as an annotation unless given a format checker. Where the schema rather than our
server is at fault, the exception is in ``SCHEMA_QUIRKS`` with its reason; nothing else is
skipped. Media answers are ``multipart/mixed`` (no JSON schema): their parts are checked
against the shape the operation's description gives.

The operation schemas type a PDU as any object, so each PDU a response carries is also
checked against the event format of its room version (``definitions/pdu_v*.yaml``; rooms of
versions 2, 10 and 12 take part). The other half of ``/send`` is checked too: the
transactions our server sent the peer during the scenario against the operation's request
body, and their EDUs against ``definitions/event-schemas``.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from starlette.testclient import TestClient

from durable.events import add_content_hash, build_event, event_from_pdu, sign_event
from durable.room_versions import get_room_version
from local_runtime.config import load_config
from local_runtime.server import build_app
from tests import spec_conformance
from tests.federation.conftest import OURS, FedApp
from tests.federation.e2ee_support import LocalUser, wait_for_edus
from tests.federation.forged_rooms import RemoteRoom, forge_in_our_room
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for
from tests.spec_conformance import Case, Quirk, assert_valid_or_quirk, cases_from_rows, png, pointer_token
from workers.client import passwords

SPEC_ROOT = Path(__file__).parents[1] / "spec_data" / "matrix-spec"
SPEC_BASE = "https://matrix-spec.test/data/"  # a made-up base: nothing is ever fetched from it
SERVER_SERVER = "api/server-server/"
REMOVED_SUFFIX = ".before-msc4376.yaml"


def _load_spec() -> dict[str, Any]:
    """Every YAML file of the mirror, by its path relative to ``SPEC_ROOT``."""
    return {path.relative_to(SPEC_ROOT).as_posix(): yaml.safe_load(path.read_text())
            for path in sorted(SPEC_ROOT.rglob("*.yaml"))}


SPEC_FILES: dict[str, Any] = _load_spec()
REGISTRY: Registry[Any] = Registry().with_resources(
    (SPEC_BASE + name, Resource.from_contents(contents, default_specification=DRAFT202012))
    for name, contents in SPEC_FILES.items()
)


def _operations() -> dict[tuple[str, str], tuple[str, str]]:
    """``(method, full path template)`` -> ``(file, path key in that file)`` for each operation
    of the server-server API files; the removed v1 operations come from the older files."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    names = [n for n in SPEC_FILES if n.startswith(SERVER_SERVER) and n.count("/") == 2]
    for name in sorted(names, key=lambda n: n.endswith(REMOVED_SUFFIX)):  # the current files first
        document = SPEC_FILES[name]
        base = document["servers"][0]["variables"]["basePath"]["default"]
        for path, operations in document.get("paths", {}).items():
            for method in operations:
                found.setdefault((method, base + path), (name, path))
    return found


OPERATIONS = _operations()

F1 = "/_matrix/federation/v1"
F2 = "/_matrix/federation/v2"
K2 = "/_matrix/key/v2"


# Successful responses, in the order the scenario gets them, then error bodies.
CASES: list[Case] = cases_from_rows(200, f"""
version                      GET  {F1}/version
well-known-server            GET  /.well-known/matrix/server
server-keys                  GET  {K2}/server
key-query-get                GET  {K2}/query/{{serverName}}
key-query-get-own            GET  {K2}/query/{{serverName}}
key-query-post               POST {K2}/query
make-join                    GET  {F1}/make_join/{{roomId}}/{{userId}}
send-join-v2                 PUT  {F2}/send_join/{{roomId}}/{{eventId}}
send-transaction             PUT  {F1}/send/{{txnId}}
send-transaction-repeated    PUT  {F1}/send/{{txnId}}
send-transaction-rejected    PUT  {F1}/send/{{txnId}}
event                        GET  {F1}/event/{{eventId}}
event-redacted               GET  {F1}/event/{{eventId}}
event-redaction              GET  {F1}/event/{{eventId}}
state                        GET  {F1}/state/{{roomId}}
state-ids                    GET  {F1}/state_ids/{{roomId}}
event-auth                   GET  {F1}/event_auth/{{roomId}}/{{eventId}}
backfill                     GET  {F1}/backfill/{{roomId}}
get-missing-events           POST {F1}/get_missing_events/{{roomId}}
timestamp-to-event           GET  {F1}/timestamp_to_event/{{roomId}}
timestamp-to-event-backward  GET  {F1}/timestamp_to_event/{{roomId}}
make-join-restricted         GET  {F1}/make_join/{{roomId}}/{{userId}}
send-join-restricted         PUT  {F2}/send_join/{{roomId}}/{{eventId}}
make-join-old-room           GET  {F1}/make_join/{{roomId}}/{{userId}}
send-join-old-room           PUT  {F2}/send_join/{{roomId}}/{{eventId}}
backfill-old-room            GET  {F1}/backfill/{{roomId}}
make-join-v1-handshake       GET  {F1}/make_join/{{roomId}}/{{userId}}
send-join-v1                 PUT  {F1}/send_join/{{roomId}}/{{eventId}}
make-leave                   GET  {F1}/make_leave/{{roomId}}/{{userId}}
send-leave-v2                PUT  {F2}/send_leave/{{roomId}}/{{eventId}}
send-leave-v1                PUT  {F1}/send_leave/{{roomId}}/{{eventId}}
make-knock                   GET  {F1}/make_knock/{{roomId}}/{{userId}}
send-knock                   PUT  {F1}/send_knock/{{roomId}}/{{eventId}}
invite-v2                    PUT  {F2}/invite/{{roomId}}/{{eventId}}
invite-v1                    PUT  {F1}/invite/{{roomId}}/{{eventId}}
query-profile                GET  {F1}/query/profile
query-profile-field          GET  {F1}/query/profile
query-directory              GET  {F1}/query/directory
public-rooms                 GET  {F1}/publicRooms
public-rooms-search          POST {F1}/publicRooms
public-rooms-paged           GET  {F1}/publicRooms
public-rooms-second-page     GET  {F1}/publicRooms
hierarchy                    GET  {F1}/hierarchy/{{roomId}}
hierarchy-child              GET  {F1}/hierarchy/{{roomId}}
user-devices                 GET  {F1}/user/devices/{{userId}}
user-devices-cross-signing   GET  {F1}/user/devices/{{userId}}
user-keys-query              POST {F1}/user/keys/query
user-keys-claim              POST {F1}/user/keys/claim
user-keys-claim-fallback     POST {F1}/user/keys/claim
user-keys-query-unknown      POST {F1}/user/keys/query
openid-userinfo              GET  {F1}/openid/userinfo
""") + [
    Case("error-make-join-unknown-room", "get", f"{F1}/make_join/{{roomId}}/{{userId}}", 404),
    Case("error-make-join-incompatible", "get", f"{F1}/make_join/{{roomId}}/{{userId}}", 400),
    Case("error-make-join-forbidden", "get", f"{F1}/make_join/{{roomId}}/{{userId}}", 403),
    Case("error-make-leave-forbidden", "get", f"{F1}/make_leave/{{roomId}}/{{userId}}", 403),
    Case("error-make-knock-incompatible", "get", f"{F1}/make_knock/{{roomId}}/{{userId}}", 400),
    Case("error-make-knock-forbidden", "get", f"{F1}/make_knock/{{roomId}}/{{userId}}", 403),
    Case("error-send-knock-unknown-room", "put", f"{F1}/send_knock/{{roomId}}/{{eventId}}", 404),
    Case("error-send-join-invalid", "put", f"{F2}/send_join/{{roomId}}/{{eventId}}", 400),
    Case("error-state-ids-not-in-room", "get", f"{F1}/state_ids/{{roomId}}", 403),
    Case("error-state-ids-unknown-event", "get", f"{F1}/state_ids/{{roomId}}", 404),
    Case("error-timestamp-no-event", "get", f"{F1}/timestamp_to_event/{{roomId}}", 404),
    Case("error-invite-v2-unsupported-version", "put", f"{F2}/invite/{{roomId}}/{{eventId}}", 400),
    Case("error-invite-v2-not-our-user", "put", f"{F2}/invite/{{roomId}}/{{eventId}}", 403),
    Case("error-query-profile-unknown", "get", f"{F1}/query/profile", 404),
    Case("error-query-directory-unknown", "get", f"{F1}/query/directory", 404),
    Case("error-hierarchy-unknown", "get", f"{F1}/hierarchy/{{roomId}}", 404),
    Case("error-openid-unknown-token", "get", f"{F1}/openid/userinfo", 401),
    Case("error-media-thumbnail-bad-size", "get", f"{F1}/media/thumbnail/{{mediaId}}", 400),
    Case("error-media-not-yet-uploaded", "get", f"{F1}/media/download/{{mediaId}}", 504),
]

# Binary responses (media): multipart/mixed; their parts are checked instead of a schema.
MULTIPART_CASES: list[Case] = cases_from_rows(200, f"""
media-download               GET  {F1}/media/download/{{mediaId}}
media-thumbnail              GET  {F1}/media/thumbnail/{{mediaId}}
""")


# The PDU format has had no top-level ``origin`` since spec v1.3 (matrix-spec #998, "Remove
# origin field from PDUs": pdu_base.yaml neither lists nor requires it), but the membership
# templates and invite_event.yaml still require it.
TEMPLATE_ORIGIN = Quirk(
    "required", r"^'origin' is a required property$",
    "make_join/make_leave/make_knock answer a template that the joining server turns into its "
    "PDU; PDUs have no 'origin' any more, and from room version 11 redaction does not even keep "
    "it, so our templates for v11+ rooms leave it out (those of older rooms keep it for older "
    "servers: make-knock, a v10 room, passes); the template schema still requires it",
)
INVITE_ORIGIN = Quirk(
    "required", r"^'origin' is a required property$",
    "the answer is the inviting server's own event with our signature added ('All other fields "
    "of the event should remain untouched'); the inviter sent no 'origin', as PDUs have none "
    "since v1.3, and adding one would break its content hash and signature",
)

# Responses the spec's schema refuses for a reason that is the schema's, not ours.
SCHEMA_QUIRKS: dict[str, Quirk] = {
    "make-join": TEMPLATE_ORIGIN,
    "make-join-v1-handshake": TEMPLATE_ORIGIN,
    "make-join-restricted": TEMPLATE_ORIGIN,
    "make-leave": TEMPLATE_ORIGIN,
    "invite-v2": INVITE_ORIGIN,
    "invite-v1": INVITE_ORIGIN,
}


# The operation schemas type each PDU as just an object; each is also checked against the
# event format of its room version (the rooms/vN pages show these definitions).
PDU_DEFINITIONS: dict[str, str] = {
    "1": "pdu_v1", "2": "pdu_v1", "3": "pdu_v3", "4": "pdu_v4", "5": "pdu_v4",
    **{str(v): "pdu_v6" for v in range(6, 11)}, "11": "pdu_v11", "12": "pdu_v12",
}
# Where each response carries PDUs: a path of keys (an index into a v1 ``[200, body]``) to
# a PDU or a list of them.
PDU_LOCATIONS: dict[str, list[tuple[str | int, ...]]] = {
    "send-join-v2": [("state",), ("auth_chain",)],
    "event": [("pdus",)],
    "event-redacted": [("pdus",)],
    "event-redaction": [("pdus",)],
    "state": [("pdus",), ("auth_chain",)],
    "event-auth": [("auth_chain",)],
    "backfill": [("pdus",)],
    "get-missing-events": [("events",)],
    "send-join-restricted": [("state",), ("auth_chain",), ("event",)],
    "send-join-old-room": [("state",), ("auth_chain",)],
    "backfill-old-room": [("pdus",)],
    "send-join-v1": [(1, "state"), (1, "auth_chain")],
    "send-knock": [("knock_room_state",)],
    "invite-v2": [("event",)],
    "invite-v1": [(1, "event")],
}
# room_id_v12.yaml requires room_id, while its own description says "Omitted from
# m.room.create events": a v12 room's ID is derived from its create event, which has none.
V12_CREATE_QUIRK = Quirk(
    "required", r"^'room_id' is a required property$",
    "a room version 12 m.room.create event has no room_id (the room ID is the create event's "
    "reference hash), as room_id_v12.yaml's description says, but the schema requires it",
)


# The EDUs our server sends in the scenario; each has a schema in definitions/event-schemas.
EDU_TYPES = ["m.typing", "m.receipt", "m.presence", "m.direct_to_device", "m.device_list_update",
             "m.signing_key_update"]


# --- schema lookup -------------------------------------------------------------------------


def _pointer(tokens: list[str]) -> str:
    return "#/" + "/".join(pointer_token(t) for t in tokens)


def spec_response(case: Case) -> tuple[str, dict[str, Any]]:
    """``(uri, response object)`` for ``case``'s status, following a ``$ref`` to a shared
    response (``#/components/responses/...``)."""
    name, path = OPERATIONS[(case.method, case.path)]
    uri = SPEC_BASE + name + _pointer(["paths", path, case.method, "responses", str(case.status)])
    resolver = REGISTRY.resolver()
    resolved = resolver.lookup(uri)
    while "$ref" in resolved.contents:
        uri = urllib.parse.urljoin(uri, resolved.contents["$ref"])
        resolved = resolved.resolver.lookup(uri)
    return uri, resolved.contents


def validator_for(case: Case) -> Draft202012Validator:
    """A validator for the JSON body of ``case``'s response, through a ``$ref`` into the spec."""
    uri, response = spec_response(case)
    assert "application/json" in response.get("content", {}), f"{case.id}: the spec gives no JSON body"
    schema_uri = uri + "/" + "/".join(pointer_token(t) for t in ["content", "application/json", "schema"])
    return Draft202012Validator({"$ref": schema_uri}, registry=REGISTRY)


def pdu_validator(room_version: str) -> Draft202012Validator:
    uri = f"{SPEC_BASE}{SERVER_SERVER}definitions/{PDU_DEFINITIONS[room_version]}.yaml"
    return Draft202012Validator({"$ref": uri}, registry=REGISTRY)


# --- the scenario ----------------------------------------------------------------------------

PEER = "remote.test"
MALLORY = f"@mallory:{PEER}"  # joins through v2 and stays
CAROL = f"@carol:{PEER}"  # joins through v1, leaves through v2, knocks
DAN = f"@dan:{PEER}"  # joins, then leaves through v1
STRANGER = "@erin:elsewhere.test"
V3 = "/_matrix/client/v3"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Recorder(spec_conformance.Recorder):
    """The recorder of the federation scenario, which also notes the room versions of the
    PDUs in the responses and the transactions our server sent the peer."""

    def __init__(self) -> None:
        super().__init__(CASES + MULTIPART_CASES)
        self.room_versions: dict[str, str] = {}  # of the rooms whose PDUs the responses carry
        self.transactions: list[dict[str, Any]] = []  # the ones our server sent the peer


class Scenario:
    """The app as the forged peer sees it, with the local users that act in it."""

    def __init__(self, fed: FedApp, peer: ForgedPeer, rec: Recorder) -> None:
        self.fed = fed
        self.peer = peer
        self.rec = rec
        self.events_made = 0

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                signed: bool = True) -> httpx.Response:
        if not signed:
            return self.fed.client.request(method, path, json=body, params=query)
        uri, headers = self.peer.signed_headers(OURS, method, path, query, body)
        return self.fed.client.request(method, uri, json=body, headers=headers)

    def signed_pdu(self, template: dict[str, Any], room_version: str) -> tuple[str, dict[str, Any]]:
        """The peer's event from a make_* template: timestamped, hashed, signed."""
        version = get_room_version(room_version)
        event = dict(template)
        event["origin_server_ts"] = int(time.time() * 1000)
        if version.event_id_in_event:  # room versions 1 and 2: the joining server names its event
            self.events_made += 1
            event["event_id"] = f"$made{self.events_made}:{self.peer.server_name}"
        pdu = sign_event(add_content_hash(event), version, self.peer.server_name, self.peer.signing_key)
        return event_from_pdu(pdu, version).event_id, pdu

    def make(self, membership: str, room_id: str, user_id: str, case_id: str | None = None,
             versions: tuple[str, ...] = ("10", "11", "12")) -> tuple[str, str, dict[str, Any]]:
        """make_{membership} for ``user_id``: ``(room version, event ID, signed PDU)``."""
        query = {"ver": list(versions)} if membership != "leave" else None
        response = self.request("GET", f"{F1}/make_{membership}/{q(room_id)}/{q(user_id)}", query=query)
        body = self.rec(case_id, response) if case_id else response.json()
        assert response.status_code == 200, response.text
        event_id, pdu = self.signed_pdu(body["event"], body["room_version"])
        return body["room_version"], event_id, pdu

    def send(self, membership: str, version: str, room_id: str, event_id: str, pdu: dict[str, Any],
             case_id: str | None = None) -> Any:
        response = self.request("PUT", f"/_matrix/federation/{version}/send_{membership}/{q(room_id)}/{q(event_id)}",
                                pdu)
        if case_id:
            return self.rec(case_id, response)
        assert response.status_code == 200, response.text
        return response.json()

    def join(self, room_id: str, user_id: str, make_id: str | None = None, send_id: str | None = None,
             version: str = "v2") -> Any:
        _, event_id, pdu = self.make("join", room_id, user_id, make_id)
        return self.send("join", version, room_id, event_id, pdu, send_id)


def _cross_signing_keys(user_id: str) -> dict[str, Any]:
    """Master, self-signing and user-signing keys of ``user_id``, the latter two signed by the
    master; each key's ID is its public key, as for cross-signing keys."""
    keys: dict[str, Any] = {}
    master = None
    for usage in ("master", "self_signing", "user_signing"):
        key = generate_signing_key("v")
        public = encode_verify_key_base64(get_verify_key(key))
        key.version = public
        body = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
        keys[f"{usage}_key"] = body if master is None else sign_json(body, user_id, master)
        master = master or key
    return keys


def run_scenario(fed: FedApp, peer: ForgedPeer, rec: Recorder) -> None:
    s = Scenario(fed, peer, rec)
    alice, bob = LocalUser(fed, "alice"), LocalUser(fed, "bob")

    # --- discovery and keys -------------------------------------------------------------------
    rec("version", s.request("GET", f"{F1}/version", signed=False))
    rec("well-known-server", s.request("GET", "/.well-known/matrix/server", signed=False))
    rec("server-keys", s.request("GET", f"{K2}/server", signed=False))
    rec("key-query-get", s.request("GET", f"{K2}/query/{PEER}", signed=False))
    rec("key-query-get-own", s.request("GET", f"{K2}/query/{OURS}", signed=False))
    queried = rec("key-query-post", s.request("POST", f"{K2}/query", {"server_keys": {
        PEER: {peer.key_id: {"minimum_valid_until_ts": 0}}, OURS: {},
    }}, signed=False))
    assert {k["server_name"] for k in queried["server_keys"]} == {PEER, OURS}, queried

    # --- the room, and a remote member joined through v2 --------------------------------------
    alice.ok("PUT", f"/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice"})
    alice.ok("PUT", f"/profile/{q(alice.user_id)}/avatar_url", {"avatar_url": f"mxc://{OURS}/avatar"})
    room = alice.ok("POST", "/createRoom", {
        "preset": "public_chat", "visibility": "public", "name": "Town square", "topic": "All things town",
        "room_alias_name": "town",
    })["room_id"]
    rec.room_versions[room] = "12"
    _, join_id, join_pdu = s.make("join", room, MALLORY, "make-join")
    sent = s.send("join", "v2", room, join_id, join_pdu, "send-join-v2")
    assert sent["state"] and sent["auth_chain"], sent
    hello = alice.ok("PUT", f"/rooms/{q(room)}/send/m.room.message/t1",
                     {"msgtype": "m.text", "body": "hello"})["event_id"]

    # --- their messages in a transaction (with a typing EDU), our state change and redaction ---
    theirs = forge_in_our_room(fed, peer, room, MALLORY, "m.room.message", {"msgtype": "m.text", "body": "hi alice"})
    oops = forge_in_our_room(fed, peer, room, MALLORY, "m.room.message", {"msgtype": "m.text", "body": "oops"},
                             prev=[theirs.event_id])
    txn = {"origin": PEER, "origin_server_ts": int(time.time() * 1000),
           "pdus": [dict(theirs.pdu), dict(oops.pdu)],
           "edus": [{"edu_type": "m.typing", "content": {"room_id": room, "user_id": MALLORY, "typing": True}}]}
    answer = rec("send-transaction", s.request("PUT", f"{F1}/send/txn1", txn))
    assert answer == {"pdus": {theirs.event_id: {}, oops.event_id: {}}}, answer
    rec("send-transaction-repeated", s.request("PUT", f"{F1}/send/txn1", txn))
    power = forge_in_our_room(fed, peer, room, MALLORY, "m.room.power_levels", {"users": {MALLORY: 100}}, "")
    refused = rec("send-transaction-rejected", s.request("PUT", f"{F1}/send/txn2", {
        "origin": PEER, "origin_server_ts": int(time.time() * 1000), "pdus": [dict(power.pdu)], "edus": [],
    }))
    assert "error" in refused["pdus"][power.event_id], refused
    alice.ok("PUT", f"/rooms/{q(room)}/state/m.room.topic/", {"topic": "Everything town"})
    redaction = alice.ok("PUT", f"/rooms/{q(room)}/redact/{q(oops.event_id)}/t2", {"reason": "spam"})["event_id"]
    latest = alice.ok("PUT", f"/rooms/{q(room)}/send/m.room.message/t3",
                      {"msgtype": "m.text", "body": "bye"})["event_id"]

    # --- ephemeral data for the peer's user (sent to it in our transactions) --------------------
    alice.ok("PUT", f"/rooms/{q(room)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 30000})
    alice.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(theirs.event_id)}", {})
    alice.ok("PUT", f"/presence/{q(alice.user_id)}/status", {"presence": "online", "status_msg": "around"})
    alice.ok("PUT", "/sendToDevice/m.room_key_request/t4", {"messages": {MALLORY: {"*": {
        "action": "request_cancellation", "request_id": "r1", "requesting_device_id": alice.device_id}}}})

    # --- reading the room's graph -------------------------------------------------------------
    rec("event", s.request("GET", f"{F1}/event/{q(hello)}"))
    redacted = rec("event-redacted", s.request("GET", f"{F1}/event/{q(oops.event_id)}"))
    assert redacted["pdus"][0]["content"] == {}, redacted
    rec("event-redaction", s.request("GET", f"{F1}/event/{q(redaction)}"))
    rec("state", s.request("GET", f"{F1}/state/{q(room)}", query={"event_id": latest}))
    rec("state-ids", s.request("GET", f"{F1}/state_ids/{q(room)}", query={"event_id": latest}))
    rec("event-auth", s.request("GET", f"{F1}/event_auth/{q(room)}/{q(latest)}"))
    backfilled = rec("backfill", s.request("GET", f"{F1}/backfill/{q(room)}", query={"v": [latest], "limit": "5"}))
    assert len(backfilled["pdus"]) == 5, backfilled
    missing = rec("get-missing-events", s.request("POST", f"{F1}/get_missing_events/{q(room)}", {
        "earliest_events": [join_id], "latest_events": [latest], "limit": 10, "min_depth": 0,
    }))
    assert missing["events"], missing
    rec("timestamp-to-event", s.request("GET", f"{F1}/timestamp_to_event/{q(room)}", query={"ts": "0", "dir": "f"}))
    found = rec("timestamp-to-event-backward", s.request("GET", f"{F1}/timestamp_to_event/{q(room)}", query={
        "ts": str(int(time.time() * 1000) + 60_000), "dir": "b"}))
    assert found["event_id"] == latest, found

    # --- a restricted room joined through membership of the first one -------------------------
    members = alice.ok("POST", "/createRoom", {"preset": "private_chat", "name": "Members only", "initial_state": [
        {"type": "m.room.join_rules", "state_key": "",
         "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": room}]}},
    ]})["room_id"]
    rec.room_versions[members] = "12"
    _, restricted_id, restricted_pdu = s.make("join", members, MALLORY, "make-join-restricted")
    assert restricted_pdu["content"]["join_authorised_via_users_server"] == alice.user_id, restricted_pdu
    joined = s.send("join", "v2", members, restricted_id, restricted_pdu, "send-join-restricted")
    assert OURS in joined["event"]["signatures"], joined

    # --- a room of the oldest event format (v2: event IDs in events, [id, hashes] edges) -------
    old_ours = alice.ok("POST", "/createRoom", {"preset": "public_chat", "room_version": "2"})["room_id"]
    rec.room_versions[old_ours] = "2"
    _, old_join_id, old_join_pdu = s.make("join", old_ours, MALLORY, "make-join-old-room", versions=("2",))
    s.send("join", "v2", old_ours, old_join_id, old_join_pdu, "send-join-old-room")
    old_message = alice.ok("PUT", f"/rooms/{q(old_ours)}/send/m.room.message/t5",
                           {"msgtype": "m.text", "body": "old school"})["event_id"]
    rec("backfill-old-room", s.request("GET", f"{F1}/backfill/{q(old_ours)}",
                                       query={"v": [old_message], "limit": "20"}))

    # --- more members: v1 send_join, make_leave with v2 and v1 send_leave ----------------------
    s.join(room, CAROL, "make-join-v1-handshake", "send-join-v1", version="v1")
    s.join(room, DAN)
    _, leave_id, leave_pdu = s.make("leave", room, CAROL, "make-leave")
    assert s.send("leave", "v2", room, leave_id, leave_pdu, "send-leave-v2") == {}
    _, leave_id, leave_pdu = s.make("leave", room, DAN)
    s.send("leave", "v1", room, leave_id, leave_pdu, "send-leave-v1")

    # --- a knock ------------------------------------------------------------------------------
    knock_room = alice.ok("POST", "/createRoom", {
        "preset": "private_chat", "name": "Knock first", "room_version": "10",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}],
    })["room_id"]
    rec.room_versions[knock_room] = "10"
    _, knock_id, knock_pdu = s.make("knock", knock_room, CAROL, "make-knock")
    knocked = s.send("knock", "v1", knock_room, knock_id, knock_pdu, "send-knock")
    assert knocked["knock_room_state"], knocked

    # --- invites to our user, over v2 (a v12 room) and v1 (a v2 room) --------------------------
    remote = RemoteRoom(peer, CAROL, "12")
    rec.room_versions[remote.room_id] = "12"
    invite = remote.add(CAROL, "m.room.member", {"membership": "invite"}, bob.user_id)
    stripped = [{"type": "m.room.join_rules", "state_key": "", "sender": CAROL, "content": {"join_rule": "invite"}}]
    signed = rec("invite-v2", s.request("PUT", f"{F2}/invite/{q(remote.room_id)}/{q(invite.event_id)}", {
        "room_version": "12", "event": dict(invite.pdu), "invite_room_state": stripped,
    }))
    assert OURS in signed["event"]["signatures"], signed
    old_room = f"!old:{PEER}"  # a v2 room of the peer: v1 invites are for v1 and v2 rooms
    rec.room_versions[old_room] = "2"
    old_invite = build_event(
        get_room_version("2"), room_id=old_room, sender=CAROL, type="m.room.member", state_key=bob.user_id,
        content={"membership": "invite"}, prev_event_ids=[f"$topic:{PEER}"],
        auth_event_ids=[f"$create:{PEER}", f"$power:{PEER}", f"$carol:{PEER}"], depth=5,
        origin_server_ts=int(time.time() * 1000), server_name=PEER, signing_key=peer.signing_key,
        event_id_localpart="invite1", get_event_hashes=lambda event_id: {"sha256": "aGFzaA"},
    )
    v1_body = {**old_invite.pdu, "unsigned": {"invite_room_state": stripped}}
    rec("invite-v1", s.request("PUT", f"{F1}/invite/{q(old_room)}/{q(old_invite.event_id)}", v1_body))

    # --- queries and the room directory -------------------------------------------------------
    rec("query-profile", s.request("GET", f"{F1}/query/profile", query={"user_id": alice.user_id}))
    rec("query-profile-field", s.request("GET", f"{F1}/query/profile",
                                         query={"user_id": alice.user_id, "field": "displayname"}))
    directory = rec("query-directory", s.request("GET", f"{F1}/query/directory", query={"room_alias": f"#town:{OURS}"}))
    assert directory["room_id"] == room and PEER in directory["servers"], directory
    public = rec("public-rooms", s.request("GET", f"{F1}/publicRooms", query={"limit": "5"}))
    assert [r["room_id"] for r in public["chunk"]] == [room], public
    rec("public-rooms-search", s.request("POST", f"{F1}/publicRooms", {
        "limit": 5, "filter": {"generic_search_term": "square"}, "include_all_networks": False,
    }))

    # --- a space holding the room -------------------------------------------------------------
    space = alice.ok("POST", "/createRoom", {
        "preset": "public_chat", "visibility": "public", "name": "Town space", "creation_content": {"type": "m.space"},
    })["room_id"]
    alice.ok("PUT", f"/rooms/{q(space)}/state/m.space.child/{q(room)}", {"via": [OURS], "suggested": True})
    private = alice.ok("POST", "/createRoom", {"preset": "private_chat", "name": "Back room"})["room_id"]
    for child in (knock_room, private):
        alice.ok("PUT", f"/rooms/{q(space)}/state/m.space.child/{q(child)}", {"via": [OURS]})
    tree = rec("hierarchy", s.request("GET", f"{F1}/hierarchy/{q(space)}"))
    assert sorted(c["room_id"] for c in tree["children"]) == sorted([room, knock_room]), tree
    assert tree["inaccessible_children"] == [private], tree
    rec("hierarchy-child", s.request("GET", f"{F1}/hierarchy/{q(room)}", query={"suggested_only": "true"}))
    page = rec("public-rooms-paged", s.request("GET", f"{F1}/publicRooms", query={"limit": "1"}))
    assert page.get("next_batch") and len(page["chunk"]) == 1, page
    page = rec("public-rooms-second-page", s.request("GET", f"{F1}/publicRooms",
                                                     query={"limit": "1", "since": page["next_batch"]}))
    assert page.get("prev_batch") and len(page["chunk"]) == 1, page

    # --- devices and keys ----------------------------------------------------------------------
    alice.upload_keys(otk_count=2)
    rec("user-devices", s.request("GET", f"{F1}/user/devices/{q(alice.user_id)}"))
    alice.ok("POST", "/keys/device_signing/upload", _cross_signing_keys(alice.user_id))
    rec("user-devices-cross-signing", s.request("GET", f"{F1}/user/devices/{q(alice.user_id)}"))
    rec("user-keys-query", s.request("POST", f"{F1}/user/keys/query", {"device_keys": {alice.user_id: []}}))
    claimed = rec("user-keys-claim", s.request("POST", f"{F1}/user/keys/claim", {
        "one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}},
    }))
    assert claimed["one_time_keys"][alice.user_id], claimed
    fallback = sign_json({"key": "bobfb", "fallback": True}, bob.user_id, bob.signing_key)
    bob.ok("POST", "/keys/upload",
           {"device_keys": bob.device_keys(), "fallback_keys": {"signed_curve25519:FB": fallback}})
    claimed = rec("user-keys-claim-fallback", s.request("POST", f"{F1}/user/keys/claim", {
        "one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}},
    }))
    assert claimed["one_time_keys"][bob.user_id][bob.device_id] == {"signed_curve25519:FB": fallback}, claimed
    rec("user-keys-query-unknown", s.request("POST", f"{F1}/user/keys/query", {
        "device_keys": {f"@nobody:{OURS}": [], bob.user_id: ["NOSUCHDEVICE"]},
    }))

    # --- OpenID and media ---------------------------------------------------------------------
    token = alice.ok("POST", f"/user/{q(alice.user_id)}/openid/request_token", {})["access_token"]
    userinfo = rec("openid-userinfo", s.request("GET", f"{F1}/openid/userinfo", query={"access_token": token},
                                                signed=False))
    assert userinfo == {"sub": alice.user_id}
    image = png((30, 120, 200))
    uploaded = fed.client.post("/_matrix/media/v3/upload", content=image, params={"filename": "town.png"},
                               headers={**alice.headers, "Content-Type": "image/png"})
    assert uploaded.status_code == 200, uploaded.text
    media_id = uploaded.json()["content_uri"].rsplit("/", 1)[1]
    rec("media-download", s.request("GET", f"{F1}/media/download/{media_id}"))
    rec("media-thumbnail", s.request("GET", f"{F1}/media/thumbnail/{media_id}",
                                     query={"width": "32", "height": "32", "method": "scale"}))

    # --- error bodies -------------------------------------------------------------------------
    def make_join(case_id: str, room_id: str, user_id: str, versions: list[str]) -> Any:
        return rec(case_id, s.request("GET", f"{F1}/make_join/{q(room_id)}/{q(user_id)}", query={"ver": versions}))

    make_join("error-make-join-unknown-room", f"!nowhere:{OURS}", MALLORY, ["12"])
    incompatible = make_join("error-make-join-incompatible", room, f"@erin:{PEER}", ["9"])
    assert incompatible["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION" and incompatible["room_version"], incompatible
    make_join("error-make-join-forbidden", room, STRANGER, ["12"])  # not a user of the asking server
    rec("error-make-leave-forbidden", s.request("GET", f"{F1}/make_leave/{q(room)}/{q(STRANGER)}"))
    rec("error-make-knock-incompatible", s.request("GET", f"{F1}/make_knock/{q(knock_room)}/{q(CAROL)}",
                                                   query={"ver": ["9"]}))
    rec("error-make-knock-forbidden", s.request("GET", f"{F1}/make_knock/{q(room)}/{q(f'@erin:{PEER}')}",
                                                query={"ver": ["12"]}))
    rec("error-send-knock-unknown-room", s.request("PUT", f"{F1}/send_knock/{q(f'!nowhere:{OURS}')}/{q(knock_id)}",
                                                   knock_pdu))
    _, event_id, pdu = s.make("join", room, f"@erin:{PEER}")
    rec("error-send-join-invalid", s.request("PUT", f"{F2}/send_join/{q(room)}/{q(event_id)}",
                                             {**pdu, "type": "m.room.message"}))
    rec("error-state-ids-not-in-room", s.request("GET", f"{F1}/state_ids/{q(knock_room)}",
                                                 query={"event_id": latest}))
    rec("error-state-ids-unknown-event", s.request("GET", f"{F1}/state_ids/{q(room)}",
                                                   query={"event_id": "$nosuchevent"}))
    rec("error-timestamp-no-event", s.request("GET", f"{F1}/timestamp_to_event/{q(room)}",
                                              query={"ts": str(2**53), "dir": "f"}))
    rec("error-invite-v2-unsupported-version", s.request(
        "PUT", f"{F2}/invite/{q(remote.room_id)}/{q(invite.event_id)}",
        {"room_version": "999", "event": dict(invite.pdu), "invite_room_state": []}))
    stranger = remote.add(CAROL, "m.room.member", {"membership": "invite"}, STRANGER)
    rec("error-invite-v2-not-our-user", s.request("PUT", f"{F2}/invite/{q(remote.room_id)}/{q(stranger.event_id)}", {
        "room_version": "12", "event": dict(stranger.pdu), "invite_room_state": []}))
    rec("error-query-profile-unknown", s.request("GET", f"{F1}/query/profile", query={"user_id": f"@nobody:{OURS}"}))
    rec("error-query-directory-unknown", s.request("GET", f"{F1}/query/directory",
                                                   query={"room_alias": f"#nowhere:{OURS}"}))
    rec("error-hierarchy-unknown", s.request("GET", f"{F1}/hierarchy/{q(f'!nowhere:{OURS}')}"))
    rec("error-openid-unknown-token", s.request("GET", f"{F1}/openid/userinfo", query={"access_token": "nope"},
                                                signed=False))
    rec("error-media-thumbnail-bad-size", s.request("GET", f"{F1}/media/thumbnail/{media_id}",
                                                    query={"width": "0", "height": "32"}))
    pending = fed.client.post("/_matrix/media/v1/create", headers=alice.headers)
    assert pending.status_code == 200, pending.text
    pending_id = pending.json()["content_uri"].rsplit("/", 1)[1]
    rec("error-media-not-yet-uploaded", s.request("GET", f"{F1}/media/download/{pending_id}",
                                                  query={"timeout_ms": "0"}))

    for edu_type in EDU_TYPES:
        wait_for_edus(peer, edu_type)
    rec.transactions = peer.transactions


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    network = PeerNetwork()
    peer = network.add(ForgedPeer(PEER))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "BCRYPT_ROUNDS", 4)
        config = load_config(data_dir=str(tmp_path_factory.mktemp("federation-openapi")), server_name=OURS)
        with TestClient(build_app(config)) as client:
            fed = FedApp(client, network)
            real = fed.env.FEDERATION
            fed.env.FEDERATION = client_for(fed.env, network)
            fed.call(real.close)
            recorder = Recorder()
            run_scenario(fed, peer, recorder)
            yield recorder


@pytest.fixture(scope="module")
def responses(scenario: Recorder) -> dict[str, httpx.Response]:
    return scenario.responses


# --- the tests -----------------------------------------------------------------------------


def test_every_case_names_an_operation_of_the_spec() -> None:
    for case in CASES:
        assert (case.method, case.path) in OPERATIONS, case
        validator_for(case)  # the status has a JSON schema
    for case in MULTIPART_CASES:
        _, response = spec_response(case)
        assert "multipart/mixed" in response["content"], case
    ids = [case.id for case in CASES + MULTIPART_CASES]
    assert len(set(ids)) == len(ids)


def _refs(node: Any, in_example: bool = False) -> Iterator[str]:
    """The ``$ref``s of a document, leaving out those inside examples (which the spec's
    tooling inlines, and which no schema follows)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and not in_example:
                yield value
            else:
                yield from _refs(value, in_example or key in ("example", "examples"))
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value, in_example)


def test_every_ref_of_the_mirror_resolves() -> None:
    """Each file's ``$ref``s resolve through the registry: the mirror holds every file the
    server-server schemas reach, at the same relative place as in the spec's tree."""
    count = 0
    for name, contents in SPEC_FILES.items():
        for ref in _refs(contents):
            REGISTRY.resolver(SPEC_BASE + name).lookup(ref)
            count += 1
    assert count > 90


def test_every_operation_we_serve_is_covered() -> None:
    """The server-server operations of the mirrored files that the scenario does not reach
    are exactly the ones we do not serve. (room_policy.yaml, third_party_invite.yaml: not
    mirrored, as we serve none of their operations.)"""
    covered = {(c.method, c.path) for c in CASES + MULTIPART_CASES}
    not_served = {
        ("get", f"{F1}/query/{{queryType}}"),  # the generic form of query/profile and query/directory
    }
    assert set(OPERATIONS) - covered == not_served


def _cause(error: ValidationError) -> ValidationError:
    """The error under an ``anyOf``/``oneOf`` failure that says what is wrong (for a v1
    ``[200, body]`` answer: the body's branch, not the integer's)."""
    cause = best_match([error])
    assert cause is not None
    return cause


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_response_matches_the_spec_schema(case: Case, responses: dict[str, httpx.Response]) -> None:
    assert case.id in responses, f"the scenario never made {case.id}"
    body = responses[case.id].json()
    errors = [_cause(e) for e in validator_for(case).iter_errors(body)]
    assert_valid_or_quirk(case.id, errors, SCHEMA_QUIRKS.get(case.id))


def _pdus(body: Any, location: tuple[str | int, ...]) -> list[dict[str, Any]]:
    for key in location:
        body = body[key]
    return body if isinstance(body, list) else [body]


def _room_version(pdu: dict[str, Any], room_versions: dict[str, str]) -> str:
    if pdu["type"] == "m.room.create" and "room_id" not in pdu:
        return str(pdu["content"]["room_version"])
    return room_versions[pdu["room_id"]]


def check_pdu(pdu: dict[str, Any], room_versions: dict[str, str]) -> None:
    """``pdu`` has the event format of its room version (``V12_CREATE_QUIRK`` aside)."""
    version = _room_version(pdu, room_versions)
    errors = [_cause(e) for e in pdu_validator(version).iter_errors(pdu)]
    described = [(pdu["type"], version, e.json_path, e.message) for e in errors]
    if version == "12" and pdu["type"] == "m.room.create":
        quirk = V12_CREATE_QUIRK
        assert len(errors) == 1, described
        assert errors[0].validator == quirk.keyword and re.search(quirk.message, errors[0].message), described
    else:
        assert not errors, described


@pytest.mark.parametrize("case_id", list(PDU_LOCATIONS))
def test_pdus_match_their_room_version_event_format(case_id: str, scenario: Recorder) -> None:
    body = scenario.responses[case_id].json()
    pdus = [pdu for location in PDU_LOCATIONS[case_id] for pdu in _pdus(body, location)]
    assert pdus, f"{case_id} carries no PDUs"
    for pdu in pdus:
        check_pdu(pdu, scenario.room_versions)


def test_our_transactions_match_the_request_schema(scenario: Recorder) -> None:
    """Not a response, but the other half of ``/send``: each transaction our server sent the
    peer fits the operation's request body, and its PDUs the event format of their room."""
    name, path = OPERATIONS[("put", f"{F1}/send/{{txnId}}")]
    tokens = ["paths", path, "put", "requestBody", "content", "application/json", "schema"]
    validator = Draft202012Validator({"$ref": SPEC_BASE + name + _pointer(tokens)}, registry=REGISTRY)
    assert scenario.transactions
    for txn in scenario.transactions:
        errors = [_cause(e) for e in validator.iter_errors(txn)]
        assert not errors, [(e.json_path, e.message) for e in errors]
        for pdu in txn["pdus"]:
            check_pdu(pdu, scenario.room_versions)


@pytest.mark.parametrize("edu_type", EDU_TYPES)
def test_our_edus_match_their_schema(edu_type: str, scenario: Recorder) -> None:
    uri = f"{SPEC_BASE}{SERVER_SERVER}definitions/event-schemas/{edu_type}.yaml"
    validator = Draft202012Validator({"$ref": uri}, registry=REGISTRY)
    edus = [e for txn in scenario.transactions for e in txn.get("edus", []) if e["edu_type"] == edu_type]
    assert edus, f"the scenario never sent a {edu_type} EDU"
    for edu in edus:
        errors = [_cause(e) for e in validator.iter_errors(edu)]
        assert not errors, [(e.json_path, e.message) for e in errors]


def _parts(response: httpx.Response) -> list[Any]:
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart(), response.headers["content-type"]
    return list(message.iter_parts())


@pytest.mark.parametrize("case", MULTIPART_CASES, ids=[case.id for case in MULTIPART_CASES])
def test_multipart_response_matches_the_spec(case: Case, responses: dict[str, httpx.Response]) -> None:
    """content_repository.yaml: ``multipart/mixed`` with a ``boundary``, exactly two parts: a
    JSON metadata object (today always empty), then the media with its ``Content-Type`` (and
    ``Content-Disposition``) or a ``Location`` to fetch it from."""
    response = responses[case.id]
    _, spec = spec_response(case)
    content_type = response.headers["content-type"]
    assert content_type.split(";")[0].strip() in spec["content"], content_type
    assert re.search(r';\s*boundary="?[^";]+', content_type), content_type
    metadata, media = _parts(response)
    assert metadata.get_content_type() == "application/json"
    assert json.loads(metadata.get_payload(decode=True)) == {}
    if media["Location"] is None:
        assert media["Content-Type"] and media["Content-Disposition"], dict(media.items())
        payload = media.get_payload(decode=True)
        if case.path.startswith(f"{F1}/media/download/"):
            assert payload == png((30, 120, 200))
        else:  # "The actual thumbnail may be larger than the size specified"
            assert media.get_content_type().startswith("image/")
            assert Image.open(io.BytesIO(payload)).size <= (64, 48)
    assert response.headers.get("content-disposition") is None


@pytest.mark.parametrize(
    ("case_id", "body", "error_path"),
    [
        ("version", {"server": {"name": 7}}, "$.server.name"),
        ("send-join-v2", {"state": [], "auth_chain": {}}, "$.auth_chain"),
        ("send-join-v1", [200, {"state": []}], "$[1]"),
        ("invite-v1", [200, {}], "$[1]"),
        ("state-ids", {"pdu_ids": ["$a"]}, "$"),
        ("user-keys-claim", {"one_time_keys": {"@a:hs.test": []}}, "$.one_time_keys['@a:hs.test']"),
        ("hierarchy", {"room": {"room_id": "!r:hs.test"}, "children": []}, "$.room"),
        ("error-make-join-unknown-room", {"error": "no errcode"}, "$"),
    ],
)
def test_validation_is_not_vacuous(case_id: str, body: Any, error_path: str) -> None:
    """Wrong bodies are refused where they are wrong: the ``$ref``s between the files resolve
    to the real schemas, nested ones included."""
    case = next(c for c in CASES if c.id == case_id)
    errors = list(validator_for(case).iter_errors(body))
    assert error_path in {e.json_path for e in errors}, [(e.json_path, e.message) for e in errors]
