"""matrix-nio's AsyncClient against a real ``matrix-edge serve`` on a free port.

Two (or three) users register, log in, and talk in a room only through what a client sees in
incremental ``/sync`` responses (each call passes the previous ``next_batch`` as ``since``):
invites, joins, messages both ways, display names, power-level refusals, bans, redactions,
``/messages`` pagination over a few hundred events in both directions, and a server restart
in the middle (SIGKILL once, SIGTERM once) after which old ``since`` tokens and access tokens
still work and nothing the server acknowledged is lost.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    Event,
    JoinError,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    ProfileSetDisplayNameResponse,
    RedactedEvent,
    RedactionEvent,
    RegisterResponse,
    RoomBanResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomInviteResponse,
    RoomKickError,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPutStateError,
    RoomPutStateResponse,
    RoomRedactError,
    RoomRedactResponse,
    RoomSendError,
    RoomSendResponse,
    SyncResponse,
)

from tests.clients.edge_process import EdgeProcess

pytestmark = pytest.mark.slow

SYNC_DEADLINE_SECONDS = 15.0
PASSWORD = "correct horse battery staple"


def _config() -> AsyncClientConfig:
    # No olm store: these tests are about unencrypted rooms; E2EE has its own client tests.
    return AsyncClientConfig(encryption_enabled=False, max_timeouts=3, request_timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    process = EdgeProcess(tmp_path_factory.mktemp("nio_server"))
    process.start()
    try:
        yield process
    finally:
        process.terminate()


class User:
    """A logged-in nio client plus the room timeline events it has seen through ``/sync``."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.seen: dict[str, list[Event]] = {}
        self.invites: set[str] = set()
        self.last_txn = ""

    @property
    def user_id(self) -> str:
        return self.client.user_id

    async def sync_once(self, timeout_ms: int = 0) -> SyncResponse:
        since = self.client.next_batch
        response = await self.client.sync(timeout=timeout_ms, since=since)
        assert isinstance(response, SyncResponse), response
        if since is not None:
            assert response.next_batch, "an incremental sync must return a next_batch token"
        for room_id, room in response.rooms.join.items():
            self.seen.setdefault(room_id, []).extend(room.timeline.events)
        self.invites |= set(response.rooms.invite)
        return response

    async def sync_until(self, done: Callable[[], bool], what: str) -> None:
        """Long-poll (``since`` = the last ``next_batch``) until ``done()`` holds."""
        deadline = time.monotonic() + SYNC_DEADLINE_SECONDS
        while not done():
            assert time.monotonic() < deadline, f"{self.user_id} never saw {what}"
            await self.sync_once(timeout_ms=2000)

    def bodies(self, room_id: str, sender: str | None = None) -> list[str]:
        return [
            e.body for e in self.seen.get(room_id, [])
            if isinstance(e, RoomMessageText) and (sender is None or e.sender == sender)
        ]

    def event_ids(self, room_id: str) -> list[str]:
        return [e.event_id for e in self.seen.get(room_id, [])]

    async def say(self, room_id: str, body: str) -> str:
        self.last_txn = secrets.token_hex(8)
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, tx_id=self.last_txn
        )
        assert isinstance(sent, RoomSendResponse), sent
        return sent.event_id


async def register_and_login(server: EdgeProcess, name: str) -> User:
    localpart = f"{name}{secrets.token_hex(3)}"
    registrar = AsyncClient(server.base_url, localpart, config=_config())
    try:
        registered = await registrar.register(localpart, PASSWORD, device_name=f"{name} register")
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == f"@{localpart}:{server.server_name}"
    finally:
        await registrar.close()
    client = AsyncClient(server.base_url, f"@{localpart}:{server.server_name}", config=_config())
    login = await client.login(PASSWORD, device_name=f"{name} nio")
    assert isinstance(login, LoginResponse), login
    user = User(client)
    await user.sync_once()
    return user


