"""Auth chains and the auth difference (state resolution v2/v2.1).

Spec: rooms v2 "Auth chain": the auth chain of an event is every event reachable from it by
following ``auth_events`` links (the event itself excluded). "Auth difference": with C_i the
full auth chain of state set S_i, the auth difference is the union of the C_i minus their
intersection.

Like Synapse and ruma, the full auth chain of a state set here also holds the set's own
events. This changes nothing for conflicted events (they are in the full conflicted set in any
case) and keeps unconflicted events, which sit in every set, out of the auth difference.
"""

from __future__ import annotations

from typing import Callable, Collection, Iterable, Mapping, Sequence

from durable.events.event import Event, StateKey


class AuthGraph:
    """Memoised access to events and their auth edges during one resolution.

    Events that ``get_event`` cannot supply are left out of every walk. ``auth_chain``, when
    given, returns an event's full auth chain from the caller's cache and is used for the
    set-level unions instead of walking.
    """

    def __init__(
        self,
        get_event: Callable[[str], Event | None],
        auth_chain: Callable[[str], set[str]] | None = None,
    ) -> None:
        self._get_event = get_event
        self._auth_chain = auth_chain
        self._events: dict[str, Event | None] = {}
        self._parents: dict[str, tuple[str, ...]] = {}

    def event(self, event_id: str) -> Event | None:
        try:
            return self._events[event_id]
        except KeyError:
            found = self._get_event(event_id)
            self._events[event_id] = found
            return found

    def parents(self, event_id: str) -> tuple[str, ...]:
        """The auth events of ``event_id`` that can be fetched, in listed order."""
        try:
            return self._parents[event_id]
        except KeyError:
            event = self.event(event_id)
            found: tuple[str, ...] = ()
            if event is not None:
                found = tuple(a for a in dict.fromkeys(event.auth_event_ids) if self.event(a))
            self._parents[event_id] = found
            return found

    def chain_of(self, event_id: str) -> set[str]:
        """The auth chain of one event (itself excluded)."""
        if self._auth_chain is not None:
            return set(self._auth_chain(event_id))
        return self._walk(self.parents(event_id))

    def closure(self, event_ids: Iterable[str]) -> set[str]:
        """``event_ids`` together with the union of their auth chains."""
        sources = [e for e in event_ids if self.event(e) is not None]
        if self._auth_chain is not None:
            result = set(sources)
            for event_id in sources:
                result.update(self._auth_chain(event_id))
            return result
        return self._walk(sources)

    def _walk(self, start: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(start)
        while stack:
            event_id = stack.pop()
            if event_id in seen:
                continue
            seen.add(event_id)
            stack.extend(p for p in self.parents(event_id) if p not in seen)
        return seen

    def find_in_closure(
        self, sources: Iterable[str], targets: Collection[str], barrier: Collection[str]
    ) -> set[str]:
        """Which ``targets`` lie in the closure of ``sources`` (sources plus auth chains).

        ``barrier`` must be closed under taking auth chains and hold no target: the walk does
        not descend into it. The walk stops as soon as every target has been found.
        """
        remaining = set(targets)
        if not remaining:
            return set()
        if self._auth_chain is not None:
            for event_id in sources:
                if event_id in remaining:
                    remaining.discard(event_id)
                hits = remaining.intersection(self._auth_chain(event_id))
                remaining -= hits
                if not remaining:
                    break
            return set(targets) - remaining
        # The hot loop of a resolution with a large unconflicted state: no memoisation, one
        # fetch per visited event.
        get_event = self._get_event
        seen: set[str] = set()
        stack = [s for s in sources if s not in barrier]
        while stack:
            event_id = stack.pop()
            if event_id in seen:
                continue
            seen.add(event_id)
            if event_id in remaining:
                remaining.discard(event_id)
                if not remaining:
                    break
            event = get_event(event_id)
            if event is not None:
                for parent in event.auth_event_ids:
                    if parent not in seen and parent not in barrier:
                        stack.append(parent)
        return set(targets) - remaining


def auth_difference(
    state_sets: Sequence[Mapping[StateKey, str]],
    unconflicted: Mapping[StateKey, str],
    conflicted_keys: Iterable[StateKey],
    graph: AuthGraph,
) -> set[str]:
    """The auth difference of ``state_sets`` without walking every unconflicted event.

    ``conflicted_keys`` are the keys of the conflicted state set. What is returned is the
    auth difference *less the conflicted state set*, i.e. what it adds to the full conflicted
    set: conflicted events are in that set anyway and need no test.

    Each full auth chain C_i is U ∪ D_i, where U is the closure of the unconflicted events
    (common to every set) and D_i the closure of S_i's conflicted events. So the difference is
    (∪D_i − ∩D_i) − U. Membership in U is only tested for those few candidates, and the walk
    stops at ∩D_i, whose ancestors all lie in ∩D_i too.
    """
    keys = list(conflicted_keys)
    per_set = [graph.closure(s[k] for k in keys if k in s) for s in state_sets]
    if not per_set:
        return set()
    union: set[str] = set().union(*per_set)
    common: set[str] = set.intersection(*per_set)
    conflicted = {s[k] for s in state_sets for k in keys if k in s}
    candidates = union - common - conflicted
    if not candidates:
        return set()
    return candidates - graph.find_in_closure(unconflicted.values(), candidates, common)
