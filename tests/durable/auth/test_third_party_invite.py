"""Invites that redeem a third-party invite, with real ed25519 signatures."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from durable.auth import check_event_auth
from durable.auth.third_party_invite import signed_matches_any_key
from durable.errors import AuthError
from durable.events.event import Event
from tests.durable.auth.factories import ALICE, ALL_VERSIONS, BOB, CAROL, Room, standard_room
from tests.durable.auth.helpers import assert_auth

TOKEN = "abc123"
SIGNING_KEY = generate_signing_key("0")
OTHER_KEY = generate_signing_key("1")


def _public_key(key: Any = SIGNING_KEY, urlsafe: bool = False) -> str:
    return encode_base64(get_verify_key(key).encode(), urlsafe=urlsafe)


def _signed(mxid: str = BOB, token: str = TOKEN, key: Any = SIGNING_KEY) -> dict[str, Any]:
    return sign_json({"mxid": mxid, "token": token, "sender": ALICE}, "id.example", key)


def _room(version: str, invite_content: dict[str, Any] | None = None, sender: str = ALICE) -> Room:
    room = standard_room(version, "invite", members=(CAROL,))
    content = invite_content if invite_content is not None else {"public_key": _public_key(), "display_name": "b..."}
    room.send("m.room.third_party_invite", sender, content, TOKEN)
    return room


def _invite(room: Room, third_party_invite: Any, sender: str = ALICE, target: str = BOB) -> Event:
    content = {"membership": "invite", "third_party_invite": third_party_invite}
    return room.make("m.room.member", sender, content, target)


Case = Callable[[str], tuple[Room, Event]]


def _valid(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"display_name": "b...", "signed": _signed()})


def _public_keys_list(v: str) -> tuple[Room, Event]:
    room = _room(v, {"public_keys": [{"public_key": _public_key(OTHER_KEY)}, {"public_key": _public_key()}]})
    return room, _invite(room, {"signed": _signed()})


def _urlsafe_key(v: str) -> tuple[Room, Event]:
    room = _room(v, {"public_key": _public_key(urlsafe=True)})
    return room, _invite(room, {"signed": _signed()})


def _wrong_key(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"signed": _signed(key=OTHER_KEY)})


def _tampered(v: str) -> tuple[Room, Event]:
    room = _room(v)
    signed = _signed()
    signed["sender"] = CAROL
    return room, _invite(room, {"signed": signed})


def _no_signed(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"display_name": "b..."})


def _not_an_object(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, "yes")


def _no_token(v: str) -> tuple[Room, Event]:
    room = _room(v)
    signed = sign_json({"mxid": BOB}, "id.example", SIGNING_KEY)
    return room, _invite(room, {"signed": signed})


def _mxid_mismatch(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"signed": _signed(mxid=CAROL)})


def _unknown_token(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"signed": _signed(token="other")})


def _other_sender(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"signed": _signed()}, sender=CAROL)


def _target_banned(v: str) -> tuple[Room, Event]:
    room = _room(v)
    room.member(BOB, "ban", sender=ALICE)
    return room, _invite(room, {"signed": _signed()})


def _sender_left(v: str) -> tuple[Room, Event]:
    # The third-party branch allows on a valid signature without the "sender is joined" rule.
    room = _room(v)
    room.member(ALICE, "leave")
    return room, _invite(room, {"signed": _signed()})


def _no_signatures(v: str) -> tuple[Room, Event]:
    room = _room(v)
    return room, _invite(room, {"signed": {"mxid": BOB, "token": TOKEN}})


CASES: list[tuple[str, Case, str | None]] = [
    ("valid", _valid, None),
    ("public-keys-list", _public_keys_list, None),
    ("urlsafe-public-key", _urlsafe_key, None),
    ("sender-left", _sender_left, None),
    ("wrong-key", _wrong_key, "no signature in 'signed' matches"),
    ("tampered-signed", _tampered, "no signature in 'signed' matches"),
    ("no-signatures", _no_signatures, "no signature in 'signed' matches"),
    ("no-signed", _no_signed, "has no 'signed' object"),
    ("not-an-object", _not_an_object, "has no 'signed' object"),
    ("no-token", _no_token, "lacks 'mxid' or 'token'"),
    ("mxid-mismatch", _mxid_mismatch, "'mxid' does not match state_key"),
    ("unknown-token", _unknown_token, "no m.room.third_party_invite for the token"),
    ("other-sender", _other_sender, "sender differs"),
    ("target-banned", _target_banned, "target user is banned"),
]


@pytest.mark.parametrize(
    ("version", "case", "expected"),
    [pytest.param(v, case, expected, id=f"{name}-v{v}") for name, case, expected in CASES for v in ALL_VERSIONS],
)
def test_third_party_invite(version: str, case: Case, expected: str | None) -> None:
    room, event = case(version)
    assert_auth(room, event, expected)


@pytest.mark.parametrize("version", ["2", "12"])
def test_third_party_invite_through_auth_events(version: str) -> None:
    """The selection picks the m.room.third_party_invite for the token, so the full check
    against the event's own auth events passes."""
    room, event = _valid(version)
    check_event_auth(event, room.auth_events_of(event))
    assert ("m.room.third_party_invite", TOKEN) in {e.key for e in room.auth_events_of(event)}


def test_signature_check_ignores_bad_keys_and_other_algorithms() -> None:
    signed = _signed()
    mixed = copy.deepcopy(signed)
    mixed["signatures"]["id.example"]["curve25519:9"] = "AAAA"
    contents = {"public_keys": [{"public_key": "not base64!"}, {"public_key": "AAAA"}, {"public_key": _public_key()}]}
    assert signed_matches_any_key(mixed, contents)
    assert not signed_matches_any_key(mixed, {"public_key": "AAAA"})
    assert not signed_matches_any_key(signed, {})


def test_third_party_invite_event_needs_invite_level() -> None:
    room = standard_room("10", "invite", members=(CAROL,), invite=50)
    event = room.make("m.room.third_party_invite", CAROL, {"public_key": _public_key()}, TOKEN)
    with pytest.raises(AuthError, match="below the invite level"):
        check_event_auth(event, room.auth_events_of(event))
    allowed = room.make("m.room.third_party_invite", ALICE, {"public_key": _public_key()}, TOKEN)
    check_event_auth(allowed, room.auth_events_of(allowed))
