"""Matrix authorisation rules for room versions 1 to 12.

Spec: https://spec.matrix.org/v1.19/rooms/ (each version's "Authorisation rules") and
https://spec.matrix.org/v1.19/server-server-api/#authorisation-rules.
"""

from durable.auth.auth_events import auth_types_for_event, check_auth_events_list
from durable.auth.identifiers import domain_of, is_valid_user_id
from durable.auth.power_levels import (
    INFINITE_POWER,
    creators,
    event_power_level,
    get_power_levels_content,
    named_level,
    parse_level,
    room_creator,
    user_power_level,
)
from durable.auth.rules import check_auth_rules, check_create_event, check_event_auth

__all__ = [
    "INFINITE_POWER",
    "auth_types_for_event",
    "check_auth_events_list",
    "check_auth_rules",
    "check_create_event",
    "check_event_auth",
    "creators",
    "domain_of",
    "event_power_level",
    "get_power_levels_content",
    "is_valid_user_id",
    "named_level",
    "parse_level",
    "room_creator",
    "user_power_level",
]
