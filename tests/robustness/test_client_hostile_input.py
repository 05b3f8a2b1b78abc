"""Hostile client input gets a Matrix error with the spec's status and changes nothing.

Spec: client-server API "Standard error response" ({"errcode", "error"}; M_NOT_JSON and
M_BAD_JSON for malformed bodies, M_INVALID_PARAM for bad parameters, M_TOO_LARGE (413) for
what is too big to take). Each row was a 500 (or a 502 from contacting a server named by a
malformed ID) before its fix; the snapshot around it shows the refusal wrote nothing.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest

from tests.robustness.conftest import V3, Hostile

V1 = "/_matrix/client/v1"
BIG = 1024 * 1024 + 10  # just over what one stored row or string may hold


@dataclass(frozen=True)
class Raw:
    """A body sent byte for byte, as application/json."""

    data: bytes


def _nested(depth: int) -> bytes:
    return b'{"msgtype":"m.text","body":"x","n":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def _many_keys(size: int) -> dict[str, str]:
    """An object of about ``size`` bytes with no string over 1 KiB."""
    return {f"k{i}": "v" * 1000 for i in range(size // 1000 + 1)}


CASES = [
    # createRoom: wrong JSON types that reached a set lookup or the event builder.
    ("POST", f"{V3}/createRoom", {"preset": [None, None]}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/createRoom", {"preset": {"a": 1}}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/createRoom", {"room_version": ["12"]}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/createRoom", {"room_version": 12}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/createRoom", {"creation_content": {"n": 10**30}}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/createRoom", {"creation_content": {"n": 1.5}}, 400, "M_BAD_JSON"),
    # publicRooms: since and limit of the wrong type or out of range.
    ("POST", f"{V3}/publicRooms", {"since": [None, None]}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/publicRooms", {"since": True}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/publicRooms", {"since": 5}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/publicRooms", {"since": "p-5"}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/publicRooms", {"limit": 1.5}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/publicRooms", {"limit": [1]}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/publicRooms", Raw(b'{"limit": 1e400}'), 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/publicRooms?since=p%D9%A3", None, 400, "M_INVALID_PARAM"),
    # search: unhashable keys.
    ("POST", f"{V3}/search", {"search_categories": {"room_events": {"search_term": "x", "keys": [[]]}}},
     400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/search", {"search_categories": {"room_events": {"search_term": "x", "keys": [{}]}}},
     400, "M_INVALID_PARAM"),
    # User-interactive auth: a stage type that is not a string.
    ("DELETE", f"{V3}/devices/{{device}}", {"auth": {"type": [{"": 1}], "session": None}}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/delete_devices", {"devices": ["X"], "auth": {"type": {"a": 1}}}, 400, "M_BAD_JSON"),
    ("POST", f"{V3}/register", {"username": "uia", "password": "long enough pw", "auth": {"type": ["m.login.dummy"]}},
     400, "M_BAD_JSON"),
    # Integers past SQLite's 64 bits in query parameters.
    ("GET", f"{V3}/notifications?from=999999999999999999999999999999", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/notifications?limit=99999999999999999999999", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V1}/rooms/{{room}}/timestamp_to_event?ts=321441921194061050413056&dir=f", None,
     400, "M_INVALID_PARAM"),
    ("GET", f"{V1}/rooms/{{room}}/timestamp_to_event?ts=-9223372036854775809&dir=b", None,
     400, "M_INVALID_PARAM"),
    # Bodies that are not strict JSON: nesting past the parser, NaN, lone surrogates.
    ("POST", f"{V3}/createRoom", Raw(b'{"a":' * 3000 + b"1" + b"}" * 3000), 400, "M_NOT_JSON"),
    ("POST", f"{V3}/login", Raw(b"[" * 3000 + b"]" * 3000), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/rooms/{{room}}/send/m.room.message/deep1", Raw(_nested(129)), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/rooms/{{room}}/send/m.room.message/deep2", Raw(_nested(900)), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.deep", Raw(b'{"a":' + b"[" * 500 + b"]" * 500 + b"}"),
     400, "M_NOT_JSON"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.nan", Raw(b'{"a": NaN}'), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.inf", Raw(b'{"a": -Infinity}'), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.sur", Raw(b'{"a": "\\ud800"}'), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.sur", Raw(b'{"\\udc00": 1}'), 400, "M_NOT_JSON"),
    ("POST", f"{V3}/user/{{me}}/filter", Raw(b'{"room": {"not_rooms": ["\\ud800"]}}'), 400, "M_NOT_JSON"),
    ("PUT", f"{V3}/profile/{{me}}/displayname", Raw(b'{"displayname": "\\ud800"}'), 400, "M_NOT_JSON"),
    # Inline and stored filters.
    ("GET", f"{V3}/sync?timeout=0&filter=" + urllib.parse.quote('{"room":' + '{"a":' * 990 + "1" + "}" * 991),
     None, 400, "M_NOT_JSON"),
    ("GET", f"{V3}/rooms/{{room}}/messages?dir=b&filter=" + urllib.parse.quote("[" * 2000 + "]" * 2000),
     None, 400, "M_NOT_JSON"),
    ("GET", f"{V3}/sync?timeout=0&filter=%C2%B2", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/sync?timeout=0&filter=" + "9" * 25, None, 400, "M_INVALID_PARAM"),
    # A LIKE pattern longer than SQLite takes.
    ("POST", f"{V3}/user_directory/search", {"search_term": "a" * 60000}, 400, "M_INVALID_PARAM"),
    # Malformed user IDs, aliases and server names are refused, not looked up over federation.
    ("GET", f"{V3}/profile/%21room%3Aexa%20mple.com", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/profile/%40x%3Ay%3Az", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/profile/u%3Aexample.com/displayname", None, 400, "M_INVALID_PARAM"),
    ("GET", f"{V3}/directory/room/%23a%3Aexa%20mple.com", None, 400, "M_INVALID_PARAM"),
    ("PUT", f"{V3}/directory/room/%23a%00b%3Ahostile.test", {"room_id": "{room}"}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/join/%23a%3Aexa%20mple.com", {}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/knock/%23a%3A%C3%A9%C3%A9", {}, 400, "M_INVALID_PARAM"),
    ("POST", f"{V3}/join/%21nowhere%3Aexa%20mple.com?via=%27%C2%A6&via=a%20b", {}, 404, "M_NOT_FOUND"),
    ("POST", f"{V3}/rooms/%21nowhere%3Aexa%20mple.com/join", {}, 404, "M_NOT_FOUND"),
    # What is too large to store in one row: 413 M_TOO_LARGE.
    ("PUT", f"{V3}/user/{{me}}/account_data/x.big", {"a": "b" * BIG}, 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/user/{{me}}/account_data/x.big", _many_keys(BIG), 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/user/{{me}}/rooms/{{room}}/account_data/x.big", _many_keys(BIG), 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/user/{{me}}/rooms/{{room}}/tags/u.big", {"order": 0.5, "x": _many_keys(BIG)},
     413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/rooms/{{room}}/send/m.room.message/big1",
     {"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": "m.thread", "event_id": "b" * 2_500_000}},
     413, "M_TOO_LARGE"),
    ("POST", f"{V3}/rooms/{{room}}/report/{{event}}", {"reason": "r" * 2_500_000}, 413, "M_TOO_LARGE"),
    ("POST", f"{V3}/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "u" * BIG},
                             "password": "x"}, 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/sendToDevice/m.test/big1", {"messages": {"{me}": {"{device}": _many_keys(BIG)}}},
     413, "M_TOO_LARGE"),
    ("POST", f"{V3}/room_keys/version", {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
                                         "auth_data": _many_keys(BIG)}, 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/room_keys/version/{{version}}", {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
                                                   "auth_data": _many_keys(BIG), "version": "{version}"},
     413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/room_keys/keys/{{room}}/s1?version={{version}}",
     {"first_message_index": 1, "forwarded_count": 0, "is_verified": True, "session_data": _many_keys(BIG)},
     413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/pushrules/global/override/big",
     {"actions": ["notify", {"set_tweak": "sound", "value": _many_keys(BIG)}]}, 413, "M_TOO_LARGE"),
    ("PUT", f"{V3}/pushrules/global/override/big",
     {"actions": ["notify"], "conditions": [{"kind": "event_match", "key": "x", "pattern": "p", "z": _many_keys(BIG)}]},
     413, "M_TOO_LARGE"),
    ("POST", f"{V3}/pushers/set", {
        "pushkey": "pk", "kind": "http", "app_id": "a.b", "app_display_name": "x", "device_display_name": "d",
        "lang": "en", "data": {"url": "https://push.example.com/_matrix/push/v1/notify", "x": _many_keys(BIG)},
    }, 413, "M_TOO_LARGE"),
    ("POST", f"{V3}/keys/upload", {"one_time_keys": {"signed_curve25519:AAAB": {"key": "k", "x": _many_keys(BIG)}}},
     413, "M_TOO_LARGE"),
    ("POST", f"{V3}/keys/upload", {"fallback_keys": {"signed_curve25519:AAAC": {"key": "k", "x": _many_keys(BIG)}}},
     413, "M_TOO_LARGE"),
]


def _substitute(hostile: Hostile, body: Any) -> Any:
    """The body with {me}/{device}/{room}/{version} filled in where they are whole strings."""
    names = {"{me}": hostile.user_id, "{device}": hostile.device_id, "{room}": hostile.room_id,
             "{version}": hostile.backup_version}
    if isinstance(body, dict):
        return {names.get(k, k): _substitute(hostile, v) for k, v in body.items()}
    if isinstance(body, list):
        return [_substitute(hostile, v) for v in body]
    return names.get(body, body) if isinstance(body, str) else body


def _send(hostile: Hostile, method: str, path: str, body: Any) -> Any:
    url = hostile.fill(path)
    if isinstance(body, Raw):
        return hostile.client.request(
            method, url, content=body.data, headers={**hostile.headers, "Content-Type": "application/json"}
        )
    if body is None:
        return hostile.client.request(method, url, headers=hostile.headers)
    return hostile.client.request(method, url, json=_substitute(hostile, body), headers=hostile.headers)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "errcode"),
    [pytest.param(*case, id=f"{i}-{case[0]} {case[1][:60]} {case[4]}") for i, case in enumerate(CASES)],
)
def test_hostile_request_is_refused_and_changes_nothing(
    hostile: Hostile, method: str, path: str, body: Any, status: int, errcode: str
) -> None:
    before = hostile.snapshot()
    answer = _send(hostile, method, path, body)
    assert answer.status_code == status, answer.text[:300]
    error = answer.json()
    assert error["errcode"] == errcode, error
    assert isinstance(error["error"], str)
    assert hostile.snapshot() == before


def test_sync_still_works_after_the_refusals(hostile: Hostile) -> None:
    """A deeply nested event once got stored and then broke every member's /sync."""
    answer = hostile.client.get(f"{V3}/sync?timeout=0", headers=hostile.headers)
    assert answer.status_code == 200, answer.text[:300]
    timeline = answer.json()["rooms"]["join"][hostile.room_id]["timeline"]["events"]
    assert hostile.event_id in [e["event_id"] for e in timeline]


