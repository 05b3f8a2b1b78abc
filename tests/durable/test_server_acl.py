"""The server ACL decision (spec: "Server Access Control Lists (ACLs) for rooms", the
``m.room.server_acl`` event; appendices "Glob-style matching")."""

from __future__ import annotations

from typing import Any

import pytest

from durable.server_acl import glob_regex, host_of, is_ip_literal, server_allowed_by_acl

OPEN = {"allow": ["*"]}
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # (case, server name, ACL content, allowed)
    ("allow all", "remote.test", OPEN, True),
    ("empty content denies everyone", "remote.test", {}, False),
    ("empty allow denies everyone", "remote.test", {"allow": [], "deny": []}, False),
    ("exact allow", "remote.test", {"allow": ["remote.test"]}, True),
    ("exact allow, other server", "other.test", {"allow": ["remote.test"]}, False),
    ("exact deny", "evil.test", {"allow": ["*"], "deny": ["evil.test"]}, False),
    ("deny wins over allow", "evil.test", {"allow": ["evil.test"], "deny": ["evil.test"]}, False),
    ("deny glob wins over exact allow", "a.evil.test", {"allow": ["a.evil.test"], "deny": ["*.evil.test"]}, False),
    ("star is zero or more chars", "evil.test", {"allow": ["*"], "deny": ["*evil.test"]}, False),
    ("star suffix glob", "sub.evil.test", {"allow": ["*"], "deny": ["*.evil.test"]}, False),
    ("star suffix glob needs the dot", "evil.test", {"allow": ["*"], "deny": ["*.evil.test"]}, True),
    ("star spans dots", "a.b.c.evil.test", {"allow": ["*"], "deny": ["a*test"]}, False),
    ("question mark is exactly one", "ab.test", {"allow": ["a?.test"]}, True),
    ("question mark is not zero", "a.test", {"allow": ["a?.test"]}, False),
    ("question mark is not two", "abc.test", {"allow": ["a?.test"]}, False),
    ("dot is literal", "remoteXtest", {"allow": ["remote.test"]}, False),
    ("regex chars are literal", "remote.test", {"allow": ["remote.te[s]t"]}, False),
    ("plus is literal", "a+b.test", {"allow": ["a+b.test"]}, True),
    ("anchored at start", "xremote.test", {"allow": ["remote.test"]}, False),
    ("anchored at end", "remote.testx", {"allow": ["remote.test"]}, False),
    ("case insensitive name", "Remote.TEST", {"allow": ["remote.test"]}, True),
    ("case insensitive glob", "remote.test", {"allow": ["REMOTE.*"]}, True),
    ("case insensitive deny", "EVIL.test", {"allow": ["*"], "deny": ["evil.TEST"]}, False),
    ("port stripped", "remote.test:8448", {"allow": ["remote.test"]}, True),
    ("port stripped before deny", "evil.test:443", {"allow": ["*"], "deny": ["evil.test"]}, False),
    ("port in the glob never matches", "remote.test:8448", {"allow": ["remote.test:8448"]}, False),
    ("ipv4 allowed by default", "1.2.3.4", OPEN, True),
    ("ipv4 allowed explicitly", "1.2.3.4", {"allow": ["*"], "allow_ip_literals": True}, True),
    ("ipv4 denied", "1.2.3.4", {"allow": ["*"], "allow_ip_literals": False}, False),
    ("ipv4 with port denied", "1.2.3.4:8448", {"allow": ["*"], "allow_ip_literals": False}, False),
    ("ipv4 even when allowed by name", "1.2.3.4", {"allow": ["1.2.3.4"], "allow_ip_literals": False}, False),
    ("ipv6 denied", "[::1]", {"allow": ["*"], "allow_ip_literals": False}, False),
    ("ipv6 with port denied", "[2001:db8::1]:8448", {"allow": ["*"], "allow_ip_literals": False}, False),
    ("ipv6 allowed by default", "[::1]:8448", OPEN, True),
    ("ipv6 matched with brackets", "[::1]:8448", {"allow": ["[::1]"]}, True),
    ("name like an ip is not one", "1.2.3.4.test", {"allow": ["*"], "allow_ip_literals": False}, True),
    ("non-bool allow_ip_literals means true", "1.2.3.4", {"allow": ["*"], "allow_ip_literals": "no"}, True),
    ("non-list allow is empty", "remote.test", {"allow": "*"}, False),
    ("non-list deny is empty", "evil.test", {"allow": ["*"], "deny": "evil.test"}, True),
    ("non-string entries ignored", "remote.test", {"allow": [1, None, {"a": 1}, "remote.test"]}, True),
    ("only non-string entries", "remote.test", {"allow": [True, 3]}, False),
    ("non-string deny entries ignored", "remote.test", {"allow": ["*"], "deny": [None, 7]}, True),
]


@pytest.mark.parametrize(("server_name", "content", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_server_allowed_by_acl(server_name: str, content: dict[str, Any], allowed: bool) -> None:
    assert server_allowed_by_acl(server_name, content) is allowed


@pytest.mark.parametrize(("server_name", "host"), [
    ("remote.test", "remote.test"),
    ("remote.test:8448", "remote.test"),
    ("1.2.3.4:80", "1.2.3.4"),
    ("[::1]", "[::1]"),
    ("[2001:db8::1]:8448", "[2001:db8::1]"),
    ("::1", "::1"),
])
def test_host_of(server_name: str, host: str) -> None:
    assert host_of(server_name) == host


@pytest.mark.parametrize(("host", "literal"), [
    ("1.2.3.4", True), ("255.255.255.255", True), ("[::1]", True), ("[2001:db8::ff00:42:8329]", True),
    ("::1", True), ("remote.test", False), ("1.2.3", False), ("1.2.3.4.5", False), ("[not-ip]", False),
    ("localhost", False),
])
def test_is_ip_literal(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal


def test_glob_regex_is_anchored_and_escapes() -> None:
    assert glob_regex("a.*").fullmatch("a.b") is not None
    assert glob_regex("a.*").fullmatch("ab") is None
    assert glob_regex("(x)|y").fullmatch("y") is None
    assert glob_regex("(x)|y").fullmatch("(x)|y") is not None
