"""Checks on the relation a client's new event carries, before it goes to the room actor.

Spec: client-server API "Threading", "Validation of ``m.thread`` relationships": servers
should refuse a client's event that starts a thread off an event which itself has an
``m.relates_to`` with a ``rel_type`` (so threads never nest), with 400 and ``M_UNKNOWN`` (no
specific code exists). A reply (``m.in_reply_to`` without ``rel_type``) may be a thread
root; so may an event whose relation was redacted away, and an event we do not hold (as
Synapse, which refuses from the relations it has indexed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from d1.events import get_event_rows
from d1.relations import relation_of
from workers.errors import Codes, MatrixError

THREAD = "m.thread"


def has_rel_type(content: Mapping[str, Any]) -> bool:
    """Whether ``content`` is the child of a relationship: ``m.relates_to`` with a
    ``rel_type``."""
    relates_to = content.get("m.relates_to")
    return isinstance(relates_to, Mapping) and "rel_type" in relates_to


async def check_thread_root(env: Any, room_id: str, content: Mapping[str, Any]) -> None:
    """400 ``M_UNKNOWN`` if ``content`` starts (or continues) a thread whose root, an
    unredacted event of this room, has a relation itself."""
    relation = relation_of(content)
    if relation is None or relation[0] != THREAD:
        return
    root_id = relation[1]
    row = (await get_event_rows(env.DB, [root_id])).get(root_id)
    if row is None or row["room_id"] != room_id or row["redacted_by"] is not None:
        return
    root_content = json.loads(row["json"]).get("content")
    if isinstance(root_content, Mapping) and has_rel_type(root_content):
        raise MatrixError(400, Codes.UNKNOWN, "Cannot start threads from an event with a relation")
