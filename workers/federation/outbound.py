"""Membership changes that need another server: joining a room hosted elsewhere, inviting a
remote user, leaving (or rejecting an invite to) a room we are not in, and looking up
remote aliases.

Spec: server-server API "Joining Rooms" (make_join, then send_join v2), "Inviting to a room"
(invite v2), "Leaving Rooms (Rejecting Invites)" (make_leave, send_leave v2), "Querying
for information" (query/directory).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterable

from d1.accounts import get_profile
from durable.errors import InvalidEvent
from durable.events import add_content_hash, event_from_pdu, sign_event, validate_pdu
from durable.events.identifiers import is_valid_server_name, server_name_of
from durable.room_versions import KNOWN_ROOM_VERSIONS, UnsupportedRoomVersion, get_room_version
from workers.errors import Codes, MatrixError
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError, RemoteServerError, as_client_error
from workers.room_access import room_stub

log = logging.getLogger(__name__)


def _candidates(env: Any, room_id: str, servers: Iterable[str]) -> list[str]:
    own = env.config.server_name
    out = [s for s in dict.fromkeys(servers) if s and s != own and is_valid_server_name(s)]
    domain = server_name_of(room_id)
    if domain and domain != own and domain not in out and is_valid_server_name(domain):
        out.append(domain)
    return out


async def resolve_remote_alias(env: Any, alias: str) -> tuple[str, list[str]]:
    """``(room_id, servers)`` of an alias on another server (query/directory)."""
    server = alias.split(":", 1)[1] if ":" in alias else ""
    try:
        body = await federation_client(env).get_json(
            server, "/_matrix/federation/v1/query/directory", {"room_alias": alias}
        )
    except FederationError as exc:
        raise as_client_error(exc) from exc
    room_id = body.get("room_id") if isinstance(body, dict) else None
    if not isinstance(room_id, str):
        raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
    servers = [s for s in body.get("servers", []) if isinstance(s, str)]
    return room_id, servers or [server]


def _complete(template: dict[str, Any], version_id: str, env: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Fill in, hash and sign an event template from make_join/make_leave/make_knock."""
    version = get_room_version(version_id)
    pdu = dict(template)
    pdu["content"] = {**(pdu.get("content") or {}), **extra}
    pdu["origin_server_ts"] = int(time.time() * 1000)
    if not version.updated_redaction_rules:
        pdu["origin"] = env.config.server_name
    pdu.pop("hashes", None)
    pdu.pop("signatures", None)
    pdu.pop("unsigned", None)
    if version.event_id_in_event:
        # Room versions 1 and 2: the event ID is ours to make, under our own server name (its
        # domain's server must sign the event); a template's event_id is the remote server's.
        pdu["event_id"] = f"${os.urandom(12).hex()}:{env.config.server_name}"
    signed = sign_event(add_content_hash(pdu), version, env.config.server_name, env.signing_key)
    try:
        validate_pdu(signed, version)
    except InvalidEvent as exc:
        raise MatrixError(502, Codes.UNKNOWN, f"The remote server's event template is invalid: {exc.reason}") from exc
    return signed


async def _make(env: Any, server: str, room_id: str, user_id: str, membership: str) -> tuple[dict[str, Any], str]:
    query = {"ver": list(KNOWN_ROOM_VERSIONS)} if membership in ("join", "knock") else None
    body = await federation_client(env).get_json(
        server, encode_path(f"/_matrix/federation/v1/make_{membership}/{{}}/{{}}", room_id, user_id), query
    )
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
        raise MatrixError(502, Codes.UNKNOWN, f"{server} answered make_{membership} without an event")
    version_id = body.get("room_version", "1")
    try:
        get_room_version(version_id)
    except UnsupportedRoomVersion as exc:
        raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION,
                          f"The room uses version {version_id!r}, which this server does not support") from exc
    return body["event"], version_id


async def _profile_content(env: Any, user_id: str) -> dict[str, Any]:
    profile = await get_profile(env.DB, user_id) or {}
    return {k: profile[k] for k in ("displayname", "avatar_url") if profile.get(k) is not None}


