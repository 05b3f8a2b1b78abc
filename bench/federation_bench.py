"""Benchmark of room federation (issue 6).

1. Inbound ``PUT /send`` PDUs accepted per second: a forged peer (its own signing key) whose
   user has joined a room on our server pushes a linear chain of messages in transactions
   of 50; each PDU goes through the X-Matrix check of its transaction, format, signature
   and hash checks, auth against its auth events and the state before it, soft-fail check,
   and one D1 batch. The PDUs are built and signed before the clock starts.
2. Time for a user on Synapse to join a room of N members hosted by us (``--members``,
   default 200; the issue asks 1,000): Synapse's make_join, send_join (we answer the full
   state and auth chain) and its checks of that answer, measured at Synapse's /join.
3. With ``--reverse``: time for our user to join a room of N members hosted by Synapse.

Run: ``.venv/bin/python bench/federation_bench.py [--pdus N] [--members N] [--reverse]
[--no-synapse]``. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from durable.room_versions import get_room_version  # noqa: E402
from local_runtime.config import load_config  # noqa: E402
from local_runtime.server import build_app  # noqa: E402
from tests.federation import synapse_peer  # noqa: E402
from tests.federation.conftest import OURS, FedApp  # noqa: E402
from tests.federation.forged_rooms import forge, peer_joins, room_summary, send_transaction  # noqa: E402
from tests.federation.local_server import LocalServer  # noqa: E402
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for  # noqa: E402

MALLORY = "@mallory:remote.test"
V3 = "/_matrix/client/v3"


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done}/{total}", end="", file=sys.stderr, flush=True)


def inbound_pdus(count: int) -> dict[str, Any]:
    """PDUs/s accepted through PUT /send from a forged peer joined to our room."""
    with tempfile.TemporaryDirectory() as tmp, TestClient(
        build_app(load_config(data_dir=tmp, server_name=OURS))
    ) as client:
        network = PeerNetwork()
        peer = network.add(ForgedPeer("remote.test"))
        fed = FedApp(client, network)
        real = fed.env.FEDERATION
        fed.env.FEDERATION = client_for(fed.env, network)
        fed.call(real.close)
        body = {"username": "alice", "password": "bench pw 1", "auth": {"type": "m.login.dummy"}}
        token = client.post(f"{V3}/register", json=body).json()["access_token"]
        room_id = client.post(f"{V3}/createRoom", json={"preset": "public_chat"},
                              headers={"Authorization": f"Bearer {token}"}).json()["room_id"]
        peer_joins(fed, peer, room_id, MALLORY)
        summary = room_summary(fed, room_id)
        version = get_room_version(summary["room_version"])
        state = {(t, k): e for t, k, e in summary["state"]}
        auth = [state[("m.room.power_levels", "")], state[("m.room.member", MALLORY)]]
        if version.create_event_in_auth_events:
            auth.append(state[("m.room.create", "")])
        prev, depth = summary["extremities"], summary["depth"]
        pdus = []
        for i in range(count):
            event = forge(version, room_id=room_id, sender=MALLORY, type="m.room.message",
                          content={"msgtype": "m.text", "body": f"bench {i}"}, prev=prev, auth=auth,
                          depth=depth + 1 + i, server=peer.server_name, key=peer.signing_key)
            pdus.append(dict(event.pdu))
            prev = [event.event_id]
            if (i + 1) % 500 == 0:
                progress("signing PDUs", i + 1, count)
        print(file=sys.stderr)
        accepted = 0
        started = time.perf_counter()
        for start in range(0, count, 50):
            answer = send_transaction(fed, peer, pdus[start:start + 50])
            answer.raise_for_status()
            accepted += sum(1 for r in answer.json()["pdus"].values() if "error" not in r)
            progress("inbound PDUs", start + len(pdus[start:start + 50]), count)
        elapsed = time.perf_counter() - started
        print(file=sys.stderr)
        return {"pdus": count, "accepted": accepted, "seconds": elapsed, "per_second": accepted / elapsed}


def _register(base_url: str, username: str) -> dict[str, Any]:
    body = {"username": username, "password": synapse_peer.PASSWORD, "auth": {"type": "m.login.dummy"}}
    first = httpx.post(f"{base_url}/_matrix/client/v3/register", json=body, timeout=60)
    if first.status_code == 401:
        body["auth"] = {"type": "m.login.dummy", "session": first.json()["session"]}
        first = httpx.post(f"{base_url}/_matrix/client/v3/register", json=body, timeout=60)
    first.raise_for_status()
    return first.json()


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base_url}/_matrix/client/v3",
                        headers={"Authorization": f"Bearer {token}"}, timeout=600)


def joins_with_synapse(members: int, reverse: bool) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    original = synapse_peer.synapse_config
    # Cheaper password hashing, so that registering many Synapse users for --reverse is quick.
    synapse_peer.synapse_config = lambda *a: {**original(*a), "bcrypt_rounds": 4}  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        ours = LocalServer(Path(tmp) / "ours", log_level="warning").start()
        synapse = synapse_peer.SynapsePeer(Path(tmp) / "synapse").start()
        try:
            alice = _client(ours.client_url, _register(ours.client_url, "alice")["access_token"])
            room_id = alice.post("/createRoom", json={"preset": "public_chat"}).json()["room_id"]
            stub = ours.env.ROOMS.get(ours.env.ROOMS.id_from_name(room_id))
            for i in range(members - 1):
                ours.run(stub.update_membership, f"@m{i}:{ours.server_name}", f"@m{i}:{ours.server_name}", "join")
                if (i + 1) % 50 == 0:
                    progress("members of our room", i + 2, members)
            print(file=sys.stderr)
            bob = _client(synapse.client_url, synapse.register("bob")["access_token"])
            started = time.perf_counter()
            joined = bob.post(f"/join/{urllib.parse.quote(room_id, safe='')}",
                              params={"server_name": ours.server_name}, json={})
            elapsed = time.perf_counter() - started
            joined.raise_for_status()
            results.append((f"Synapse user joins our room of {members} members", elapsed))
            print(f"  Synapse join: {elapsed:.2f}s", file=sys.stderr)
            if reverse:
                their_room = bob.post("/createRoom", json={"preset": "public_chat"}).json()["room_id"]
                path = f"/join/{urllib.parse.quote(their_room, safe='')}"
                for i in range(members - 1):
                    member = _client(synapse.client_url, _register(synapse.client_url, f"m{i}")["access_token"])
                    member.post(path, json={}).raise_for_status()
                    member.close()
                    if (i + 1) % 25 == 0:
                        progress("members of the Synapse room", i + 2, members)
                print(file=sys.stderr)
                started = time.perf_counter()
                answer = alice.post(path, params={"server_name": synapse.server_name}, json={})
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                results.append((f"our user joins a Synapse room of {members} members", elapsed))
        finally:
            synapse.stop()
            ours.stop()
            synapse_peer.synapse_config = original  # type: ignore[assignment]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdus", type=int, default=1000, help="PDUs pushed by the forged peer")
    parser.add_argument("--members", type=int, default=200, help="members of the room joined over federation")
    parser.add_argument("--reverse", action="store_true", help="also join a Synapse-hosted room of N members")
    parser.add_argument("--no-synapse", action="store_true", help="only the inbound /send benchmark")
    args = parser.parse_args()

    print("inbound /send from a forged peer", file=sys.stderr)
    inbound = inbound_pdus(args.pdus)
    rows = [(f"inbound /send: {inbound['accepted']}/{inbound['pdus']} PDUs accepted",
             f"{inbound['per_second']:.0f} PDUs/s ({inbound['seconds']:.2f}s)")]
    if not args.no_synapse:
        print("joins with Synapse", file=sys.stderr)
        for label, seconds in joins_with_synapse(args.members, args.reverse):
            rows.append((label, f"{seconds:.2f}s"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 24}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
