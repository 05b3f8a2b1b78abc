"""Finding a request's route without trying every route's regex.

Starlette's ``Router`` tries its routes one after another; with some 300 routes a message
send reaches its route after ~90 regex matches and a ``/sync`` after ~160 (tens of
microseconds per request). ``IndexedRouter`` gives the same answers faster: a trie over
path segments (literal segments by name, parameters as wildcards) yields, for a path, the
few routes that could match it, in their original order; those are tried exactly as
``Router`` would (the first full match wins, else the first partial match: a 405). When none
matches, the plain ``Router`` logic runs (slash redirects, 404), so what it answers is
unchanged too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send
from starlette._utils import get_route_path


@dataclass
class _Node:
    """One path position: literal children, the wildcard child (a parameter filling one
    segment), routes ending here and routes whose rest of path is a ``:path`` parameter."""

    literal: dict[str, "_Node"] = field(default_factory=dict)
    wildcard: "_Node | None" = None
    ending: list[int] = field(default_factory=list)
    rest: list[int] = field(default_factory=list)


class RouteIndex:
    """Route positions by path shape. ``candidates(path)`` is a superset of the routes whose
    regex can match ``path`` (every route that is not a plain ``Route`` is always a
    candidate), sorted by position."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._root = _Node()
        self._always: list[int] = []
        for position, route in enumerate(routes):
            if isinstance(route, Route) and route.path.startswith("/"):
                self._add(route.path, position)
            else:
                self._always.append(position)

    def _add(self, path: str, position: int) -> None:
        node = self._root
        for segment in path.split("/"):
            if "{" not in segment:
                node = node.literal.setdefault(segment, _Node())
            elif ":path}" in segment:
                # A path parameter may take any number of segments, slashes included.
                node.rest.append(position)
                return
            else:
                # Every other convertor (str, int, float, uuid) stays within one segment.
                if node.wildcard is None:
                    node.wildcard = _Node()
                node = node.wildcard
        node.ending.append(position)

    def candidates(self, path: str) -> list[int]:
        found: list[int] = list(self._always)
        frontier = [self._root]
        for segment in path.split("/"):
            following: list[_Node] = []
            for node in frontier:
                found.extend(node.rest)
                child = node.literal.get(segment)
                if child is not None:
                    following.append(child)
                if node.wildcard is not None:
                    following.append(node.wildcard)
            frontier = following
            if not frontier:
                break
        for node in frontier:
            found.extend(node.rest)
            found.extend(node.ending)
        found.sort()
        return found


class IndexedRouter(Router):
    """A ``Router`` that tries only the routes its ``RouteIndex`` names for the path.
    Built from an existing router's routes; ``routes`` must not change afterwards."""

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=list(routes), **kwargs)
        self._index = RouteIndex(self.routes)

    def select(self, scope: Scope) -> tuple[BaseRoute, Scope] | None:
        """The route ``Router`` would hand an HTTP request to, with its child scope: the
        first full match, else the first partial one; None when no route matches."""
        partial: tuple[BaseRoute, Scope] | None = None
        routes = self.routes
        for position in self._index.candidates(get_route_path(scope)):
            route = routes[position]
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        return partial

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        selected = self.select(scope)
        if selected is None:
            # No route matches: the plain Router answers (a slash redirect or the 404).
            await super().app(scope, receive, send)
            return
        route, child_scope = selected
        scope["route"] = route
        scope.update(child_scope)
        await route.handle(scope, receive, send)