async def join_remote(env: Any, user_id: str, room_id: str, servers: Iterable[str],
                      reason: str | None = None) -> str:
    """Join ``room_id`` through the first of ``servers`` that lets us in."""
    candidates = _candidates(env, room_id, servers)
    if not candidates:
        raise MatrixError(404, Codes.NOT_FOUND, "No known servers to join this room through")
    last: Exception | None = None
    for server in candidates:
        try:
            template, version_id = await _make(env, server, room_id, user_id, "join")
            extra = await _profile_content(env, user_id)
            if reason:
                extra["reason"] = reason
            pdu = _complete(template, version_id, env, extra)
            event = event_from_pdu(pdu, get_room_version(version_id))
            answer = await federation_client(env).put_json(
                server, encode_path("/_matrix/federation/v2/send_join/{}/{}", room_id, event.event_id), pdu
            )
            if not isinstance(answer, dict):
                raise MatrixError(502, Codes.UNKNOWN, f"{server} answered send_join with no object")
            if isinstance(answer.get("event"), dict):
                pdu = answer["event"]  # a restricted join, countersigned by the resident server
            state = [p for p in answer.get("state", []) if isinstance(p, dict)]
            chain = [p for p in answer.get("auth_chain", []) if isinstance(p, dict)]
            await room_stub(env, room_id).join_remote_room(version_id, pdu, state, chain, server)
            return room_id
        except RemoteServerError as exc:
            log.info("join of %s to %s through %s refused: %s", user_id, room_id, server, exc)
            last = exc
            if exc.status == 403:
                raise MatrixError(403, Codes.FORBIDDEN, f"{server} refused the join") from exc
        except FederationError as exc:
            log.info("join of %s to %s through %s failed: %s", user_id, room_id, server, exc)
            last = exc
    if isinstance(last, FederationError):
        raise as_client_error(last)
    raise MatrixError(404, Codes.NOT_FOUND, "No server could be reached to join this room")


async def invite_remote(env: Any, sender: str, room_id: str, target: str,
                        content: dict[str, Any]) -> str:
    """Invite a user of another server: the invitee's server countersigns the event first."""
    stub = room_stub(env, room_id)
    version_id = (await stub.summary())["room_version"]
    pdu = await stub.prepare_event(sender, "m.room.member", {**content, "membership": "invite"}, target)
    version = get_room_version(version_id)
    event_id = event_from_pdu(pdu, version).event_id
    server = target.split(":", 1)[1]
    try:
        answer = await federation_client(env).put_json(
            server, encode_path("/_matrix/federation/v2/invite/{}/{}", room_id, event_id),
            {"event": pdu, "room_version": version_id, "invite_room_state": await stub.stripped_state_pdus()},
        )
    except FederationError as exc:
        raise as_client_error(exc) from exc
    signed = answer.get("event") if isinstance(answer, dict) else None
    if not isinstance(signed, dict) or server not in (signed.get("signatures") or {}):
        raise MatrixError(502, Codes.UNKNOWN, f"{server} did not countersign the invite")
    return (await stub.send_prepared(signed))["event_id"]


async def leave_remote(env: Any, user_id: str, room_id: str, servers: Iterable[str],
                       reason: str | None = None) -> None:
    """Leave (or reject an invite to) a room we are not in, through a server that is."""
    for server in _candidates(env, room_id, servers):
        try:
            template, version_id = await _make(env, server, room_id, user_id, "leave")
            pdu = _complete(template, version_id, env, {"reason": reason} if reason else {})
            event = event_from_pdu(pdu, get_room_version(version_id))
            await federation_client(env).put_json(
                server, encode_path("/_matrix/federation/v2/send_leave/{}/{}", room_id, event.event_id), pdu
            )
            await room_stub(env, room_id).store_remote_membership(version_id, pdu)
            return
        except FederationError as exc:
            log.info("leave of %s from %s through %s failed: %s", user_id, room_id, server, exc)
    raise MatrixError(502, Codes.UNKNOWN, "No server in the room could be reached to leave it")


async def knock_remote(env: Any, user_id: str, room_id: str, servers: Iterable[str],
                       reason: str | None = None) -> None:
    """Knock on a room hosted elsewhere (make_knock, send_knock)."""
    for server in _candidates(env, room_id, servers):
        try:
            template, version_id = await _make(env, server, room_id, user_id, "knock")
            extra = await _profile_content(env, user_id)
            if reason:
                extra["reason"] = reason
            pdu = _complete(template, version_id, env, extra)
            event = event_from_pdu(pdu, get_room_version(version_id))
            answer = await federation_client(env).put_json(
                server, encode_path("/_matrix/federation/v1/send_knock/{}/{}", room_id, event.event_id), pdu
            )
            stripped = answer.get("knock_room_state", []) if isinstance(answer, dict) else []
            await room_stub(env, room_id).store_remote_membership(version_id, pdu, stripped)
            return
        except RemoteServerError as exc:
            if exc.status == 403:
                raise MatrixError(403, Codes.FORBIDDEN, f"{server} refused the knock") from exc
            log.info("knock of %s on %s through %s failed: %s", user_id, room_id, server, exc)
        except FederationError as exc:
            log.info("knock of %s on %s through %s failed: %s", user_id, room_id, server, exc)
    raise MatrixError(404, Codes.NOT_FOUND, "No server could be reached to knock on this room")