def test_nesting_up_to_the_limit_is_accepted(hostile: Hostile) -> None:
    deep = b'{"msgtype":"m.text","body":"x","n":' + b"[" * 127 + b"]" * 127 + b"}"
    answer = hostile.client.put(
        hostile.fill(f"{V3}/rooms/{{room}}/send/m.room.message/deep-ok"), content=deep,
        headers={**hostile.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert hostile.client.get(f"{V3}/sync?timeout=0", headers=hostile.headers).status_code == 200


def test_paired_surrogate_escapes_are_one_character(hostile: Hostile) -> None:
    url = hostile.fill(f"{V3}/user/{{me}}/account_data/x.emoji")
    put = hostile.client.put(url, content=b'{"a": "\\ud83d\\ude00"}',
                             headers={**hostile.headers, "Content-Type": "application/json"})
    assert put.status_code == 200, put.text
    assert hostile.client.get(url, headers=hostile.headers).json() == {"a": "\U0001F600"}


def test_to_device_star_and_named_device_deliver_once_each(hostile: Hostile) -> None:
    """``*`` beside a device ID used to insert that device's message twice (500); the message
    addressed by name wins, every other device gets the ``*`` one."""
    body = {"messages": {hostile.user_id: {"*": {"which": "star"}, hostile.device_id: {"which": "named"}}}}
    answer = hostile.client.put(f"{V3}/sendToDevice/m.test/star1", json=body, headers=hostile.headers)
    assert answer.status_code == 200, answer.text

    async def inbox() -> list[tuple[str, str]]:
        rows = (await hostile.env.DB.prepare(
            "SELECT device_id, content FROM to_device_inbox WHERE type = 'm.test' ORDER BY device_id"
        ).all()).results
        return [(r["device_id"], json.loads(r["content"])["which"]) for r in rows]

    assert sorted(hostile.call(inbox)) == sorted(
        [(hostile.device_id, "named"), (hostile.second_device, "star")]
    )
