"""The room actor (see durable/room/actor.py)."""

from durable.room.actor import RoomActor

__all__ = ["RoomActor"]
