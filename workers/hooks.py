"""``env.hooks``: what account changes mean for rooms (see ``workers.client`` for the hook
points). Each room change still goes through that room's actor."""

from __future__ import annotations

import logging
from typing import Any

from d1.accounts import get_profile
from workers.client.keys import on_devices_deleted
from workers.errors import MatrixError
from workers.push.pushers import on_devices_deleted as drop_device_pushers
from workers.room_access import room_stub

log = logging.getLogger(__name__)


async def _rooms_with_membership(env: Any, user_id: str, memberships: tuple[str, ...]) -> list[str]:
    marks = ",".join("?" * len(memberships))
    rows = (
        await env.DB.prepare(
            "SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
            f" AND membership IN ({marks}) ORDER BY room_id"
        ).bind(user_id, *memberships).all()
    ).results
    return [r["room_id"] for r in rows]


class Hooks:
    def __init__(self, env: Any) -> None:
        self._env = env

    async def profile_changed(self, user_id: str) -> None:
        """Send a new join event with the new displayname/avatar_url in every joined room
        (as Synapse does), so other members see the change."""
        env = self._env
        profile = await get_profile(env.DB, user_id) or {}
        for room_id in await _rooms_with_membership(env, user_id, ("join",)):
            stub = room_stub(env, room_id)
            content = await stub.state_event_content("m.room.member", user_id) or {}
            content = {k: v for k, v in content.items() if k not in ("membership", "displayname", "avatar_url")}
            for key in ("displayname", "avatar_url"):
                if profile.get(key) is not None:
                    content[key] = profile[key]
            try:
                await stub.send_event(user_id, "m.room.member", {**content, "membership": "join"}, user_id)
            except MatrixError as exc:  # e.g. the room no longer lets this user change state
                log.warning("profile change of %s not sent to %s: %s", user_id, room_id, exc.message)

    async def user_deactivated(self, user_id: str) -> None:
        """A deactivated user leaves every room it was in, invited to, or knocking on."""
        env = self._env
        for room_id in await _rooms_with_membership(env, user_id, ("join", "invite", "knock")):
            try:
                await room_stub(env, room_id).update_membership(user_id, user_id, "leave")
            except MatrixError as exc:
                log.warning("deactivated %s could not leave %s: %s", user_id, room_id, exc.message)

    async def devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        """Deleted devices lose their E2E keys and to-device inboxes; the owner's device list
        changes (workers.client.keys); the pushers they set are deleted
        (workers.push.pushers)."""
        await on_devices_deleted(self._env, user_id, device_ids)
        await drop_device_pushers(self._env, user_id, device_ids)
