"""``matrix-edge spec``: resolve-state, check-auth and verify-event on JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64, encode_verify_key_base64, get_verify_key

from durable.events import add_content_hash, compute_event_id, sign_event
from durable.room_versions import V10, V12
from local_runtime.spec_commands import main

ROOT = Path(__file__).resolve().parents[2]
RUMA = ROOT / "tests" / "spec_data" / "stateres-fixtures" / "ruma"
SCENARIOS = json.loads((ROOT / "tests" / "spec_data" / "stateres-scenarios.json").read_text())

ALICE, BOB = "@alice:example.com", "@bob:example.com"


def run(argv: list[str], stdin: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, io.StringIO(stdin), out, err)
    return status, out.getvalue(), err.getvalue()


def run_json(argv: list[str], request: Any) -> Any:
    status, out, err = run(argv, json.dumps(request))
    assert (status, err) == (0, ""), err
    return json.loads(out)


def snapshot(name: str) -> list[list[str]]:
    body = (RUMA / "snapshots" / f"{name}@resolved_state.snap").read_text().split("---", 2)[2]
    return sorted([row["type"], row["state_key"], row["event_id"]] for row in json.loads(body))


def pdus(*files: str) -> list[dict[str, Any]]:
    return [p for f in files for p in json.loads((RUMA / "fixtures" / f).read_text())]


# --- resolve-state -------------------------------------------------------------------------
ATOMIC_CASES = {
    "minimal_public_chat": ["bootstrap-public-chat.json"],
    "ban_vs_power_levels": [
        "bootstrap-public-chat.json",
        "ban-vs-power-levels-alice.json",
        "ban-vs-power-levels-bob.json",
    ],
    "join_rules_vs_join": [
        "bootstrap-public-chat.json",
        "join-rules-vs-join-common.json",
        "join-rules-vs-join-alice.json",
        "join-rules-vs-join-ella.json",
    ],
}


@pytest.mark.parametrize("name", ATOMIC_CASES)
def test_resolve_state_ruma_fixture_atomically(name: str) -> None:
    events = pdus(*ATOMIC_CASES[name])
    request = {
        "room_version": events[0]["content"]["room_version"],
        "state_sets": [[p["event_id"]] for p in events],
        "events": events,
    }
    assert run_json(["resolve-state"], request) == {"state": snapshot(name)}


@pytest.mark.parametrize("name", ATOMIC_CASES)
def test_resolve_state_room_version_2_edge_pairs(name: str) -> None:
    """v1/v2 event format: edges are [event_id, hashes] pairs and event_id is in the PDU."""

    def pairs(ids: list[str]) -> list[list[Any]]:
        return [[i, {"sha256": "aGFzaA"}] for i in ids]

    events = [
        {**p, "auth_events": pairs(p["auth_events"]), "prev_events": pairs(p["prev_events"])}
        for p in pdus(*ATOMIC_CASES[name])
    ]
    request = {"room_version": "2", "state_sets": [[p["event_id"]] for p in events], "events": events}
    assert run_json(["resolve-state"], request) == {"state": snapshot(name)}


@pytest.mark.parametrize(
    "name, folder, version, sets",
    [
        ("msc4297_problem_a_state_res_v2_0", "MSC4297-problem-A", "11", ["state-bob", "state-charlie"]),
        ("msc4297_problem_a_state_res_v2_1", "MSC4297-problem-A", "12", ["state-bob", "state-charlie"]),
        ("msc4297_problem_b_state_res_v2_0", "MSC4297-problem-B", "11", ["state-eve", "state-zara"]),
        ("msc4297_problem_b_state_res_v2_1", "MSC4297-problem-B", "12", ["state-eve", "state-zara"]),
    ],
)
def test_resolve_state_msc4297(name: str, folder: str, version: str, sets: list[str]) -> None:
    request = {
        "room_version": version,
        "state_sets": [json.loads((RUMA / "fixtures" / folder / f"{s}.json").read_text()) for s in sets],
        "events": pdus(f"{folder}/pdus-v{version}.json"),
    }
    assert run_json(["resolve-state"], request) == {"state": snapshot(name)}


def scenario_request(name: str) -> dict[str, Any]:
    """The ban_vs_pl-style scenario as a request: the two branch states at END."""
    scenario = SCENARIOS["scenarios"][name]
    events, state_after = [], {}
    for row in scenario["events"]:
        pdu = {
            "event_id": row["id"], "room_id": "!test:example.com", "sender": row["sender"],
            "type": row["type"], "content": row["content"], "origin_server_ts": row["ts"],
            "prev_events": row["prev"], "auth_events": row["auth"], "depth": 1,
        }
        if row["state_key"] is not None:
            pdu["state_key"] = row["state_key"]
        events.append(pdu)
        # Linear branches: the state after an event is the state after its only prev + itself.
        if len(row["prev"]) <= 1:
            state = dict(state_after[row["prev"][0]]) if row["prev"] else {}
            if row["state_key"] is not None:
                state[(row["type"], row["state_key"])] = row["id"]
            state_after[row["id"]] = state
    end = next(r for r in scenario["events"] if r["id"] == "END")
    return {
        "room_version": "10",
        "state_sets": [list(state_after[p].values()) for p in end["prev"]],
        "events": events,
    }


def test_resolve_state_scenario_ban_vs_pl() -> None:
    state = run_json(["resolve-state"], scenario_request("ban_vs_pl"))["state"]
    by_key = {(t, k): e for t, k, e in state}
    assert by_key[("m.room.power_levels", "")] == "PA"
    assert by_key[("m.room.member", BOB)] == "MB"
    assert state == sorted(state)


def test_resolve_state_batch_answers_in_order_and_reports_bad_lines() -> None:
    good = scenario_request("topic_basic")
    lines = [json.dumps(good), "", "not json", json.dumps({**good, "room_version": "99"}), json.dumps(good)]
    status, out, err = run(["resolve-state", "--batch"], "\n".join(lines) + "\n")
    assert (status, err) == (0, "")
    answers = [json.loads(line) for line in out.splitlines()]
    assert len(answers) == 4
    assert answers[0] == answers[3] and "state" in answers[0]
    assert {(t, k): e for t, k, e in answers[0]["state"]}[("m.room.topic", "")] == "T2"
    assert set(answers[1]) == {"error"} and set(answers[2]) == {"error"}
    assert "99" in answers[2]["error"]


@pytest.mark.parametrize(
    "request_text, message",
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"state_sets": [], "events": []}', "room_version"),
        ('{"room_version": "0", "state_sets": [], "events": []}', "unknown room version"),
        ('{"room_version": 10, "state_sets": [], "events": []}', "room_version"),
        ('{"room_version": "10", "state_sets": [["$x"]], "events": []}', "no event '$x'"),
        ('{"room_version": "10", "state_sets": {}, "events": []}', "state_sets"),
        (
            '{"room_version": "10", "state_sets": [["$m"]], "events": [{"event_id": "$m", '
            '"type": "m.room.message", "sender": "@a:x", "room_id": "!r:x", "content": {}}]}',
            "not a state event",
        ),
        ('{"room_version": "10", "state_sets": [], "events": [{"event_id": "$m"}]}', "no string 'type'"),
        (
            '{"room_version": "10", "state_sets": [], "events": [{"event_id": "$m", "type": "t", '
            '"sender": "@a:x", "auth_events": [5]}]}',
            "not a list of event IDs",
        ),
        (
            '{"room_version": "10", "state_sets": [], "events": [{"event_id": "$m", "type": "t", '
            '"sender": "@a:x", "origin_server_ts": "1"}]}',
            "origin_server_ts",
        ),
    ],
)
def test_resolve_state_bad_input_exits_2_with_one_line(request_text: str, message: str) -> None:
    status, out, err = run(["resolve-state"], request_text)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["nope"], ["resolve-state", "check-auth"]])
def test_unknown_command_exits_2(argv: list[str]) -> None:
    status, _, err = run(argv, "{}")
    assert status == 2 and "usage" in err


# --- check-auth ----------------------------------------------------------------------------
def v10_room() -> dict[str, dict[str, Any]]:
    def pdu(event_id: str, type_: str, state_key: str | None, sender: str, content: dict, auth: list[str],
            room_id: str = "!room:example.com") -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": event_id, "room_id": room_id, "type": type_, "sender": sender, "content": content,
            "auth_events": auth, "prev_events": [], "depth": 3, "origin_server_ts": 1,
        }
        if state_key is not None:
            body["state_key"] = state_key
        return body

    return {
        "create": pdu("$create", "m.room.create", "", ALICE, {"creator": ALICE, "room_version": "10"}, []),
        "alice": pdu("$alice", "m.room.member", ALICE, ALICE, {"membership": "join"}, ["$create"]),
        "pl": pdu("$pl", "m.room.power_levels", "", ALICE, {"users": {ALICE: 100}}, ["$create", "$alice"]),
        "topic": pdu("$topic", "m.room.topic", "", ALICE, {"topic": "hi"}, ["$create", "$pl", "$alice"]),
        "other_pl": pdu("$opl", "m.room.power_levels", "", ALICE, {"users": {ALICE: 100}}, [],
                        room_id="!other:example.com"),
        "bob_topic": pdu("$btopic", "m.room.topic", "", BOB, {"topic": "hi"}, ["$create", "$pl"]),
    }


def check(event: dict, auth_events: list[dict], room_version: str = "10") -> dict[str, Any]:
    return run_json(["check-auth"], {"room_version": room_version, "event": event, "auth_events": auth_events})


def test_check_auth_allows_a_topic_from_a_joined_admin() -> None:
    room = v10_room()
    assert check(room["topic"], [room["create"], room["pl"], room["alice"]]) == {"allowed": True, "reason": ""}


@pytest.mark.parametrize(
    "case, auth_names",
    [
        ("not joined", ["create", "pl"]),
        ("duplicate entry", ["create", "pl", "alice", "pl"]),
        ("unexpected type", ["create", "pl", "alice", "topic"]),
        ("another room", ["create", "other_pl", "alice"]),
        ("no create", ["pl", "alice"]),
    ],
)
def test_check_auth_refusals(case: str, auth_names: list[str]) -> None:
    room = v10_room()
    event = room["bob_topic"] if case == "not joined" else room["topic"]
    result = check(event, [room[n] for n in auth_names])
    assert result["allowed"] is False and result["reason"], case


def v12_room() -> dict[str, dict[str, Any]]:
    create = {
        "type": "m.room.create", "state_key": "", "sender": ALICE, "content": {"room_version": "12"},
        "auth_events": [], "prev_events": [], "depth": 1, "origin_server_ts": 1,
        "hashes": {"sha256": "x"}, "signatures": {},
    }
    create_id = compute_event_id(create, V12)
    room_id = "!" + create_id[1:]
    alice = {
        "event_id": "$alice", "room_id": room_id, "type": "m.room.member", "state_key": ALICE, "sender": ALICE,
        "content": {"membership": "join"}, "auth_events": [], "prev_events": [create_id], "depth": 2,
        "origin_server_ts": 2,
    }
    topic = {
        "event_id": "$topic", "room_id": room_id, "type": "m.room.topic", "state_key": "", "sender": ALICE,
        "content": {"topic": "hi"}, "auth_events": ["$alice"], "prev_events": ["$alice"], "depth": 3,
        "origin_server_ts": 3,
    }
    return {"create": create, "alice": alice, "topic": topic, "create_id": create_id}  # type: ignore[dict-item]


def test_check_auth_v12_create_given_but_not_listed() -> None:
    room = v12_room()
    assert check(room["topic"], [room["create"], room["alice"]], "12") == {"allowed": True, "reason": ""}
    assert check(room["alice"], [room["create"]], "12")["allowed"] is True


def test_check_auth_v12_refuses_a_pdu_listing_the_create_event() -> None:
    room = v12_room()
    topic = {**room["topic"], "auth_events": [room["create_id"], "$alice"]}
    result = check(topic, [room["create"], room["alice"]], "12")
    assert result["allowed"] is False and "create" in result["reason"]


def test_check_auth_bad_input() -> None:
    status, out, err = run(["check-auth"], json.dumps({"room_version": "10", "event": {}, "auth_events": []}))
    assert status == 2 and out == "" and "type" in err


# --- verify-event --------------------------------------------------------------------------
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"  # the spec appendix's example key


def signed_event() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    signing_key = decode_signing_key_base64("ed25519", "1", SEED)
    pdu = {
        "room_id": "!room:example.org", "type": "m.room.message", "sender": "@alice:example.org",
        "content": {"body": "hello"}, "auth_events": [], "prev_events": [], "depth": 3,
        "origin_server_ts": 1, "unsigned": {},
    }
    signed = sign_event(add_content_hash(pdu), V10, "example.org", signing_key)
    keys = {"example.org": {"ed25519:1": encode_verify_key_base64(get_verify_key(signing_key))}}
    return signed, keys


def test_verify_event_good_signature() -> None:
    pdu, keys = signed_event()
    report = run_json(["verify-event"], {"room_version": "10", "event": pdu, "keys": keys})
    assert report["content_hash_ok"] is True and report["signatures_ok"] is True
    assert report["event_id"] == compute_event_id(pdu, V10)
    assert report["redacted"]["content"] == {}


def test_verify_event_tampered_content_and_unknown_key() -> None:
    pdu, keys = signed_event()
    tampered = {**pdu, "content": {"body": "changed"}}
    report = run_json(["verify-event"], {"room_version": "10", "event": tampered, "keys": keys})
    assert report["content_hash_ok"] is False and report["signatures_ok"] is True
    report = run_json(["verify-event"], {"room_version": "10", "event": pdu, "keys": {}})
    assert report["signatures_ok"] is False


def test_verify_event_bad_keys_exit_2() -> None:
    pdu, _ = signed_event()
    status, _, err = run(["verify-event"], json.dumps({"room_version": "10", "event": pdu, "keys": {"x": 1}}))
    assert status == 2 and "keys" in err


# --- the real console script -----------------------------------------------------------------
@pytest.mark.slow
def test_console_script_batch_and_error_exit() -> None:
    exe = Path(sys.executable).parent / "matrix-edge"
    request = json.dumps(scenario_request("offtopic_pl"))
    done = subprocess.run([str(exe), "spec", "resolve-state", "--batch"], input=request + "\n" + request + "\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert ["m.room.power_levels", "", "PC"] in json.loads(lines[0])["state"]
    done = subprocess.run([str(exe), "spec", "check-auth"], input="nope", capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
