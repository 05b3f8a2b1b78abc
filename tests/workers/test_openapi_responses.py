"""Our client-server responses against the spec's OpenAPI response schemas.

One realistic scenario is driven through the real app once per module: two users; a public
room with name, topic, avatar and alias; messages, an edit, a reaction, a thread reply, a
redaction, receipts and typing; account data and tags; device, one-time and cross-signing
keys; a key backup; a pusher; a filter; media; a knock, an invite and a room upgrade. Each row
of ``CASES`` names one response the scenario got and the spec operation it answers; its JSON
body is validated against the schema the spec gives for that operation and status in
``tests/spec_data/client-server.openapi.json`` (matrix-spec d0ba2aae bundled into one OpenAPI
3.1 document).

Schemas are checked with JSON Schema draft 2020-12 through a ``referencing`` registry that
holds the whole document, so a ``$ref`` inside it resolves. ``format`` is left unchecked:
jsonschema treats it as an annotation unless given a format checker, and the spec's
``mx-user-id``/``mx-room-id``/``int64`` formats are descriptive.

Where the schema rather than our server is at fault, the exception is in ``SCHEMA_QUIRKS`` with
its reason; nothing else is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from signedjson.sign import sign_json
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.spec_conformance import Case, Quirk, Recorder, assert_valid_or_quirk, cases_from_rows, png, pointer_token
from tests.workers.e2ee.harness import PASSWORD, SERVER, Device, Harness
from tests.workers.e2ee.test_cross_signing import CrossSigning
from tests.workers.push.gateway_fake import GATEWAY_URL, FakeGateway
from workers.client import passwords

SPEC_FILE = Path(__file__).parents[1] / "spec_data" / "client-server.openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text())
SPEC_URI = "urn:matrix-spec:client-server-api"
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)

V1 = "/_matrix/client/v1"
MEDIA_V3 = "/_matrix/media/v3"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


C3 = "/_matrix/client/v3"
# Successful responses, in the order the scenario gets them, then error bodies.
CASES: list[Case] = cases_from_rows(200, f"""
versions                     GET  /_matrix/client/versions
well-known-client            GET  /.well-known/matrix/client
well-known-support           GET  /.well-known/matrix/support
login-flows                  GET  {C3}/login
login-password               POST {C3}/login
register                     POST {C3}/register
register-available           GET  {C3}/register/available
whoami                       GET  {C3}/account/whoami
threepids                    GET  {C3}/account/3pid
capabilities                 GET  {C3}/capabilities
media-config-v1              GET  {V1}/media/config
media-config-v3              GET  /_matrix/media/v3/config
media-upload                 POST /_matrix/media/v3/upload
media-create                 POST /_matrix/media/v1/create
media-upload-put             PUT  /_matrix/media/v3/upload/{{serverName}}/{{mediaId}}
profile-put-displayname      PUT  {C3}/profile/{{userId}}/{{keyName}}
profile                      GET  {C3}/profile/{{userId}}
profile-displayname          GET  {C3}/profile/{{userId}}/{{keyName}}
create-room                  POST {C3}/createRoom
state-put-avatar             PUT  {C3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}
join-by-alias                POST {C3}/join/{{roomIdOrAlias}}
send-message                 PUT  {C3}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}
redact                       PUT  {C3}/rooms/{{roomId}}/redact/{{eventId}}/{{txnId}}
receipt                      POST {C3}/rooms/{{roomId}}/receipt/{{receiptType}}/{{eventId}}
read-markers                 POST {C3}/rooms/{{roomId}}/read_markers
typing                       PUT  {C3}/rooms/{{roomId}}/typing/{{userId}}
presence-put                 PUT  {C3}/presence/{{userId}}/status
presence                     GET  {C3}/presence/{{userId}}/status
account-data-put             PUT  {C3}/user/{{userId}}/account_data/{{type}}
account-data                 GET  {C3}/user/{{userId}}/account_data/{{type}}
room-account-data-put        PUT  {C3}/user/{{userId}}/rooms/{{roomId}}/account_data/{{type}}
room-account-data            GET  {C3}/user/{{userId}}/rooms/{{roomId}}/account_data/{{type}}
tag-put                      PUT  {C3}/user/{{userId}}/rooms/{{roomId}}/tags/{{tag}}
tags                         GET  {C3}/user/{{userId}}/rooms/{{roomId}}/tags
keys-upload                  POST {C3}/keys/upload
keys-query                   POST {C3}/keys/query
keys-claim                   POST {C3}/keys/claim
keys-changes                 GET  {C3}/keys/changes
device-signing-upload        POST {C3}/keys/device_signing/upload
signatures-upload            POST {C3}/keys/signatures/upload
send-to-device               PUT  {C3}/sendToDevice/{{eventType}}/{{txnId}}
backup-version-create        POST {C3}/room_keys/version
backup-version-current       GET  {C3}/room_keys/version
backup-version               GET  {C3}/room_keys/version/{{version}}
backup-version-put           PUT  {C3}/room_keys/version/{{version}}
backup-keys-put              PUT  {C3}/room_keys/keys
backup-keys                  GET  {C3}/room_keys/keys
backup-room-keys-put         PUT  {C3}/room_keys/keys/{{roomId}}
backup-room-keys             GET  {C3}/room_keys/keys/{{roomId}}
backup-session-put           PUT  {C3}/room_keys/keys/{{roomId}}/{{sessionId}}
backup-session               GET  {C3}/room_keys/keys/{{roomId}}/{{sessionId}}
pushers-set                  POST {C3}/pushers/set
pushers                      GET  {C3}/pushers
pushrules                    GET  {C3}/pushrules/
pushrules-global             GET  {C3}/pushrules/global/
pushrule-put                 PUT  {C3}/pushrules/global/{{kind}}/{{ruleId}}
pushrule                     GET  {C3}/pushrules/global/{{kind}}/{{ruleId}}
pushrule-enabled             GET  {C3}/pushrules/global/{{kind}}/{{ruleId}}/enabled
pushrule-actions             GET  {C3}/pushrules/global/{{kind}}/{{ruleId}}/actions
notifications                GET  {C3}/notifications
filter-create                POST {C3}/user/{{userId}}/filter
filter                       GET  {C3}/user/{{userId}}/filter/{{filterId}}
sync-initial                 GET  {C3}/sync
sync-filter-id               GET  {C3}/sync
sync-filter-inline           GET  {C3}/sync
sync-incremental             GET  {C3}/sync
sync-full-state              GET  {C3}/sync
sync-event-fields            GET  {C3}/sync
sync-invited                 GET  {C3}/sync
sync-left                    GET  {C3}/sync
directory-alias              GET  {C3}/directory/room/{{roomAlias}}
directory-alias-put          PUT  {C3}/directory/room/{{roomAlias}}
room-aliases                 GET  {C3}/rooms/{{roomId}}/aliases
directory-visibility         GET  {C3}/directory/list/room/{{roomId}}
directory-visibility-put     PUT  {C3}/directory/list/room/{{roomId}}
public-rooms                 GET  {C3}/publicRooms
public-rooms-search          POST {C3}/publicRooms
joined-rooms                 GET  {C3}/joined_rooms
messages-backward            GET  {C3}/rooms/{{roomId}}/messages
messages-forward             GET  {C3}/rooms/{{roomId}}/messages
context                      GET  {C3}/rooms/{{roomId}}/context/{{eventId}}
event                        GET  {C3}/rooms/{{roomId}}/event/{{eventId}}
event-redacted               GET  {C3}/rooms/{{roomId}}/event/{{eventId}}
state                        GET  {C3}/rooms/{{roomId}}/state
state-event                  GET  {C3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}
members                      GET  {C3}/rooms/{{roomId}}/members
joined-members               GET  {C3}/rooms/{{roomId}}/joined_members
relations                    GET  {V1}/rooms/{{roomId}}/relations/{{eventId}}
relations-rel-type           GET  {V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}
relations-event-type         GET  {V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}/{{eventType}}
threads                      GET  {V1}/rooms/{{roomId}}/threads
hierarchy                    GET  {V1}/rooms/{{roomId}}/hierarchy
room-summary                 GET  {V1}/room_summary/{{roomIdOrAlias}}
mutual-rooms                 GET  {V1}/mutual_rooms
timestamp-to-event           GET  {V1}/rooms/{{roomId}}/timestamp_to_event
search                       POST {C3}/search
user-directory-search        POST {C3}/user_directory/search
devices                      GET  {C3}/devices
device                       GET  {C3}/devices/{{deviceId}}
device-put                   PUT  {C3}/devices/{{deviceId}}
openid-token                 POST {C3}/user/{{userId}}/openid/request_token
report-event                 POST {C3}/rooms/{{roomId}}/report/{{eventId}}
thirdparty-protocols         GET  {C3}/thirdparty/protocols
turn-server                  GET  {C3}/voip/turnServer
invite                       POST {C3}/rooms/{{roomId}}/invite
join-by-id                   POST {C3}/rooms/{{roomId}}/join
knock                        POST {C3}/knock/{{roomIdOrAlias}}
kick                         POST {C3}/rooms/{{roomId}}/kick
ban                          POST {C3}/rooms/{{roomId}}/ban
unban                        POST {C3}/rooms/{{roomId}}/unban
leave                        POST {C3}/rooms/{{roomId}}/leave
forget                       POST {C3}/rooms/{{roomId}}/forget
upgrade                      POST {C3}/rooms/{{roomId}}/upgrade
sync-knocked                 GET  {C3}/sync
keys-upload-otk-only         POST {C3}/keys/upload
pushrule-enabled-put         PUT  {C3}/pushrules/global/{{kind}}/{{ruleId}}/enabled
pushrule-actions-put         PUT  {C3}/pushrules/global/{{kind}}/{{ruleId}}/actions
pushrule-delete              DELETE {C3}/pushrules/global/{{kind}}/{{ruleId}}
tag-delete                   DELETE {C3}/user/{{userId}}/rooms/{{roomId}}/tags/{{tag}}
directory-alias-delete       DELETE {C3}/directory/room/{{roomAlias}}
profile-delete-avatar        DELETE {C3}/profile/{{userId}}/{{keyName}}
backup-session-delete        DELETE {C3}/room_keys/keys/{{roomId}}/{{sessionId}}
backup-room-keys-delete      DELETE {C3}/room_keys/keys/{{roomId}}
backup-keys-delete           DELETE {C3}/room_keys/keys
backup-version-delete        DELETE {C3}/room_keys/version/{{version}}
device-delete                DELETE {C3}/devices/{{deviceId}}
delete-devices               POST {C3}/delete_devices
password-change              POST {C3}/account/password
deactivate                   POST {C3}/account/deactivate
login-refreshable            POST {C3}/login
refresh                      POST {C3}/refresh
thirdparty-location          GET  {C3}/thirdparty/location
thirdparty-user              GET  {C3}/thirdparty/user
whois                        GET  {C3}/admin/whois/{{userId}}
report-room                  POST {C3}/rooms/{{roomId}}/report
report-user                  POST {C3}/users/{{userId}}/report
space-hierarchy              GET  {V1}/rooms/{{roomId}}/hierarchy
room-summary-joined          GET  {V1}/room_summary/{{roomIdOrAlias}}
messages-lazy-members        GET  {C3}/rooms/{{roomId}}/messages
context-lazy-members         GET  {C3}/rooms/{{roomId}}/context/{{eventId}}
public-rooms-paged           GET  {C3}/publicRooms
relations-paged              GET  {V1}/rooms/{{roomId}}/relations/{{eventId}}
notifications-paged          GET  {C3}/notifications
pushrule-default             GET  {C3}/pushrules/global/{{kind}}/{{ruleId}}
keys-claim-fallback          POST {C3}/keys/claim
keys-query-own               POST {C3}/keys/query
sync-alice                   GET  {C3}/sync
devices-after-spare          GET  {C3}/devices
state-event-format-event     GET  {C3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}
sync-thread-notifications    GET  {C3}/sync
sync-dm-heroes               GET  {C3}/sync
register-inhibit-login       POST {C3}/register
profile-unset-avatar         GET  {C3}/profile/{{userId}}
presence-never-set           GET  {C3}/presence/{{userId}}/status
keys-query-unknown-user      POST {C3}/keys/query
keys-changes-changed         GET  {C3}/keys/changes
logout                       POST {C3}/logout
logout-all                   POST {C3}/logout/all
""") + [
    Case("register-uia", "post", f"{C3}/register", 401),
    Case("error-whoami-no-token", "get", f"{C3}/account/whoami", 401),
    Case("error-register-taken", "get", f"{C3}/register/available", 400),
    Case("error-unknown-alias", "get", f"{C3}/directory/room/{{roomAlias}}", 404),
    Case("error-unknown-event", "get", f"{C3}/rooms/{{roomId}}/event/{{eventId}}", 404),
    Case("error-join-invite-only", "post", f"{C3}/join/{{roomIdOrAlias}}", 403),
    Case("error-unknown-profile", "get", f"{C3}/profile/{{userId}}", 404),
    Case("error-room-keys-no-backup", "get", f"{C3}/room_keys/version", 404),
    Case("device-delete-uia", "delete", f"{C3}/devices/{{deviceId}}", 401),
    Case("delete-devices-uia", "post", f"{C3}/delete_devices", 401),
    Case("error-state-put-forbidden", "put", f"{C3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}", 403),
    Case("error-refresh-unknown", "post", f"{C3}/refresh", 401),
]


# Binary responses (media): no JSON body; their required headers are checked instead.
BINARY_CASES: list[Case] = cases_from_rows(200, f"""
media-download               GET  {V1}/media/download/{{serverName}}/{{mediaId}}
media-download-filename      GET  {V1}/media/download/{{serverName}}/{{mediaId}}/{{fileName}}
media-thumbnail              GET  {V1}/media/thumbnail/{{serverName}}/{{mediaId}}
""")

# Responses the spec's schema refuses for a reason that is the schema's, not ours.
SCHEMA_QUIRKS: dict[str, Quirk] = {
    "sync-event-fields": Quirk(
        "required", r"^'origin_server_ts' is a required property$",
        "the filter's event_fields asks the server to leave out every field not listed (spec: "
        "Filtering, event_fields), yet the schema of a timeline/state event requires "
        "origin_server_ts regardless of the filter",
    ),
    "state-event-format-event": Quirk(
        "oneOf", r"is valid under each of",
        "the schema is oneOf [any object (the content), StateEvent]: a whole event (format=event) is also "
        "'any object', so it matches both branches and oneOf can never pass; anyOf was meant",
    ),
}


# --- schema lookup -------------------------------------------------------------------------


def validator_for(case: Case) -> Draft202012Validator:
    """A validator for the JSON body of ``case``'s response, through a ``$ref`` into the spec."""
    response = SPEC["paths"][case.path][case.method]["responses"][str(case.status)]
    assert "application/json" in response["content"], f"{case.id}: the spec gives no JSON body"
    tokens = ["paths", case.path, case.method, "responses", str(case.status), "content",
              "application/json", "schema"]
    ref = SPEC_URI + "#/" + "/".join(pointer_token(t) for t in tokens)
    return Draft202012Validator({"$ref": ref}, registry=REGISTRY)


