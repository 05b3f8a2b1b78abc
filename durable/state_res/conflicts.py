"""Step 0 of state resolution v2/v2.1: split the state sets.

Spec: rooms v2 "Unconflicted state map and conflicted state set" (also v12, unchanged):
a key whose value is the same event in *every* state set belongs to the unconflicted state
map; every other value found under a key (including keys missing from some set) belongs to
the conflicted state set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from durable.events.event import StateKey


@dataclass(frozen=True)
class StateSplit:
    """The unconflicted state map, and the conflicted state set grouped by key."""

    unconflicted: dict[StateKey, str]
    conflicted_by_key: dict[StateKey, frozenset[str]]

    @property
    def conflicted_ids(self) -> set[str]:
        """The conflicted state set (event IDs)."""
        ids: set[str] = set()
        for values in self.conflicted_by_key.values():
            ids.update(values)
        return ids


def split_state(state_sets: Sequence[Mapping[StateKey, str]]) -> StateSplit:
    """Divide the key/value pairs of ``state_sets`` into unconflicted and conflicted.

    A key counts as unconflicted only when it is present in every set with one value.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, frozenset[str]] = {}
    if not state_sets:
        return StateSplit(unconflicted, conflicted)
    first, rest = state_sets[0], state_sets[1:]
    for key, event_id in first.items():
        if all(other.get(key) == event_id for other in rest):
            unconflicted[key] = event_id
        else:
            conflicted[key] = _values(key, state_sets)
    for other in rest:
        for key in other:
            if key not in first and key not in conflicted:
                conflicted[key] = _values(key, state_sets)
    return StateSplit(unconflicted, conflicted)


def _values(key: StateKey, state_sets: Sequence[Mapping[StateKey, str]]) -> frozenset[str]:
    return frozenset(s[key] for s in state_sets if key in s)
