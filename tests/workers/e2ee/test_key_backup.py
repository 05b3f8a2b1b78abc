"""Server-side key backup: versions, keys at three levels, etag and count, and which copy of
a session the server keeps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workers.e2ee.harness import Device, Harness
from workers.client.key_backup import should_replace

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
AUTH = {"public_key": "abcdefg", "signatures": {}}
ROOM = "!room:hs.test"


def _session(fmi: int = 0, fwd: int = 0, verified: bool = False, data: str = "c") -> dict[str, Any]:
    return {"first_message_index": fmi, "forwarded_count": fwd, "is_verified": verified,
            "session_data": {"ephemeral": "e", "ciphertext": data, "mac": "m"}}


def _create(device: Device) -> str:
    return device.ok("POST", "/room_keys/version", {"algorithm": ALGORITHM, "auth_data": AUTH})["version"]


@pytest.mark.parametrize(
    ("existing", "new", "replace"),
    [
        (_session(verified=False), _session(verified=True, fmi=9, fwd=9), True),
        (_session(verified=True), _session(verified=False), False),
        (_session(fmi=5), _session(fmi=2, fwd=9), True),
        (_session(fmi=2), _session(fmi=5, fwd=0), False),
        (_session(fmi=2, fwd=3), _session(fmi=2, fwd=1), True),
        (_session(fmi=2, fwd=1), _session(fmi=2, fwd=3), False),
        (_session(fmi=2, fwd=1, data="old"), _session(fmi=2, fwd=1, data="new"), False),
    ],
)
def test_replacement_rules(existing: dict, new: dict, replace: bool) -> None:
    assert should_replace(existing, new) is replace


def test_no_backup_is_404(hs: Harness) -> None:
    alice = hs.device("alice")
    response = alice.request("GET", "/room_keys/version")
    assert response.status_code == 404 and response.json()["errcode"] == "M_NOT_FOUND"
    for path in ("/room_keys/version/1", "/room_keys/version/abc"):
        assert alice.request("GET", path).status_code == 404
    assert alice.request("GET", "/room_keys/keys", version="1").status_code == 404
    assert alice.request("PUT", "/room_keys/keys", {"rooms": {}}, version="1").status_code == 404


def test_version_lifecycle(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    v1 = _create(alice)
    got = alice.ok("GET", "/room_keys/version")
    assert got == {"version": v1, "algorithm": ALGORITHM, "auth_data": AUTH, "etag": got["etag"], "count": 0}
    assert bob.request("GET", "/room_keys/version").status_code == 404  # backups are per user
    new_auth = {"public_key": "xyz", "signatures": {}}
    alice.ok("PUT", f"/room_keys/version/{v1}", {"algorithm": ALGORITHM, "auth_data": new_auth, "version": v1})
    assert alice.ok("GET", f"/room_keys/version/{v1}")["auth_data"] == new_auth
    bad = alice.request("PUT", f"/room_keys/version/{v1}", {"algorithm": ALGORITHM, "auth_data": AUTH, "version": "7"})
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_INVALID_PARAM"
    bad = alice.request("PUT", f"/room_keys/version/{v1}", {"algorithm": "other", "auth_data": AUTH})
    assert bad.status_code == 400
    v2 = _create(alice)
    assert int(v2) > int(v1)
    assert alice.ok("GET", "/room_keys/version")["version"] == v2
    alice.ok("DELETE", f"/room_keys/version/{v2}")
    assert alice.ok("GET", "/room_keys/version")["version"] == v1
    assert alice.request("GET", f"/room_keys/version/{v2}").status_code == 404
    assert alice.request("DELETE", f"/room_keys/version/{v2}").status_code == 404
    assert int(_create(alice)) > int(v2)  # numbers are never reused


def test_keys_at_three_levels_with_etag_and_count(hs: Harness) -> None:
    alice = hs.device("alice")
    version = _create(alice)
    put = alice.ok("PUT", "/room_keys/keys", {"rooms": {ROOM: {"sessions": {"s1": _session(fmi=3), "s2": _session()}}}}, version=version)
    assert put["count"] == 2
    etag = put["etag"]
    # Per room and per session uploads.
    put = alice.ok("PUT", f"/room_keys/keys/{ROOM}", {"sessions": {"s3": _session()}}, version=version)
    assert put["count"] == 3 and put["etag"] != etag
    put = alice.ok("PUT", f"/room_keys/keys/{ROOM}/s4", _session(), version=version)
    assert put["count"] == 4
    # A worse copy of s1 is ignored: etag unchanged; a better one replaces it.
    same = alice.ok("PUT", f"/room_keys/keys/{ROOM}/s1", _session(fmi=7, data="worse"), version=version)
    assert same == put
    alice.ok("PUT", f"/room_keys/keys/{ROOM}/s1", _session(fmi=1, data="better"), version=version)
    assert alice.ok("GET", f"/room_keys/keys/{ROOM}/s1", version=version) == _session(fmi=1, data="better")
    everything = alice.ok("GET", "/room_keys/keys", version=version)
    assert sorted(everything["rooms"][ROOM]["sessions"]) == ["s1", "s2", "s3", "s4"]
    assert sorted(alice.ok("GET", f"/room_keys/keys/{ROOM}", version=version)["sessions"]) == ["s1", "s2", "s3", "s4"]
    assert alice.ok("GET", "/room_keys/keys/!other:hs.test", version=version) == {"sessions": {}}
    assert alice.request("GET", f"/room_keys/keys/{ROOM}/nope", version=version).status_code == 404
    assert alice.ok("GET", "/room_keys/version")["count"] == 4
    # Deleting at each level.
    assert alice.ok("DELETE", f"/room_keys/keys/{ROOM}/s4", version=version)["count"] == 3
    assert alice.ok("DELETE", f"/room_keys/keys/{ROOM}", version=version)["count"] == 0
    alice.ok("PUT", f"/room_keys/keys/{ROOM}/s9", _session(), version=version)
    assert alice.ok("DELETE", "/room_keys/keys", version=version)["count"] == 0


def test_writes_go_to_the_current_version_only(hs: Harness) -> None:
    alice = hs.device("alice")
    old = _create(alice)
    current = _create(alice)
    response = alice.request("PUT", f"/room_keys/keys/{ROOM}/s1", _session(), version=old)
    assert response.status_code == 403
    assert response.json() == {"errcode": "M_WRONG_ROOM_KEYS_VERSION", "error": "Wrong backup version",
                               "current_version": current}
    # Reading an older version still works.
    assert alice.ok("GET", "/room_keys/keys", version=old) == {"rooms": {}}


def test_malformed_key_uploads(hs: Harness) -> None:
    alice = hs.device("alice")
    version = _create(alice)
    assert alice.request("PUT", f"/room_keys/keys/{ROOM}/s1", _session()).status_code == 400  # no version
    for bad in ({**_session(), "is_verified": "yes"}, {**_session(), "first_message_index": -1},
                {**_session(), "session_data": "x"}):
        assert alice.request("PUT", f"/room_keys/keys/{ROOM}/s1", bad, version=version).status_code == 400
    assert alice.request("PUT", "/room_keys/keys", {"rooms": {ROOM: {}}}, version=version).status_code == 400
    assert alice.request("POST", "/room_keys/version", {"algorithm": "x", "auth_data": {}}).status_code == 400