async def shared_room(owner: User, *guests: User, name: str = "nio room") -> str:
    """``owner`` creates a private room and invites ``guests``; each sees the invite in an
    incremental sync and joins; the owner sees every join in its own sync."""
    created = await owner.client.room_create(name=name, topic="talking through nio")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    for guest in guests:
        invited = await owner.client.room_invite(room_id, guest.user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        await guest.sync_until(lambda: room_id in guest.invites, f"the invite to {room_id}")
        invite_state = guest.client.invited_rooms[room_id]
        assert invite_state.name == name
        joined = await guest.client.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        assert joined.room_id == room_id
        await guest.sync_until(lambda: room_id in guest.seen, f"{room_id} in the join section")

    def everyone_joined() -> bool:
        joins = {
            e.state_key for e in owner.seen.get(room_id, [])
            if isinstance(e, RoomMemberEvent) and e.membership == "join"
        }
        return {g.user_id for g in guests} <= joins

    await owner.sync_until(everyone_joined, "every guest join")
    return room_id


async def close_all(*users: User) -> None:
    for user in users:
        await user.client.close()


async def test_conversation_profiles_power_and_redaction(server: EdgeProcess) -> None:
    alice = await register_and_login(server, "alice")
    bob = await register_and_login(server, "bob")
    try:
        room_id = await shared_room(alice, bob)
        assert room_id in bob.client.rooms and bob.user_id in bob.client.rooms[room_id].users

        # Messages both ways, seen only through incremental syncs.
        hello = await alice.say(room_id, "hello bob")
        await bob.sync_until(lambda: hello in bob.event_ids(room_id), "alice's message")
        assert bob.bodies(room_id, alice.user_id) == ["hello bob"]
        reply = await bob.say(room_id, "hi alice")
        await alice.sync_until(lambda: reply in alice.event_ids(room_id), "bob's reply")
        assert alice.bodies(room_id, bob.user_id) == ["hi alice"]

        # A display name change reaches the other member as a new member event.
        renamed = await bob.client.set_displayname("Bob the Builder")
        assert isinstance(renamed, ProfileSetDisplayNameResponse), renamed

        def bob_renamed() -> bool:
            return any(
                isinstance(e, RoomMemberEvent) and e.state_key == bob.user_id
                and e.content.get("displayname") == "Bob the Builder"
                for e in alice.seen.get(room_id, [])
            )

        await alice.sync_until(bob_renamed, "bob's new display name")
        assert alice.client.rooms[room_id].user_name(bob.user_id) == "Bob the Builder"

        # Bob has power level 0: the room's auth rules refuse his name change, kick and redaction.
        refused = await bob.client.room_put_state(room_id, "m.room.name", {"name": "bob's room"})
        assert isinstance(refused, RoomPutStateError), refused
        assert refused.status_code == "M_FORBIDDEN"
        kicked = await bob.client.room_kick(room_id, alice.user_id, reason="no")
        assert isinstance(kicked, RoomKickError) and kicked.status_code == "M_FORBIDDEN", kicked
        not_redacted = await bob.client.room_redact(room_id, hello)
        assert isinstance(not_redacted, RoomRedactError) and not_redacted.status_code == "M_FORBIDDEN"
        # The refused name never reaches anyone; alice (power 100) may rename.
        named = await alice.client.room_put_state(room_id, "m.room.name", {"name": "alice's room"})
        assert isinstance(named, RoomPutStateResponse), named
        await bob.sync_until(lambda: bob.client.rooms[room_id].name == "alice's room", "the new name")
        assert not any(
            e.source.get("content", {}).get("name") == "bob's room" for e in bob.seen[room_id]
        )

        # Redaction: bob sees the secret, alice redacts it, bob's sync carries the redaction
        # and the event is served without its content from then on.
        secret = await alice.say(room_id, "the password is swordfish")
        await bob.sync_until(lambda: secret in bob.event_ids(room_id), "the secret")
        redacted = await alice.client.room_redact(room_id, secret, reason="oops")
        assert isinstance(redacted, RoomRedactResponse), redacted

        def redaction_seen() -> bool:
            return any(isinstance(e, RedactionEvent) and e.redacts == secret for e in bob.seen[room_id])

        await bob.sync_until(redaction_seen, "the redaction")
        fetched = await bob.client.room_get_event(room_id, secret)
        assert isinstance(fetched, RoomGetEventResponse), fetched
        assert isinstance(fetched.event, RedactedEvent), fetched.event
        assert fetched.event.source["content"] == {}
        assert "swordfish" not in str(fetched.event.source)
        history = await bob.client.room_messages(room_id, bob.client.next_batch, limit=20)
        assert isinstance(history, RoomMessagesResponse), history
        by_id = {e.event_id: e for e in history.chunk}
        assert isinstance(by_id[secret], RedactedEvent) and by_id[secret].source["content"] == {}
        assert "swordfish" not in str([e.source for e in history.chunk])
        # A fresh initial sync of bob's does not bring the content back either.
        fresh = await bob.client.sync(timeout=0, since=None, full_state=True)
        assert isinstance(fresh, SyncResponse), fresh
        assert "swordfish" not in str(fresh.rooms.join[room_id].timeline.events)
    finally:
        await close_all(alice, bob)


async def test_ban_refuses_the_banned_users_sends_and_joins(server: EdgeProcess) -> None:
    alice = await register_and_login(server, "alice")
    bob = await register_and_login(server, "bob")
    carol = await register_and_login(server, "carol")
    try:
        room_id = await shared_room(alice, bob, carol, name="ban room")
        before = await carol.say(room_id, "carol was here")
        await bob.sync_until(lambda: before in bob.event_ids(room_id), "carol's message")

        banned = await alice.client.room_ban(room_id, carol.user_id, reason="spam")
        assert isinstance(banned, RoomBanResponse), banned

        def carol_banned() -> bool:
            return any(
                isinstance(e, RoomMemberEvent) and e.state_key == carol.user_id and e.membership == "ban"
                for e in bob.seen[room_id]
            )

        await bob.sync_until(carol_banned, "carol's ban")
        refused = await carol.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "let me in"})
        assert isinstance(refused, RoomSendError), refused
        assert refused.status_code == "M_FORBIDDEN"
        rejoin = await carol.client.join(room_id)
        assert isinstance(rejoin, JoinError) and rejoin.status_code == "M_FORBIDDEN", rejoin
        # The refused message reaches nobody: after alice's next message bob has seen no body from carol but the first.
        marker = await alice.say(room_id, "after the ban")
        await bob.sync_until(lambda: marker in bob.event_ids(room_id), "alice's marker")
        assert bob.bodies(room_id, carol.user_id) == ["carol was here"]
        # Carol's sync moves the room to her leave section.
        left = await carol.sync_once()
        assert room_id in left.rooms.leave, left.rooms
    finally:
        await close_all(alice, bob, carol)