# --- the scenario ----------------------------------------------------------------------------


def _alias(localpart: str) -> str:
    return quote(f"#{localpart}:{SERVER}", safe="")


def run_scenario(hs: Harness, rec: Recorder) -> None:
    client = hs.client
    alice, bob, carol = hs.device("alice", "ALICEDEV"), hs.device("bob", "BOBDEV"), hs.device("carol", "CAROLDEV")
    gateway = FakeGateway()
    hs.env.push_gateway = gateway.client()

    def req(who: Device | None, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        headers = who.headers if who is not None else {}
        return client.request(method, path, headers=headers, json=body, params=params or None)

    def txn() -> str:
        hs.txn += 1
        return f"t{hs.txn}"

    # --- discovery, login, registration -----------------------------------------------------
    rec("versions", req(None, "GET", "/_matrix/client/versions"))
    rec("well-known-client", req(None, "GET", "/.well-known/matrix/client"))
    rec("well-known-support", req(None, "GET", "/.well-known/matrix/support"))
    rec("login-flows", req(None, "GET", f"{C3}/login"))
    login = rec("login-password", req(None, "POST", f"{C3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": PASSWORD, "initial_device_display_name": "Laptop",
    }))
    laptop = Device(hs, alice.user_id, login["device_id"], login["access_token"], None)
    first = rec("register-uia", req(None, "POST", f"{C3}/register", {"username": "dave", "password": PASSWORD}))
    rec("register", req(None, "POST", f"{C3}/register", {
        "username": "dave", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": first["session"]},
    }))
    rec("register-available", req(None, "GET", f"{C3}/register/available", username="erin"))
    rec("error-register-taken", req(None, "GET", f"{C3}/register/available", username="dave"))
    rec("whoami", req(alice, "GET", f"{C3}/account/whoami"))
    rec("error-whoami-no-token", req(None, "GET", f"{C3}/account/whoami"))
    rec("threepids", req(alice, "GET", f"{C3}/account/3pid"))
    rec("capabilities", req(alice, "GET", f"{C3}/capabilities"))

    # --- media ----------------------------------------------------------------------------
    rec("media-config-v1", req(alice, "GET", f"{V1}/media/config"))
    rec("media-config-v3", req(alice, "GET", f"{MEDIA_V3}/config"))
    image = png((200, 30, 30))
    uploaded = rec("media-upload", client.post(
        f"{MEDIA_V3}/upload", content=image, params={"filename": "avatar.png"},
        headers={**alice.headers, "Content-Type": "image/png"},
    ))
    avatar_uri = uploaded["content_uri"]
    created = rec("media-create", req(alice, "POST", "/_matrix/media/v1/create"))
    media_id = created["content_uri"].rsplit("/", 1)[1]
    rec("media-upload-put", client.put(
        f"{MEDIA_V3}/upload/{SERVER}/{media_id}", content=b"later",
        headers={**alice.headers, "Content-Type": "text/plain"},
    ))
    mxc = avatar_uri[len("mxc://"):]
    rec("media-download", req(alice, "GET", f"{V1}/media/download/{mxc}"))
    rec("media-download-filename", req(alice, "GET", f"{V1}/media/download/{mxc}/town.png"))
    rec("media-thumbnail", req(alice, "GET", f"{V1}/media/thumbnail/{mxc}?width=32&height=32&method=scale"))
    assert rec.responses["media-download"].content == image

    # --- profile ----------------------------------------------------------------------------
    rec("profile-put-displayname", req(alice, "PUT", f"{C3}/profile/{alice.user_id}/displayname",
                                       {"displayname": "Alice"}))
    assert req(alice, "PUT", f"{C3}/profile/{alice.user_id}/avatar_url", {"avatar_url": avatar_uri}).status_code == 200
    rec("profile", req(bob, "GET", f"{C3}/profile/{alice.user_id}"))
    rec("profile-displayname", req(bob, "GET", f"{C3}/profile/{alice.user_id}/displayname"))
    rec("error-unknown-profile", req(bob, "GET", f"{C3}/profile/@nobody:{SERVER}"))

    # --- keys -------------------------------------------------------------------------------
    rec("keys-upload", req(alice, "POST", f"{C3}/keys/upload", {
        "device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 3),
        "fallback_keys": {"signed_curve25519:FB1": {"key": "fb", "fallback": True}},
    }))
    bob.upload(device_keys=bob.device_keys(), one_time_keys=bob.one_time_keys(0, 2))
    cross = CrossSigning(alice.user_id)
    rec("device-signing-upload", req(alice, "POST", f"{C3}/keys/device_signing/upload", cross.upload_body()))
    signed_device = cross.sign(alice.device_keys(), "self_signing")
    rec("signatures-upload", req(alice, "POST", f"{C3}/keys/signatures/upload",
                                 {alice.user_id: {alice.device_id: signed_device}}))

    # --- the main room ------------------------------------------------------------------------
    room = rec("create-room", req(alice, "POST", f"{C3}/createRoom", {
        "preset": "public_chat", "visibility": "public", "name": "Town square", "topic": "All things town",
        "room_alias_name": "town", "room_version": "10",
    }))["room_id"]
    rec("state-put-avatar", req(alice, "PUT", f"{C3}/rooms/{room}/state/m.room.avatar/",
                                {"url": avatar_uri, "info": {"mimetype": "image/png", "w": 64, "h": 48}}))
    rec("join-by-alias", req(bob, "POST", f"{C3}/join/{_alias('town')}", {}))
    initial = rec("sync-initial", req(bob, "GET", f"{C3}/sync", timeout=0))

    def message(who: Device, body: str, relates_to: dict[str, Any] | None = None,
                case_id: str | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if relates_to is not None:
            content["m.relates_to"] = relates_to
        response = req(who, "PUT", f"{C3}/rooms/{room}/send/m.room.message/{txn()}", content)
        if case_id is not None:
            return str(rec(case_id, response)["event_id"])
        assert response.status_code == 200, response.text
        return str(response.json()["event_id"])

    hello = message(alice, "hello town", case_id="send-message")
    reply = message(bob, "hi alice")
    message(alice, "* hello town!", {"rel_type": "m.replace", "event_id": hello})
    assert req(bob, "PUT", f"{C3}/rooms/{room}/send/m.reaction/{txn()}", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": hello, "key": "👍"},
    }).status_code == 200
    thread_reply = message(bob, "in a thread", {"rel_type": "m.thread", "event_id": hello})
    oops = message(bob, "oops, wrong room")
    rec("redact", req(bob, "PUT", f"{C3}/rooms/{room}/redact/{oops}/{txn()}", {"reason": "wrong room"}))
    rec("receipt", req(alice, "POST", f"{C3}/rooms/{room}/receipt/m.read/{reply}", {}))
    rec("read-markers", req(bob, "POST", f"{C3}/rooms/{room}/read_markers",
                            {"m.fully_read": hello, "m.read": hello}))
    rec("typing", req(alice, "PUT", f"{C3}/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}))
    rec("presence-put", req(alice, "PUT", f"{C3}/presence/{alice.user_id}/status",
                            {"presence": "online", "status_msg": "around"}))
    rec("presence", req(bob, "GET", f"{C3}/presence/{alice.user_id}/status"))

    # --- account data and tags ----------------------------------------------------------------
    rec("account-data-put", req(bob, "PUT", f"{C3}/user/{bob.user_id}/account_data/org.example.settings",
                                {"theme": "dark"}))
    rec("account-data", req(bob, "GET", f"{C3}/user/{bob.user_id}/account_data/org.example.settings"))
    rec("room-account-data-put", req(bob, "PUT",
                                     f"{C3}/user/{bob.user_id}/rooms/{room}/account_data/org.example.draft",
                                     {"text": "half a thought"}))
    rec("room-account-data", req(bob, "GET",
                                 f"{C3}/user/{bob.user_id}/rooms/{room}/account_data/org.example.draft"))
    rec("tag-put", req(bob, "PUT", f"{C3}/user/{bob.user_id}/rooms/{room}/tags/m.favourite", {"order": 0.25}))
    rec("tags", req(bob, "GET", f"{C3}/user/{bob.user_id}/rooms/{room}/tags"))

    # --- more keys --------------------------------------------------------------------------
    rec("keys-query", req(bob, "POST", f"{C3}/keys/query", {"device_keys": {alice.user_id: []}}))
    rec("keys-claim", req(bob, "POST", f"{C3}/keys/claim",
                          {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}))
    rec("keys-changes", req(bob, "GET", f"{C3}/keys/changes",
                            **{"from": initial["next_batch"], "to": req(bob, "GET", f"{C3}/sync", timeout=0,
                                                                        since=initial["next_batch"]).json()["next_batch"]}))
    rec("send-to-device", req(alice, "PUT", f"{C3}/sendToDevice/m.room_key_request/{txn()}", {
        "messages": {bob.user_id: {bob.device_id: {"action": "request_cancellation", "request_id": "r1",
                                                   "requesting_device_id": alice.device_id}}},
    }))

    version = rec("backup-version-create", req(alice, "POST", f"{C3}/room_keys/version", {
        "algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "abcdefg", "signatures": {}},
    }))["version"]
    rec("backup-version-current", req(alice, "GET", f"{C3}/room_keys/version"))
    rec("backup-version", req(alice, "GET", f"{C3}/room_keys/version/{version}"))
    rec("backup-version-put", req(alice, "PUT", f"{C3}/room_keys/version/{version}", {
        "algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "abcdefg", "signatures": {}}, "version": version,
    }))
    rec("error-room-keys-no-backup", req(bob, "GET", f"{C3}/room_keys/version"))

    def session(index: int) -> dict[str, Any]:
        return {"first_message_index": index, "forwarded_count": 0, "is_verified": True,
                "session_data": {"ephemeral": "e", "ciphertext": "c", "mac": "m"}}

    rec("backup-keys-put", req(alice, "PUT", f"{C3}/room_keys/keys?version={version}",
                               {"rooms": {room: {"sessions": {"S1": session(0)}}}}))
    rec("backup-room-keys-put", req(alice, "PUT", f"{C3}/room_keys/keys/{room}?version={version}",
                                    {"sessions": {"S2": session(1)}}))
    rec("backup-session-put", req(alice, "PUT", f"{C3}/room_keys/keys/{room}/S3?version={version}", session(2)))
    rec("backup-keys", req(alice, "GET", f"{C3}/room_keys/keys", version=version))
    rec("backup-room-keys", req(alice, "GET", f"{C3}/room_keys/keys/{room}", version=version))
    rec("backup-session", req(alice, "GET", f"{C3}/room_keys/keys/{room}/S1", version=version))

    # --- push -------------------------------------------------------------------------------
    rec("pushers-set", req(alice, "POST", f"{C3}/pushers/set", {
        "kind": "http", "app_id": "com.example.app", "pushkey": "PUSHKEY", "app_display_name": "Example",
        "device_display_name": "Phone", "lang": "en", "data": {"url": GATEWAY_URL, "format": "event_id_only"},
    }))
    rec("pushers", req(alice, "GET", f"{C3}/pushers"))
    rec("pushrules", req(alice, "GET", f"{C3}/pushrules/"))
    rec("pushrules-global", req(alice, "GET", f"{C3}/pushrules/global/"))
    rec("pushrule-put", req(alice, "PUT", f"{C3}/pushrules/global/content/cakes",
                            {"pattern": "cake*", "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}))
    rec("pushrule", req(alice, "GET", f"{C3}/pushrules/global/content/cakes"))
    rec("pushrule-enabled", req(alice, "GET", f"{C3}/pushrules/global/override/.m.rule.master/enabled"))
    rec("pushrule-actions", req(alice, "GET", f"{C3}/pushrules/global/underride/.m.rule.message/actions"))
    message(bob, "alice: cake for everyone")
    rec("notifications", req(alice, "GET", f"{C3}/notifications"))

    # --- filters and syncs ------------------------------------------------------------------
    filter_id = rec("filter-create", req(bob, "POST", f"{C3}/user/{bob.user_id}/filter", {
        "room": {"timeline": {"limit": 3, "types": ["m.room.message"]}, "state": {"lazy_load_members": True}},
        "presence": {"not_types": ["*"]},
    }))["filter_id"]
    rec("filter", req(bob, "GET", f"{C3}/user/{bob.user_id}/filter/{filter_id}"))
    rec("sync-filter-id", req(bob, "GET", f"{C3}/sync", timeout=0, filter=filter_id))
    rec("sync-filter-inline", req(bob, "GET", f"{C3}/sync", timeout=0, filter=json.dumps(
        {"room": {"timeline": {"limit": 2}, "rooms": [room]}, "account_data": {"types": ["m.tag"]}})))
    rec("sync-event-fields", req(bob, "GET", f"{C3}/sync", timeout=0, filter=json.dumps(
        {"event_fields": ["type", "state_key", "content", "sender", "event_id"], "room": {"timeline": {"limit": 2}}})))
    incremental = rec("sync-incremental", req(bob, "GET", f"{C3}/sync", timeout=0, since=initial["next_batch"]))
    joined = incremental["rooms"]["join"][room]  # every section the schema is to see is there
    assert {e["type"] for e in joined["ephemeral"]["events"]} == {"m.receipt", "m.typing"}
    assert {e["type"] for e in joined["account_data"]["events"]} >= {"m.tag", "m.fully_read"}
    assert incremental["to_device"]["events"] and incremental["presence"]["events"]
    assert incremental["account_data"]["events"] and joined["timeline"]["events"]
    rec("sync-full-state", req(bob, "GET", f"{C3}/sync", timeout=0, since=initial["next_batch"], full_state="true"))

    # --- directory --------------------------------------------------------------------------
    rec("directory-alias", req(bob, "GET", f"{C3}/directory/room/{_alias('town')}"))
    rec("error-unknown-alias", req(bob, "GET", f"{C3}/directory/room/{_alias('nowhere')}"))
    rec("directory-alias-put", req(alice, "PUT", f"{C3}/directory/room/{_alias('square')}", {"room_id": room}))
    rec("room-aliases", req(alice, "GET", f"{C3}/rooms/{room}/aliases"))
    rec("directory-visibility", req(bob, "GET", f"{C3}/directory/list/room/{room}"))
    rec("directory-visibility-put", req(alice, "PUT", f"{C3}/directory/list/room/{room}", {"visibility": "public"}))
    rec("public-rooms", req(bob, "GET", f"{C3}/publicRooms", limit=10))
    rec("public-rooms-search", req(bob, "POST", f"{C3}/publicRooms", {"limit": 10, "filter": {"generic_search_term": "town"}}))
    rec("joined-rooms", req(bob, "GET", f"{C3}/joined_rooms"))

    # --- room reads -------------------------------------------------------------------------
    rec("messages-backward", req(bob, "GET", f"{C3}/rooms/{room}/messages", dir="b", limit=20))
    rec("messages-forward", req(bob, "GET", f"{C3}/rooms/{room}/messages", dir="f", limit=5))
    rec("context", req(bob, "GET", f"{C3}/rooms/{room}/context/{reply}", limit=4))
    rec("event", req(bob, "GET", f"{C3}/rooms/{room}/event/{hello}"))
    rec("event-redacted", req(bob, "GET", f"{C3}/rooms/{room}/event/{oops}"))
    rec("error-unknown-event", req(bob, "GET", f"{C3}/rooms/{room}/event/$nothing-here"))
    rec("state", req(bob, "GET", f"{C3}/rooms/{room}/state"))
    rec("state-event", req(bob, "GET", f"{C3}/rooms/{room}/state/m.room.name/"))
    rec("members", req(bob, "GET", f"{C3}/rooms/{room}/members"))
    rec("joined-members", req(bob, "GET", f"{C3}/rooms/{room}/joined_members"))
    rec("relations", req(bob, "GET", f"{V1}/rooms/{room}/relations/{hello}"))
    in_thread = rec("relations-rel-type", req(bob, "GET", f"{V1}/rooms/{room}/relations/{hello}/m.thread"))
    assert [e["event_id"] for e in in_thread["chunk"]] == [thread_reply]
    rec("relations-event-type", req(bob, "GET", f"{V1}/rooms/{room}/relations/{hello}/m.annotation/m.reaction"))
    rec("threads", req(bob, "GET", f"{V1}/rooms/{room}/threads"))
    rec("hierarchy", req(bob, "GET", f"{V1}/rooms/{room}/hierarchy"))
    rec("room-summary", req(carol, "GET", f"{V1}/room_summary/{_alias('town')}"))
    rec("mutual-rooms", req(alice, "GET", f"{V1}/mutual_rooms", user_id=bob.user_id))
    rec("timestamp-to-event", req(bob, "GET", f"{V1}/rooms/{room}/timestamp_to_event", ts=1, dir="f"))
    rec("search", req(bob, "POST", f"{C3}/search", {
        "search_categories": {"room_events": {"search_term": "town", "order_by": "recent",
                                              "event_context": {"before_limit": 1, "after_limit": 1},
                                              "include_state": True, "groupings": {"group_by": [{"key": "room_id"}]}}},
    }))
    rec("user-directory-search", req(bob, "POST", f"{C3}/user_directory/search", {"search_term": "ali", "limit": 5}))

    # --- devices and misc -------------------------------------------------------------------
    rec("devices", req(alice, "GET", f"{C3}/devices"))
    rec("device", req(alice, "GET", f"{C3}/devices/{alice.device_id}"))
    rec("device-put", req(alice, "PUT", f"{C3}/devices/{alice.device_id}", {"display_name": "Desk"}))
    rec("openid-token", req(alice, "POST", f"{C3}/user/{alice.user_id}/openid/request_token", {}))
    rec("report-event", req(bob, "POST", f"{C3}/rooms/{room}/report/{hello}", {"reason": "test"}))
    rec("thirdparty-protocols", req(alice, "GET", f"{C3}/thirdparty/protocols"))
    rec("turn-server", req(alice, "GET", f"{C3}/voip/turnServer"))

    # --- membership: invite, knock, kick, ban, leave, forget ---------------------------------
    private = alice.create_room(preset="private_chat", name="Back room")
    rec("error-join-invite-only", req(carol, "POST", f"{C3}/join/{private}", {}))
    before_invite = req(carol, "GET", f"{C3}/sync", timeout=0).json()["next_batch"]
    rec("invite", req(alice, "POST", f"{C3}/rooms/{private}/invite", {"user_id": carol.user_id, "reason": "welcome"}))
    assert private in rec("sync-invited", req(carol, "GET", f"{C3}/sync", timeout=0, since=before_invite))["rooms"]["invite"]
    rec("join-by-id", req(carol, "POST", f"{C3}/rooms/{private}/join", {}))
    message(alice, "the back room is open")

    knock_room = alice.create_room(preset="private_chat", room_version="10", name="Knock first",
                                   initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    rec("knock", req(carol, "POST", f"{C3}/knock/{knock_room}", {"reason": "let me in"}))
    rec("kick", req(alice, "POST", f"{C3}/rooms/{private}/kick", {"user_id": carol.user_id, "reason": "bye"}))
    rec("ban", req(alice, "POST", f"{C3}/rooms/{room}/ban", {"user_id": carol.user_id, "reason": "spam"}))
    rec("unban", req(alice, "POST", f"{C3}/rooms/{room}/unban", {"user_id": carol.user_id}))
    before_leave = req(bob, "GET", f"{C3}/sync", timeout=0).json()["next_batch"]
    farewell = bob.create_room(preset="public_chat", name="Short-lived")
    bob.send(farewell, "nobody here")
    rec("leave", req(bob, "POST", f"{C3}/rooms/{farewell}/leave", {}))
    assert farewell in rec("sync-left", req(bob, "GET", f"{C3}/sync", timeout=0, since=before_leave))["rooms"]["leave"]
    rec("forget", req(bob, "POST", f"{C3}/rooms/{farewell}/forget", {}))

    # --- a space, paging, lazy loading, fallback keys -----------------------------------------
    space = alice.create_room(preset="public_chat", visibility="public", name="Town space",
                              creation_content={"type": "m.space"})
    assert req(alice, "PUT", f"{C3}/rooms/{space}/state/m.space.child/{room}",
               {"via": [SERVER], "order": "a", "suggested": True}).status_code == 200
    rec("space-hierarchy", req(alice, "GET", f"{V1}/rooms/{space}/hierarchy", limit=5))
    rec("room-summary-joined", req(bob, "GET", f"{V1}/room_summary/{room}"))
    lazy = json.dumps({"lazy_load_members": True})
    rec("messages-lazy-members", req(bob, "GET", f"{C3}/rooms/{room}/messages", dir="b", limit=3, filter=lazy))
    rec("context-lazy-members", req(bob, "GET", f"{C3}/rooms/{room}/context/{reply}", limit=2, filter=lazy))
    paged = rec("public-rooms-paged", req(carol, "GET", f"{C3}/publicRooms", limit=1))
    assert paged.get("next_batch"), paged
    paged = rec("relations-paged", req(bob, "GET", f"{V1}/rooms/{room}/relations/{hello}", limit=1, dir="f"))
    assert paged.get("next_batch"), paged
    paged = rec("notifications-paged", req(alice, "GET", f"{C3}/notifications", limit=1))
    assert paged.get("next_token"), paged
    rec("pushrule-default", req(alice, "GET", f"{C3}/pushrules/global/override/.m.rule.master"))
    fallback = sign_json({"key": "carolfb", "fallback": True}, carol.user_id, carol.signing_key)
    carol.upload(device_keys=carol.device_keys(), fallback_keys={"signed_curve25519:CFB": fallback})
    claimed = rec("keys-claim-fallback", req(bob, "POST", f"{C3}/keys/claim",
                                             {"one_time_keys": {carol.user_id: {carol.device_id: "signed_curve25519"}}}))
    assert claimed["one_time_keys"][carol.user_id], claimed
    rec("keys-query-own", req(alice, "POST", f"{C3}/keys/query", {"device_keys": {alice.user_id: []}}))
    alice_sync = rec("sync-alice", req(alice, "GET", f"{C3}/sync", timeout=0))
    assert alice_sync["device_unused_fallback_key_types"] == ["signed_curve25519"], alice_sync

    rec("state-event-format-event", req(bob, "GET", f"{C3}/rooms/{room}/state/m.room.topic/", format="event"))
    rec("sync-thread-notifications", req(bob, "GET", f"{C3}/sync", timeout=0, filter=json.dumps(
        {"room": {"timeline": {"limit": 2, "unread_thread_notifications": True}}})))
    before_dm = req(alice, "GET", f"{C3}/sync", timeout=0).json()["next_batch"]
    dm = bob.create_room(preset="trusted_private_chat", is_direct=True, invite=[alice.user_id])
    alice.join(dm)
    bob.send(dm, "psst")
    dm_sync = rec("sync-dm-heroes", req(alice, "GET", f"{C3}/sync", timeout=0, since=before_dm))
    assert dm_sync["rooms"]["join"][dm]["summary"].get("m.heroes") == [bob.user_id], dm_sync["rooms"]["join"][dm]
    first = req(None, "POST", f"{C3}/register", {"username": "frank", "password": PASSWORD}).json()
    rec("register-inhibit-login", req(None, "POST", f"{C3}/register", {
        "username": "frank", "password": PASSWORD, "inhibit_login": True,
        "auth": {"type": "m.login.dummy", "session": first["session"]},
    }))
    rec("profile-unset-avatar", req(alice, "GET", f"{C3}/profile/{carol.user_id}"))
    dave = hs.device("dave", "DAVEDEV")  # registered above, never online since
    rec("presence-never-set", req(dave, "GET", f"{C3}/presence/{dave.user_id}/status"))
    rec("keys-query-unknown-user", req(alice, "POST", f"{C3}/keys/query",
                                       {"device_keys": {f"@nobody:{SERVER}": [], bob.user_id: ["NOSUCHDEVICE"]}}))
    before_phone = req(bob, "GET", f"{C3}/sync", timeout=0).json()["next_batch"]
    phone = hs.device("alice", "PHONE")
    phone.upload(device_keys=phone.device_keys())
    after_phone = req(bob, "GET", f"{C3}/sync", timeout=0, since=before_phone).json()["next_batch"]
    changes = rec("keys-changes-changed", req(bob, "GET", f"{C3}/keys/changes", to=after_phone,
                                              **{"from": before_phone}))
    assert alice.user_id in changes["changed"], changes

    knocked = rec("sync-knocked", req(carol, "GET", f"{C3}/sync", timeout=0, since=before_invite))
    assert knock_room in knocked["rooms"]["knock"] and private in knocked["rooms"]["leave"]
    rec("error-state-put-forbidden", req(bob, "PUT", f"{C3}/rooms/{room}/state/m.room.name/", {"name": "Mine now"}))
    rec("upgrade", req(alice, "POST", f"{C3}/rooms/{room}/upgrade", {"new_version": "11"}))

    # --- deletions --------------------------------------------------------------------------
    rec("keys-upload-otk-only", req(alice, "POST", f"{C3}/keys/upload", {"one_time_keys": alice.one_time_keys(10, 2)}))
    rec("pushrule-enabled-put", req(alice, "PUT", f"{C3}/pushrules/global/content/cakes/enabled", {"enabled": False}))
    rec("pushrule-actions-put", req(alice, "PUT", f"{C3}/pushrules/global/content/cakes/actions",
                                    {"actions": ["notify"]}))
    rec("pushrule-delete", req(alice, "DELETE", f"{C3}/pushrules/global/content/cakes"))
    rec("tag-delete", req(bob, "DELETE", f"{C3}/user/{bob.user_id}/rooms/{room}/tags/m.favourite"))
    rec("directory-alias-delete", req(alice, "DELETE", f"{C3}/directory/room/{_alias('square')}"))
    rec("profile-delete-avatar", req(alice, "DELETE", f"{C3}/profile/{alice.user_id}/avatar_url"))
    rec("backup-session-delete", req(alice, "DELETE", f"{C3}/room_keys/keys/{room}/S3?version={version}"))
    rec("backup-room-keys-delete", req(alice, "DELETE", f"{C3}/room_keys/keys/{room}?version={version}"))
    rec("backup-keys-delete", req(alice, "DELETE", f"{C3}/room_keys/keys?version={version}"))
    rec("backup-version-delete", req(alice, "DELETE", f"{C3}/room_keys/version/{version}"))

    # --- sessions and accounts ----------------------------------------------------------------
    def password_auth(user: str, session: str) -> dict[str, Any]:
        return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                "password": PASSWORD, "session": session}

    spare = hs.device("alice", "SPARE")
    uia = rec("device-delete-uia", req(alice, "DELETE", f"{C3}/devices/{spare.device_id}", {}))
    rec("device-delete", req(alice, "DELETE", f"{C3}/devices/{spare.device_id}",
                             {"auth": password_auth("alice", uia["session"])}))
    spare = hs.device("alice", "SPARE2")
    uia = rec("delete-devices-uia", req(alice, "POST", f"{C3}/delete_devices", {"devices": [spare.device_id]}))
    rec("delete-devices", req(alice, "POST", f"{C3}/delete_devices",
                              {"devices": [spare.device_id], "auth": password_auth("alice", uia["session"])}))
    refreshable = rec("login-refreshable", req(None, "POST", f"{C3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
        "password": PASSWORD, "refresh_token": True,
    }))
    rec("refresh", req(None, "POST", f"{C3}/refresh", {"refresh_token": refreshable["refresh_token"]}))
    rec("error-refresh-unknown", req(None, "POST", f"{C3}/refresh", {"refresh_token": "not-a-token"}))
    rec("thirdparty-location", req(alice, "GET", f"{C3}/thirdparty/location", alias=f"#irc_foo:{SERVER}"))
    rec("thirdparty-user", req(alice, "GET", f"{C3}/thirdparty/user", userid=f"@irc_foo:{SERVER}"))
    rec("whois", req(alice, "GET", f"{C3}/admin/whois/{alice.user_id}"))
    rec("report-room", req(bob, "POST", f"{C3}/rooms/{room}/report", {"reason": "test"}))
    hs.device("alice", "NEVERUSED")
    rec("devices-after-spare", req(alice, "GET", f"{C3}/devices"))
    rec("report-user", req(bob, "POST", f"{C3}/users/{carol.user_id}/report", {"reason": "test"}))
    rec("logout", req(laptop, "POST", f"{C3}/logout", {}))

    erin = hs.device("erin", "ERINDEV")
    uia = req(erin, "POST", f"{C3}/account/password", {"new_password": "another long password"}).json()
    rec("password-change", req(erin, "POST", f"{C3}/account/password", {
        "new_password": "another long password", "logout_devices": False, "auth": password_auth("erin", uia["session"]),
    }))
    uia = req(erin, "POST", f"{C3}/account/deactivate", {}).json()
    rec("deactivate", req(erin, "POST", f"{C3}/account/deactivate", {"auth": {
        **password_auth("erin", uia["session"]), "password": "another long password"}}))
    rec("logout-all", req(dave, "POST", f"{C3}/logout/all", {}))


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Response]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "BCRYPT_ROUNDS", 4)
        config = load_config(
            data_dir=str(tmp_path_factory.mktemp("openapi")), server_name=SERVER,
            support_contacts=[{"role": "m.role.admin", "matrix_id": f"@alice:{SERVER}"}],
            support_page="https://hs.test/support.html",
            turn_uris=("turn:turn.hs.test:3478?transport=udp",), turn_shared_secret="turn secret",
        )
        with TestClient(build_app(config)) as client:
            recorder = Recorder(CASES + BINARY_CASES)
            run_scenario(Harness(client), recorder)
            yield recorder.responses


# --- the tests -----------------------------------------------------------------------------


def test_every_case_names_an_operation_of_the_spec() -> None:
    for case in CASES:
        assert case.method in SPEC["paths"][case.path], case
        validator_for(case)  # the status has a JSON schema
    for case in BINARY_CASES:
        assert str(case.status) in SPEC["paths"][case.path][case.method]["responses"], case
    ids = [case.id for case in CASES + BINARY_CASES]
    assert len(set(ids)) == len(ids)


def test_spec_document_is_self_contained() -> None:
    """Every ``$ref`` in the bundled document points inside it and resolves (today's bundle
    inlines them all; a later one that keeps some must still resolve through the registry)."""
    text = SPEC_FILE.read_text()
    for ref in re.findall(r'"\$ref":\s*"([^"]*)"', text):
        assert ref.startswith("#/"), ref
        REGISTRY.resolver(SPEC_URI).lookup(ref)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_response_matches_the_spec_schema(case: Case, responses: dict[str, httpx.Response]) -> None:
    assert case.id in responses, f"the scenario never made {case.id}"
    body = responses[case.id].json()
    assert_valid_or_quirk(case.id, list(validator_for(case).iter_errors(body)), SCHEMA_QUIRKS.get(case.id))


@pytest.mark.parametrize("case", BINARY_CASES, ids=[case.id for case in BINARY_CASES])
def test_binary_response_headers_match_the_spec(case: Case, responses: dict[str, httpx.Response]) -> None:
    """A media body has no schema; its Content-Type must be one the operation lists (any for
    application/octet-stream), and each header the spec marks required must be present and
    match the header's schema."""
    response = responses[case.id]
    spec_response = SPEC["paths"][case.path][case.method]["responses"][str(case.status)]
    media_type = response.headers["content-type"].split(";")[0].strip()
    listed = set(spec_response["content"])
    assert "application/octet-stream" in listed or media_type in listed, (media_type, listed)
    for name, header in spec_response.get("headers", {}).items():
        value = response.headers.get(name)
        if header.get("required"):
            assert value is not None, f"{case.id}: missing required header {name}"
        if value is not None:
            errors = list(Draft202012Validator(header["schema"]).iter_errors(value))
            assert not errors, (name, value, [e.message for e in errors])
    if case.path.endswith("{fileName}"):
        assert 'filename="town.png"' in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("case_id", "body", "error_path"),
    [
        ("whoami", {"device_id": "D"}, "$"),
        ("sync-initial", {"next_batch": 7}, "$.next_batch"),
        ("joined-members", {"joined": {"@a:hs.test": {"avatar_url": None}}}, "$.joined['@a:hs.test'].avatar_url"),
        ("keys-claim", {"one_time_keys": {"@a:hs.test": []}}, "$.one_time_keys['@a:hs.test']"),
        ("error-whoami-no-token", {"error": "no errcode"}, "$"),
    ],
)
def test_validation_is_not_vacuous(case_id: str, body: Any, error_path: str) -> None:
    """Wrong bodies are refused where they are wrong: the ``$ref`` into the spec resolves to
    the real schema, nested schemas included."""
    case = next(c for c in CASES if c.id == case_id)
    errors = list(validator_for(case).iter_errors(body))
    assert error_path in {e.json_path for e in errors}, [(e.json_path, e.message) for e in errors]
