"""/sendToDevice and the to_device section of /sync: order, idempotent txnIds, ``*``, and
messages kept until the device syncs with a later since token."""

from __future__ import annotations

from tests.workers.e2ee.harness import Device, Harness


def _send(sender: Device, txn: str, messages: dict, event_type: str = "m.test") -> None:
    assert sender.ok("PUT", f"/sendToDevice/{event_type}/{txn}", {"messages": messages}) == {}


def _bodies(sync: dict) -> list:
    return [e["content"]["n"] for e in sync["to_device"]["events"]]


def test_messages_arrive_in_order_and_stay_until_acknowledged(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    first = bob.sync()
    for n in range(3):
        _send(alice, f"t{n}", {bob.user_id: {"DEV": {"n": n}}})
    got = bob.sync(first["next_batch"])
    assert _bodies(got) == [0, 1, 2]
    assert got["to_device"]["events"][0] == {"type": "m.test", "sender": alice.user_id, "content": {"n": 0}}
    # The response was lost: syncing again from the same token delivers them again.
    assert _bodies(bob.sync(first["next_batch"])) == [0, 1, 2]
    # Syncing from the later token acknowledges them: gone for good.
    later = bob.sync(got["next_batch"])
    assert _bodies(later) == []
    assert _bodies(bob.sync(first["next_batch"])) == []


def test_repeated_txn_id_is_delivered_once(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    since = bob.sync()["next_batch"]
    _send(alice, "same", {bob.user_id: {"DEV": {"n": 1}}})
    _send(alice, "same", {bob.user_id: {"DEV": {"n": 2}}})
    # Another device of the sender may reuse the txnId.
    _send(hs.device("alice", "OTHER"), "same", {bob.user_id: {"DEV": {"n": 3}}})
    assert _bodies(bob.sync(since)) == [1, 3]


def test_star_reaches_every_device_and_only_named_devices_otherwise(hs: Harness) -> None:
    alice = hs.device("alice")
    bob1, bob2 = hs.device("bob", "B1"), hs.device("bob", "B2")
    s1, s2 = bob1.sync()["next_batch"], bob2.sync()["next_batch"]
    _send(alice, "a", {bob1.user_id: {"*": {"n": "all"}}})
    _send(alice, "b", {bob1.user_id: {"B2": {"n": "two"}, "NOPE": {"n": "none"}}})
    assert _bodies(bob1.sync(s1)) == ["all"]
    assert _bodies(bob2.sync(s2)) == ["all", "two"]


def test_a_long_backlog_is_paged(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    since = bob.sync()["next_batch"]
    for n in range(130):
        _send(alice, f"t{n}", {bob.user_id: {"DEV": {"n": n}}})
    page1 = bob.sync(since)
    assert _bodies(page1) == list(range(100))
    page2 = bob.sync(page1["next_batch"])
    assert _bodies(page2) == list(range(100, 130))
    assert _bodies(bob.sync(page2["next_batch"])) == []


def test_a_waiting_sync_wakes_for_a_message(hs: Harness) -> None:
    import threading

    alice, bob = hs.device("alice"), hs.device("bob")
    since = bob.sync()["next_batch"]
    timer = threading.Timer(0.3, lambda: _send(alice, "late", {bob.user_id: {"DEV": {"n": "late"}}}))
    timer.start()
    try:
        got = bob.sync(since, timeout=10_000)
    finally:
        timer.join()
    assert _bodies(got) == ["late"]


def test_refusals(hs: Harness) -> None:
    alice = hs.device("alice")
    assert alice.request("PUT", "/sendToDevice/m.test/x", {}).status_code == 400
    assert alice.request("PUT", "/sendToDevice/m.test/x", {"messages": {"@b:hs.test": {"D": "no"}}}).status_code == 400
    assert alice.request("PUT", "/sendToDevice/m.test/x", {"messages": {"nobody": {}}}).status_code == 400
    # Remote users are accepted (and dropped until federation lands).
    assert alice.request("PUT", "/sendToDevice/m.test/y", {"messages": {"@b:remote.example": {"D": {}}}}).status_code == 200


def test_a_sync_with_nothing_new_writes_nothing_and_reads_in_few_hops(hs: Harness) -> None:
    """Streams whose position did not move since the token are not read; an empty inbox is
    not cleaned up with a write (the acknowledged messages were deleted already)."""
    alice, bob = hs.device("alice"), hs.device("bob")
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    since = bob.sync()["next_batch"]
    _send(alice, "t", {bob.user_id: {"DEV": {"n": 1}}})
    got = bob.sync(since)
    assert _bodies(got) == [1]
    bob.sync(got["next_batch"])  # acknowledges (deletes) the message
    quiet = bob.sync(got["next_batch"])["next_batch"]
    db = hs.env.DB
    calls: list[str] = []
    real = (db.batch, db._run_one, db.read_many)

    async def batch(statements):  # type: ignore[no-untyped-def]
        calls.append("write")
        return await real[0](statements)

    async def run_one(stmt, want_rows):  # type: ignore[no-untyped-def]
        calls.append("read")
        return await real[1](stmt, want_rows)

    async def read_many(statements):  # type: ignore[no-untyped-def]
        calls.append("read")
        return await real[2](statements)

    db.batch, db._run_one, db.read_many = batch, run_one, read_many
    try:
        body = bob.sync(quiet)
    finally:
        db.batch, db._run_one, db.read_many = real
    assert body["next_batch"] == quiet and _bodies(body) == [] and body["rooms"]["join"] == {}
    assert "write" not in calls
    # The access token, the user's presence (set_presence defaults to online), the stream
    # positions, and the device's inbox size and key counts.
    assert len(calls) <= 4, calls
