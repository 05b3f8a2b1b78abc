"""PDU format checks: what each room version accepts and refuses, plus a fuzz test that
``validate_pdu`` never raises anything but InvalidEvent."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.errors import InvalidEvent
from durable.events import build_event, validate_pdu
from durable.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

from .conftest import make_event_kwargs

ALL = list(KNOWN_ROOM_VERSIONS)
V3_PLUS = [v for v in ALL if not get_room_version(v).event_id_in_event]
STRICT = [v for v in ALL if get_room_version(v).strict_canonicaljson]  # v6+
PRE_V11 = [v for v in ALL if not get_room_version(v).updated_redaction_rules]


def base_pdu(version_id: str) -> dict[str, Any]:
    """A well-formed (unsigned, unhashed-in-truth) message PDU for ``version_id``."""
    room_version = get_room_version(version_id)
    v1_format = room_version.event_id_in_event
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hi"},
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"example.org": {"ed25519:1": "c2ln"}},
        "depth": 3,
        "prev_events": [["$p:example.org", {"sha256": "aA"}]] if v1_format else ["$p"],
        "auth_events": [["$a:example.org", {"sha256": "aA"}]] if v1_format else ["$a"],
        "origin_server_ts": 1_700_000_000_000,
    }
    if v1_format:
        pdu["event_id"] = "$e:example.org"
    return pdu


Mutation = Callable[[dict[str, Any]], None]


def setting(key: str, value: Any) -> Mutation:
    def mutate(pdu: dict[str, Any]) -> None:
        pdu[key] = value

    return mutate


def removing(key: str) -> Mutation:
    def mutate(pdu: dict[str, Any]) -> None:
        pdu.pop(key, None)

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(pdu: dict[str, Any]) -> None:
        for m in mutations:
            m(pdu)

    return mutate


V12_CREATE = both(
    removing("room_id"),
    setting("type", "m.room.create"),
    setting("state_key", ""),
    setting("prev_events", []),
    setting("auth_events", []),
)

# (name, room versions, mutation) that must be accepted
ACCEPT: list[tuple[str, list[str], Mutation]] = [
    ("base", ALL, lambda pdu: None),
    ("v12 create without room_id", ["12"], V12_CREATE),
    # A v12 create event *with* a room_id is refused by auth rule 1.2, not by the format.
    ("v12 create with room_id", ["12"], both(V12_CREATE, setting("room_id", "!x"))),
    ("historical localpart", ALL, setting("sender", "@Ünïcode User:example.org")),
    ("empty localpart", ALL, setting("sender", "@:example.org")),
    ("ipv6 server with port", ALL, setting("sender", "@a:[::1]:8448")),
    ("ipv4 server with port", ALL, setting("sender", "@a:1.2.3.4:80")),
    ("sender of 255 bytes", ALL, setting("sender", "@" + "a" * 242 + ":example.org")),
    ("unknown top-level key", ALL, setting("org.example.custom", {"x": [1, 2]})),
    ("empty state key", ALL, setting("state_key", "")),
    ("state key of 255 bytes", ALL, setting("state_key", "é" * 127 + "a")),
    ("type of 255 bytes", ALL, setting("type", "t" * 255)),
    ("depth zero", ALL, setting("depth", 0)),
    ("depth at the safe-int limit", ALL, setting("depth", 2**53 - 1)),
    ("depth at int64 limit (lenient)", ["2", "3", "4", "5"], setting("depth", 2**63 - 1)),
    ("large int in content (lenient)", ["2", "3", "4", "5"], setting("content", {"n": 2**60})),
    ("float in content (lenient)", ["2", "3", "4", "5"], setting("content", {"n": 0.5})),
    ("20 prev_events", V3_PLUS, setting("prev_events", [f"$p{i}" for i in range(20)])),
    ("10 auth_events", V3_PLUS, setting("auth_events", [f"$a{i}" for i in range(10)])),
    ("convenience event_id", V3_PLUS, setting("event_id", "$whatever")),
    ("extra hash algorithm", ALL, setting("hashes", {"sha256": "aA", "sha512": "bB"})),
    ("no signatures yet", ALL, setting("signatures", {})),
    ("unsigned object", ALL, setting("unsigned", {"age": 1})),
    ("content of any shape", ALL, setting("content", {"a": {"b": [None, True, "x"]}})),
    ("top-level redacts string", ALL, setting("redacts", "$target")),
    ("v11 top-level redacts is not part of the format", ["11", "12"], setting("redacts", 5)),
    ("negative origin_server_ts", ALL, setting("origin_server_ts", -1)),
    ("room_id without domain", ALL, setting("room_id", "!opaque")),
    ("just under the size limit", ALL, setting("content", {"body": "x" * 65_000})),
]


def _cases(table: list[tuple[str, list[str], Mutation]]) -> list[Any]:
    return [
        pytest.param(version_id, mutation, id=f"{name}-v{version_id}")
        for name, version_ids, mutation in table
        for version_id in version_ids
    ]


@pytest.mark.parametrize(("version_id", "mutation"), _cases(ACCEPT))
def test_accepts(version_id: str, mutation: Mutation) -> None:
    pdu = base_pdu(version_id)
    mutation(pdu)
    validate_pdu(pdu, get_room_version(version_id))


REQUIRED = [
    "sender",
    "origin_server_ts",
    "type",
    "content",
    "depth",
    "hashes",
    "signatures",
    "prev_events",
    "auth_events",
    "room_id",
]

REFUSE: list[tuple[str, list[str], Mutation]] = [
    *[(f"missing {key}", ALL, removing(key)) for key in REQUIRED],
    ("v11 create without room_id", ["11"], V12_CREATE),
    ("v12 non-create without room_id", ["12"], removing("room_id")),
    ("v2 without event_id", ["2"], removing("event_id")),
    ("v2 event_id without domain", ["2"], setting("event_id", "$abc")),
    ("v2 event_id without sigil", ["2"], setting("event_id", "abc:example.org")),
    ("v2 event_id over 255 bytes", ["2"], setting("event_id", "$" + "e" * 250 + ":example.org")),
    ("v2 event_id not a string", ["2"], setting("event_id", 5)),
    ("sender without sigil", ALL, setting("sender", "alice:example.org")),
    ("sender without domain", ALL, setting("sender", "@alice")),
    ("sender with NUL", ALL, setting("sender", "@a\x00b:example.org")),
    ("sender with bad server name", ALL, setting("sender", "@a:exa mple.org")),
    ("sender with bad port", ALL, setting("sender", "@a:example.org:http")),
    ("sender over 255 bytes", ALL, setting("sender", "@" + "a" * 243 + ":example.org")),
    ("sender not a string", ALL, setting("sender", ["@a:example.org"])),
    ("room_id not a string", ALL, setting("room_id", 1)),
    ("room_id without sigil", ALL, setting("room_id", "room:example.org")),
    ("room_id over 255 bytes", ALL, setting("room_id", "!" + "r" * 255)),
    ("type not a string", ALL, setting("type", None)),
    ("type over 255 bytes", ALL, setting("type", "t" * 256)),
    ("state_key not a string", ALL, setting("state_key", 0)),
    ("state_key over 255 bytes", ALL, setting("state_key", "é" * 128)),
    ("content not an object", ALL, setting("content", ["a"])),
    ("unsigned not an object", ALL, setting("unsigned", "x")),
    ("depth negative", ALL, setting("depth", -1)),
    ("depth bool", ALL, setting("depth", True)),
    ("depth string", ALL, setting("depth", "3")),
    ("depth float", ALL, setting("depth", 3.0)),
    ("depth over int64 (lenient)", ["2", "3", "4", "5"], setting("depth", 2**63)),
    ("depth over safe int (strict)", STRICT, setting("depth", 2**53)),
    ("origin_server_ts float", ALL, setting("origin_server_ts", 1.5)),
    ("origin_server_ts string", ALL, setting("origin_server_ts", "1")),
    ("origin_server_ts bool", ALL, setting("origin_server_ts", False)),
    ("hashes not an object", ALL, setting("hashes", ["aA"])),
    ("hashes without sha256", ALL, setting("hashes", {"sha512": "aA"})),
    ("hashes.sha256 not a string", ALL, setting("hashes", {"sha256": 1})),
    ("signatures not an object", ALL, setting("signatures", [])),
    ("signatures entry not an object", ALL, setting("signatures", {"s": "x"})),
    ("signature not a string", ALL, setting("signatures", {"s": {"ed25519:1": 1}})),
    ("21 prev_events", V3_PLUS, setting("prev_events", [f"$p{i}" for i in range(21)])),
    ("11 auth_events", V3_PLUS, setting("auth_events", [f"$a{i}" for i in range(11)])),
    ("prev_events not a list", ALL, setting("prev_events", "$p")),
    ("auth_events not a list", ALL, setting("auth_events", {"$a": 1})),
    ("v3+ edge not a string", V3_PLUS, setting("prev_events", [["$p", {}]])),
    ("v2 edge not a pair", ["2"], setting("prev_events", ["$p:example.org"])),
    ("v2 edge of three", ["2"], setting("auth_events", [["$a:e", {}, {}]])),
    ("v2 edge hash not an object", ["2"], setting("auth_events", [["$a:e", "aA"]])),
    ("v2 21 prev_events", ["2"], setting("prev_events", [[f"$p{i}:e", {}] for i in range(21)])),
    ("pre-v11 redacts not a string", PRE_V11, setting("redacts", 5)),
    ("float in content (strict)", STRICT, setting("content", {"n": 0.5})),
    ("big int in content (strict)", STRICT, setting("content", {"n": 2**53})),
    ("NaN in content", ALL, setting("content", {"n": float("nan")})),
    ("non-string key in content", ALL, setting("content", {1: "x"})),
    ("lone surrogate in content", ALL, setting("content", {"x": "\udc00"})),
    ("over the size limit", ALL, setting("content", {"body": "x" * 65_536})),
    ("over the size limit with signatures", ALL, setting("signatures", {"s": {"k": "x" * 65_500}})),
]


@pytest.mark.parametrize(("version_id", "mutation"), _cases(REFUSE))
def test_refuses(version_id: str, mutation: Mutation) -> None:
    pdu = base_pdu(version_id)
    mutation(pdu)
    with pytest.raises(InvalidEvent) as info:
        validate_pdu(pdu, get_room_version(version_id))
    assert info.value.reason


@pytest.mark.parametrize("value", [None, [], "pdu", 3, ["a"]])
def test_refuses_non_objects(value: Any) -> None:
    with pytest.raises(InvalidEvent):
        validate_pdu(value, get_room_version("12"))


@pytest.mark.parametrize("version_id", ALL)
def test_built_events_pass(version_id: str) -> None:
    event = build_event(get_room_version(version_id), **make_event_kwargs(version_id))
    validate_pdu(dict(event.pdu), get_room_version(version_id))


def test_deeply_nested_content_is_refused_cleanly() -> None:
    nested: Any = {}
    for _ in range(50_000):
        nested = {"a": nested}
    pdu = base_pdu("12")
    pdu["content"] = nested
    with pytest.raises(InvalidEvent):
        validate_pdu(pdu, get_room_version("12"))


# --- fuzzing -----------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=5),
    st.sampled_from(["@a:example.org", "!r:example.org", "$e:example.org", "\ud800", "", "@:"]),
)
_keys = st.one_of(st.text(max_size=10), st.integers(), st.sampled_from(["sha256", "ed25519:1"]))
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(_keys, children, max_size=4),
        st.frozensets(st.integers(), max_size=2),
    ),
    max_leaves=20,
)
_fields = st.sampled_from(REQUIRED + ["event_id", "state_key", "unsigned", "redacts", "origin"])


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    version_id=st.sampled_from(ALL),
    changes=st.dictionaries(_fields, _values, max_size=4),
    removals=st.lists(_fields, max_size=3),
)
def test_fuzz_mutated_pdus_only_raise_invalid_event(
    version_id: str, changes: dict[str, Any], removals: list[str]
) -> None:
    pdu = copy.deepcopy(base_pdu(version_id))
    pdu.update(changes)
    for key in removals:
        pdu.pop(key, None)
    try:
        validate_pdu(pdu, get_room_version(version_id))
    except InvalidEvent as exc:
        assert isinstance(exc.reason, str) and exc.reason


@settings(max_examples=300, deadline=None, database=None)
@given(version_id=st.sampled_from(ALL), pdu=_values)
def test_fuzz_arbitrary_values_only_raise_invalid_event(version_id: str, pdu: Any) -> None:
    try:
        validate_pdu(pdu, get_room_version(version_id))
    except InvalidEvent as exc:
        assert exc.reason
