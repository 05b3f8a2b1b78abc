"""State resolution v1 (room version 1), v2 (room versions 2 to 11) and v2.1 (room version 12).

Spec: https://spec.matrix.org/v1.19/rooms/v1/#state-resolution (all of it in ``v1``),
https://spec.matrix.org/v1.19/rooms/v2/#state-resolution and
https://spec.matrix.org/v1.19/rooms/v12/#state-resolution. One module per step:
``conflicts`` (unconflicted map / conflicted set), ``auth_chain`` (auth chains, auth
difference), ``subgraph`` (v2.1 conflicted state subgraph), ``ordering`` (reverse topological
power ordering, mainline ordering), ``iterative`` (iterative auth checks), ``resolve`` (the
v2/v2.1 steps, and the dispatch on the room version's ``state_res`` flag).
"""

from durable.state_res.resolve import resolve_state

__all__ = ["resolve_state"]