async def test_messages_pagination_both_directions(server: EdgeProcess) -> None:
    total, page = 300, 37
    alice = await register_and_login(server, "alice")
    bob = await register_and_login(server, "bob")
    try:
        room_id = await shared_room(alice, bob, name="long room")
        sent = [await alice.say(room_id, f"message {i:03d}") for i in range(total)]

        # An incremental sync now has a limited timeline with a prev_batch token to page back from.
        response = await bob.sync_once()
        timeline = response.rooms.join[room_id].timeline
        assert timeline.limited and timeline.prev_batch
        tail = [e.event_id for e in timeline.events]
        assert tail and tail == sent[-len(tail):]

        backwards: list[str] = []
        # (token, how many events of the history lie before it) for every page boundary.
        boundaries: list[tuple[str, int]] = []
        token = timeline.prev_batch
        for _ in range(total):
            chunk = await bob.client.room_messages(room_id, token, direction=MessageDirection.back, limit=page)
            assert isinstance(chunk, RoomMessagesResponse), chunk
            assert len(chunk.chunk) <= page
            backwards.extend(e.event_id for e in chunk.chunk)
            if not chunk.end or not chunk.chunk:
                break
            token = chunk.end
            boundaries.append((token, -len(backwards)))
        else:
            pytest.fail("backward pagination never reached the start of the room")
        history = list(reversed(backwards)) + tail
        assert len(history) == len(set(history)), "an event came twice"
        messages = [i for i in history if i in set(sent)]
        assert messages == sent, "backward pagination lost or reordered messages"
        # Before the first message: the room's creation and alice's and bob's membership.
        assert history[0] != sent[0] and history.index(sent[0]) >= 3

        # Forwards from any backward page boundary runs to the present, giving exactly the
        # history after that boundary (the oldest boundary gives all but the oldest page).
        assert len(boundaries) >= total // page - 1
        for start, offset in (boundaries[-1], boundaries[len(boundaries) // 2]):
            forwards: list[str] = []
            token = start
            for _ in range(total):
                chunk = await bob.client.room_messages(room_id, token, direction=MessageDirection.front, limit=page)
                assert isinstance(chunk, RoomMessagesResponse), chunk
                assert len(chunk.chunk) <= page
                forwards.extend(e.event_id for e in chunk.chunk)
                if not chunk.end or not chunk.chunk:
                    break
                token = chunk.end
            assert forwards == history[len(history) - len(tail) + offset:]

        # Bodies arrive intact and in order.
        bodies = [
            e.body for e in (await bob.client.room_messages(room_id, timeline.prev_batch, limit=5)).chunk
            if isinstance(e, RoomMessageText)
        ]
        first_tail = total - len(tail)
        assert bodies == [f"message {i:03d}" for i in range(first_tail - 1, first_tail - 6, -1)]
    finally:
        await close_all(alice, bob)


async def _talk(sender: User, receiver: User, room_id: str, bodies: list[str]) -> list[str]:
    ids = [await sender.say(room_id, body) for body in bodies]
    await receiver.sync_until(lambda: set(ids) <= set(receiver.event_ids(room_id)), f"{bodies}")
    return ids


async def _after_restart(users: list[User], room_id: str, since: dict[str, str], expected: list[str]) -> None:
    """Each user's old ``since`` token still answers, with every acknowledged event after it,
    once each and in the order the server acknowledged them."""
    for user in users:
        await user.client.close()  # drop pooled connections to the old process
        user.client.next_batch = since[user.user_id]
        user.seen.pop(room_id, None)
        await user.sync_until(lambda: set(expected) <= set(user.event_ids(room_id)), "events from before the restart")
        got = [i for i in user.event_ids(room_id) if i in set(expected)]
        assert got == expected, f"{user.user_id} saw {got}, expected {expected}"


async def test_restart_keeps_tokens_and_acknowledged_events(tmp_path: Path) -> None:
    server = EdgeProcess(tmp_path)
    server.start()
    users: list[User] = []
    try:
        users += [await register_and_login(server, "alice"), await register_and_login(server, "bob")]
        alice, bob = users
        room_id = await shared_room(alice, bob, name="restart room")
        await _talk(alice, bob, room_id, ["warming up"])
        await alice.sync_once()

        # Acknowledged writes, then a crash with nothing shut down cleanly.
        since = {u.user_id: u.client.next_batch for u in (alice, bob)}
        acked = [await alice.say(room_id, f"before kill {i}") for i in range(5)]
        acked += [await bob.say(room_id, f"bob before kill {i}") for i in range(3)]
        server.kill()
        server.start()
        await _after_restart([alice, bob], room_id, since, acked)
        # A client retrying its last send (same transaction ID) after the crash gets the same
        # event back, not a duplicate.
        retried = await bob.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "bob before kill 2"},
            tx_id=bob.last_txn,
        )
        assert isinstance(retried, RoomSendResponse), retried
        assert retried.event_id == acked[-1]
        # Access tokens survive and both users carry on in both directions.
        await _talk(alice, bob, room_id, ["alive after kill"])
        await _talk(bob, alice, room_id, ["bob alive after kill"])

        # The same again with a graceful stop.
        await alice.sync_once()
        since = {u.user_id: u.client.next_batch for u in (alice, bob)}
        acked = [await bob.say(room_id, f"before stop {i}") for i in range(4)]
        assert server.terminate(), server.log_path.read_text()[-3000:]
        server.start()
        await _after_restart([alice, bob], room_id, since, acked)
        await _talk(alice, bob, room_id, ["alive after stop"])
        await _talk(bob, alice, room_id, ["bob alive after stop"])

        # A new initial sync sees the whole conversation exactly once.
        fresh = User(alice.client)
        fresh.client.next_batch = None
        history = await alice.client.room_messages(room_id, (await fresh.sync_once()).next_batch, limit=100)
        assert isinstance(history, RoomMessagesResponse), history
        bodies = [e.body for e in history.chunk if isinstance(e, RoomMessageText)]
        assert len(bodies) == len(set(bodies)) == 1 + 8 + 2 + 4 + 2
    finally:
        await close_all(*users)
        server.terminate()

