"""workers.dispatch: the indexed router picks exactly the route Starlette's router would."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from starlette.routing import BaseRoute, Match, Route

from workers.app import collect_routes
from workers.dispatch import IndexedRouter, RouteIndex

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH")
PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_]+)?\}")
# Values a parameter may take in a request path (percent-decoded, as in the ASGI scope).
SAMPLES = ("!room:example.test", "@u:example.test", "m.room.message", "x", "a/b", "", "with space", "%40")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def _linear(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[BaseRoute, Any] | None:
    """Starlette Router's own choice: every route in order, first full match, else the
    first partial one."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child
        if match is Match.PARTIAL and partial is None:
            partial = (route, child)
    return partial


def _paths(routes: list[BaseRoute], rng: random.Random) -> list[str]:
    paths: list[str] = []
    for route in routes:
        assert isinstance(route, Route)
        for sample in SAMPLES:
            path = PARAM.sub(lambda m: sample, route.path)
            paths += [path, path + "/", path.rstrip("/") + "/extra", path.rsplit("/", 1)[0]]
        # Mixed values per parameter, and a mutated literal segment.
        mixed = PARAM.sub(lambda m: rng.choice(SAMPLES), route.path)
        segments = mixed.split("/")
        index = rng.randrange(len(segments))
        segments[index] = segments[index] + "z"
        paths += [mixed, "/".join(segments)]
    return paths + ["/", "", "/_matrix", "/_matrix/client/v3/", "//_matrix/client/v3/sync"]


def test_same_route_as_starlette_for_every_route_shape() -> None:
    routes = collect_routes()
    router = IndexedRouter(routes)
    rng = random.Random(4)
    checked = 0
    for path in _paths(routes, rng):
        for method in METHODS:
            scope = _scope(method, path)
            expected = _linear(routes, scope)
            got = router.select(scope)
            if expected is None:
                assert got is None, (method, path)
            else:
                assert got is not None, (method, path)
                assert got[0] is expected[0] and got[1] == expected[1], (method, path)
            checked += 1
    assert checked > 10_000


def test_candidates_are_few_and_ordered() -> None:
    routes = collect_routes()
    index = RouteIndex(routes)
    send = index.candidates("/_matrix/client/v3/rooms/!r:example.test/send/m.room.message/t1")
    assert [routes[i].path for i in send] == ["/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"]
    state = index.candidates("/_matrix/client/v3/rooms/!r:example.test/state/m.room.name/a/b")
    assert state == sorted(state) and len(state) >= 2
    assert all(routes[i].path.endswith("{stateKey:path}") for i in state)


@pytest.mark.parametrize("path", ["/_matrix/client/v3/sync/", "/nothing/here"])
def test_unmatched_paths_fall_back_to_starlette(path: str) -> None:
    router = IndexedRouter(collect_routes())
    assert router.select(_scope("GET", path)) is None
