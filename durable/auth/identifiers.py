"""Identifiers as the auth rules compare them.

Spec: https://spec.matrix.org/v1.19/appendices/#identifier-grammar. The grammar itself
(server names, historical user IDs) lives in ``durable.events.identifiers``; this module adds
the one comparison the rules make on it.
"""

from __future__ import annotations

from durable.events.identifiers import is_valid_server_name, is_valid_user_id

__all__ = ["domain_of", "is_valid_server_name", "is_valid_user_id"]


def domain_of(identifier: str) -> str | None:
    """The part after the first ``:`` of a sigil-prefixed ID (``@user:domain``,
    ``!room:domain``, ``$event:domain``), or None when there is no domain.

    Localparts never contain ``:``, so the first colon separates the domain (which may itself
    carry a ``:port``)."""
    _, sep, domain = identifier.partition(":")
    return domain if sep else None
