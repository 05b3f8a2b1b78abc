"""Table expansion and assertion helpers shared by the auth-rule tests."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import pytest

from durable.auth import check_auth_rules
from durable.errors import AuthError
from durable.events.event import Event
from tests.durable.auth.factories import Room

Scenario = Callable[[str], tuple[Room, Event]]
Row = tuple[str, Iterable[str], Scenario, str | None]


def expand(rows: Iterable[Row]) -> list[Any]:
    """One pytest param per (row, room version)."""
    return [
        pytest.param(version, scenario, expected, id=f"{name}-v{version}")
        for name, room_versions, scenario, expected in rows
        for version in room_versions
    ]


def assert_auth(room: Room, event: Event, expected: str | None) -> None:
    """``expected`` None: allowed against the room's state; otherwise rejected with a reason
    containing ``expected``."""
    if expected is None:
        check_auth_rules(event, room.state)
    else:
        with pytest.raises(AuthError, match=re.escape(expected)):
            check_auth_rules(event, room.state)
